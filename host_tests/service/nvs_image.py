"""A small reader of ESP-IDF NVS images (what esp-rainmaker-cli flashes), for the service tests.

Written from the NVS format description (pages of 32-byte entries, CRC32 on headers, entries and
data) and checked against images made by esp-idf-nvs-partition-gen in test_rainmaker_cli.py.
Reads every namespace's values: integers, strings, v1 blobs and v2 multi-page blobs.
"""

from __future__ import annotations

import struct
import zlib

PAGE = 4096
ENTRY = 32
ENTRIES = 126
ACTIVE, FULL = 0xFFFFFFFE, 0xFFFFFFFC
WRITTEN = 0b10
SZ, BLOB, BLOB_DATA, BLOB_IDX = 0x21, 0x41, 0x42, 0x48
INTS = {0x01: "<B", 0x11: "<b", 0x02: "<H", 0x12: "<h", 0x04: "<I", 0x14: "<i"}
INTS |= {0x08: "<Q", 0x18: "<q"}


class NVSError(ValueError):
    """The image breaks the NVS format (the message says where)."""


def _crc(data: bytes) -> int:
    return zlib.crc32(data, 0xFFFFFFFF) & 0xFFFFFFFF


def read_nvs(image: bytes) -> dict[str, dict[str, int | bytes]]:
    """{namespace: {key: value}}; strings and blobs as bytes (a string without its NUL)."""
    if len(image) % PAGE:
        raise NVSError(f"image size {len(image)} is not a multiple of {PAGE}")
    names: dict[int, str] = {}
    raw: list[tuple[int, int, str, int, bytes, bytes]] = []  # ns, type, key, chunk, data8, payload
    for base in range(0, len(image), PAGE):
        page = image[base : base + PAGE]
        state = struct.unpack_from("<I", page)[0]
        if state not in (ACTIVE, FULL):
            continue
        if _crc(page[4:28]) != struct.unpack_from("<I", page, 28)[0]:
            raise NVSError(f"page at 0x{base:x}: header CRC mismatch")
        bitmap = page[32:64]
        i = 0
        while i < ENTRIES:
            if (bitmap[i // 4] >> ((i % 4) * 2)) & 3 != WRITTEN:
                i += 1
                continue
            off = 64 + i * ENTRY
            entry = page[off : off + ENTRY]
            ns, kind, span, chunk = entry[0], entry[1], entry[2], entry[3]
            if _crc(entry[:4] + entry[8:]) != struct.unpack_from("<I", entry, 4)[0]:
                raise NVSError(f"page at 0x{base:x}, entry {i}: CRC mismatch")
            if span < 1 or i + span > ENTRIES:
                raise NVSError(f"page at 0x{base:x}, entry {i}: bad span {span}")
            key = entry[8:24].split(b"\0", 1)[0].decode()
            payload = page[off + ENTRY : off + span * ENTRY]
            raw.append((ns, kind, key, chunk, entry[24:32], payload))
            i += span
    for ns, kind, key, _, data, _ in raw:
        if ns == 0 and kind == 0x01:
            names[data[0]] = key
    out: dict[str, dict[str, int | bytes]] = {name: {} for name in names.values()}
    chunks: dict[tuple[int, str, int], bytes] = {}
    for ns, kind, key, chunk, data, payload in raw:
        if ns == 0:
            continue
        if kind in (SZ, BLOB, BLOB_DATA):
            size, _, crc = struct.unpack("<HHI", data)
            value = payload[:size]
            if len(value) != size or _crc(value) != crc:
                raise NVSError(f"{key}: data CRC or size mismatch")
            if kind == BLOB_DATA:
                chunks[(ns, key, chunk)] = value
            else:
                out[names[ns]][key] = value[:-1] if kind == SZ else value
        elif kind in INTS:
            out[names[ns]][key] = struct.unpack_from(INTS[kind], data)[0]
    for ns, kind, key, _, data, _ in raw:
        if kind == BLOB_IDX:
            size, count, start = struct.unpack_from("<IBB", data)
            value = b"".join(chunks[(ns, key, start + n)] for n in range(count))
            if len(value) != size:
                raise NVSError(f"{key}: blob of {len(value)} bytes, index says {size}")
            out[names[ns]][key] = value
    return out
