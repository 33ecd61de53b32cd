"""The strict NVS reader against nvs_partition_gen's images; credentials in the store's layout."""

from __future__ import annotations

import io
import struct
import zlib

import pytest
from esp_idf_nvs_partition_gen import nvs_partition_gen as gen
from hypothesis import given, settings
from hypothesis import strategies as st
from rmbench import nvs, nvsimage

PAGE = 0x1000


def gen_image(rows: list[tuple[str, str, str, object]], size: int = 0x6000) -> bytes:
    # An image made by nvs_partition_gen alone, from CSV-like rows (key, type, encoding, value),
    # as its own CLI does (one page reserved).
    out = io.BytesIO()
    image = gen.nvs_open(out, size - PAGE, gen.Page.VERSION2)
    for key, kind, encoding, value in rows:
        gen.write_entry(image, key, kind, encoding, value)
    gen.nvs_close(image)
    return out.getvalue()


def entry_offset(image: bytes, key: str) -> tuple[int, int]:
    # (page, entry index) of the first written entry whose key is `key`.
    for page in range(len(image) // PAGE):
        for i in range(126):
            off = page * PAGE + 64 + 32 * i
            if image[off + 8 : off + 24].split(b"\0")[0] == key.encode():
                return page, i
    raise AssertionError(f"{key} not found")


def test_reads_what_nvs_partition_gen_writes() -> None:
    cert = bytes(range(256)) * 20  # 5120 bytes: a blob split over two pages
    image = gen_image(
        [
            ("rmaker_creds", "namespace", "", ""),
            ("node_id", "data", "binary", b"VtXfecXiRKazHoBZkkLAHX"),
            ("client_cert", "data", "binary", cert),
            ("random", "data", "hex2bin", "ab" * 64),
            ("other", "namespace", "", ""),
            ("boots", "data", "u8", "200"),
            ("delta", "data", "i16", "-300"),
            ("big", "data", "u64", str(2**40 + 5)),
            ("name", "data", "string", "bench ü"),
        ]
    )
    part = nvs.read_partition(image)
    assert part.version == 2
    assert part.namespaces == {
        "rmaker_creds": {
            "node_id": b"VtXfecXiRKazHoBZkkLAHX",
            "client_cert": cert,
            "random": b"\xab" * 64,
        },
        "other": {"boots": 200, "delta": -300, "big": 2**40 + 5, "name": "bench ü"},
    }
    assert part.get("rmaker_creds", "node_id") == b"VtXfecXiRKazHoBZkkLAHX"
    assert part.get("rmaker_creds", "client_key") is None


def test_build_partition_round_trips_through_the_reader() -> None:
    values: dict[str, dict[str, nvs.Value]] = {
        "rmaker_creds": {"client_key": b"k" * 300, "client_cert": b"c" * 9000, "n": -7},
        "app": {"greeting": "hello"},
    }
    image = nvs.build_partition(values, 0x6000)
    assert len(image) == 0x6000
    assert nvs.read_partition(image).namespaces == values
    assert nvs.read_partition(b"\xff" * 0x6000).blank


@settings(max_examples=25, deadline=None)
@given(
    st.dictionaries(
        st.text("abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=15),
        st.binary(min_size=1, max_size=3000) | st.integers(-(2**31), 2**31 - 1),
        max_size=5,
    )
)
def test_any_blobs_and_ints_round_trip(entries: dict[str, nvs.Value]) -> None:
    image = nvs.build_partition({"ns": entries}, 0x6000)
    assert nvs.read_partition(image).namespaces == {"ns": entries}


def test_build_partition_refuses_what_does_not_fit() -> None:
    with pytest.raises(ValueError, match="must be 1 to 15 ASCII characters"):
        nvs.build_partition({"ns": {"a_key_that_is_too_long": b"x"}}, 0x6000)
    with pytest.raises(ValueError, match="cannot store float"):
        nvs.build_partition({"ns": {"f": 1.5}}, 0x6000)  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="do not fit in 0x3000 bytes"):
        nvs.build_partition({"ns": {"a": b"x" * 4000, "b": b"y" * 4000}}, 0x3000)


def erase_item(image: bytearray, key: str) -> None:
    # Mark the first item called `key` erased (bitmap state 00 over its whole span), as ESP-IDF
    # does when a key is overwritten or removed.
    page, i = entry_offset(bytes(image), key)
    span = image[page * PAGE + 64 + 32 * i + 2]
    for n in range(i, i + span):
        image[page * PAGE + 32 + n // 4] &= ~(0b11 << (n % 4 * 2)) & 0xFF


def test_an_erased_entry_is_gone() -> None:
    image = bytearray(
        gen_image(
            [("ns", "namespace", "", ""), ("a", "data", "u8", "1"), ("b", "data", "u8", "2")]
        )
    )
    erase_item(image, "a")
    assert nvs.read_partition(bytes(image)).namespaces == {"ns": {"b": 2}}


def corrupt(image: bytes, offset: int, value: int) -> bytes:
    out = bytearray(image)
    out[offset] = value
    return bytes(out)


def test_malformed_partitions_are_refused_with_the_place_and_fault() -> None:
    image = gen_image([("ns", "namespace", "", ""), ("key", "data", "binary", b"blob" * 20)])
    page, i = entry_offset(image, "key")
    entry = page * PAGE + 64 + 32 * i
    cases = {
        "page 0: header CRC mismatch": corrupt(image, 5, 7),
        "page 0: unknown page state 0x12fffffe": corrupt(image, 3, 0x12),
        f"page {page} entry {i}: entry header CRC mismatch": corrupt(image, entry + 9, ord("X")),
        f"page {page} entry {i} key 'key': data CRC mismatch": corrupt(image, entry + 35, 0),
        "page 5: uninitialised page is not erased": corrupt(image, 5 * PAGE + 100, 0),
    }
    for message, data in cases.items():
        with pytest.raises(nvs.NVSFormatError) as info:
            nvs.read_partition(data)
        assert str(info.value) == f"nvs: {message}"
    with pytest.raises(nvs.NVSFormatError, match="size 100 is not a positive multiple of 4096"):
        nvs.read_partition(b"\xff" * 100)


def test_a_blob_missing_a_chunk_is_refused() -> None:
    image = bytearray(
        gen_image([("ns", "namespace", "", ""), ("big", "data", "binary", b"z" * 5000)])
    )
    erase_item(image, "big")  # the first chunk: the blob's index now points at nothing
    with pytest.raises(nvs.NVSFormatError, match=r"blob 'big': chunk 0 of 0\.\.1 is missing"):
        nvs.read_partition(bytes(image))


def test_entry_crc_matches_esp_idf_formula() -> None:
    # The CRC the reader checks is ESP-IDF's crc32_le over bytes 0-3 and 8-31, seeded 0xFFFFFFFF.
    image = gen_image([("ns", "namespace", "", ""), ("v", "data", "u32", "7")])
    page, i = entry_offset(image, "v")
    entry = image[page * PAGE + 64 + 32 * i :][:32]
    (crc,) = struct.unpack_from("<I", entry, 4)
    assert crc == zlib.crc32(entry[:4] + entry[8:], 0xFFFFFFFF) & 0xFFFFFFFF


IDENTITY = nvsimage.Identity(
    key_pem="-----BEGIN EC PRIVATE KEY-----\nS0VZ\n-----END EC PRIVATE KEY-----\n",
    cert="-----BEGIN CERTIFICATE-----\nQ0VSVA==\n-----END CERTIFICATE-----\n",
    node_id="VtXfecXiRKazHoBZkkLAHX",
    mqtt_host="mqtt.example.test",
    random=bytes(range(64)),
)


def test_credentials_use_the_device_store_layout() -> None:
    creds = nvsimage.credentials(IDENTITY)["rmaker_creds"]
    # RainMaker's key names and contents (no trailing NUL), plus the store's own length index.
    assert creds["client_key"] == IDENTITY.key_pem.encode()
    assert creds["client_cert"] == IDENTITY.cert.encode()
    assert creds["node_id"] == b"VtXfecXiRKazHoBZkkLAHX"
    assert creds["mqtt_host"] == b"mqtt.example.test"
    assert creds["random"] == bytes(range(64))
    assert "mqtt_cred_host" not in creds
    assert set(creds) - set(nvs.CREDS_KEYS) == {"rmclaim_lens"}


def test_the_device_store_reads_a_built_image_back() -> None:
    image = nvs.build_partition(nvsimage.credentials(IDENTITY), 0x6000)
    found = nvsimage.read_identity(image)
    assert found.claimed and found.readable
    assert (found.node_id, found.mqtt_host, found.cert) == (
        IDENTITY.node_id,
        IDENTITY.mqtt_host,
        IDENTITY.cert,
    )
    assert found.describe() == "claimed as VtXfecXiRKazHoBZkkLAHX"
    blank = nvsimage.read_identity(b"\xff" * 0x6000)
    assert (blank.readable, blank.claimed, blank.describe()) == (True, False, "no identity")
    broken = nvsimage.read_identity(b"\x00" * 0x6000)
    assert not broken.readable
    assert broken.describe() == (
        "NVS that does not read as an identity (nvs: page 0: unknown page state 0x00000000)"
    )
