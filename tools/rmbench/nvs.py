"""ESP-IDF NVS partitions on the host: a strict reader, and images made by nvs_partition_gen.

The reader follows ESP-IDF's on-flash format (pages of 4096 bytes: a 32-byte header, a 32-byte
entry-state bitmap, then 126 entries of 32 bytes). It checks every CRC and every length and raises
NVSFormatError naming the page, entry and fault rather than guessing: flash uses it to tell whether
a board holds a claimed identity before its flash is rewritten.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

PAGE_SIZE = 0x1000
_HEADER_SIZE = 32
_ENTRY_SIZE = 32
_FIRST_ENTRY = 64
_ENTRIES_PER_PAGE = 126
_KEY_MAX = 15

# Page states (header word 0). A page is written by clearing bits, so each state is a subset.
_PAGE_UNINITIALIZED = 0xFFFFFFFF
_PAGE_ACTIVE = 0xFFFFFFFE
_PAGE_FULL = 0xFFFFFFFC
_PAGE_FREEING = 0xFFFFFFF8
_PAGE_CORRUPT = 0xFFFFFFF0
_PAGE_VERSIONS = {0xFF: 1, 0xFE: 2}

# Entry states in the bitmap, two bits per entry.
_ENTRY_EMPTY = 0b11
_ENTRY_WRITTEN = 0b10
_ENTRY_ERASED = 0b00

# Item types; the low nibble of a primitive type is its size in bytes, bit 4 says signed.
_PRIMITIVES = {0x01, 0x11, 0x02, 0x12, 0x04, 0x14, 0x08, 0x18}
_TYPE_STR = 0x21
_TYPE_BLOB = 0x41  # version 1: the whole blob in one item
_TYPE_BLOB_DATA = 0x42  # version 2: one chunk of a blob
_TYPE_BLOB_IDX = 0x48  # version 2: size and chunk range of a blob
_NAMESPACE_INDEX = 0  # namespace names are U8 items in namespace 0 whose value is the index

# The RainMaker credential names (ESP RainMaker firmware esp_rmaker_client_data.h, all blobs
# without a trailing NUL), in namespace rmaker_creds.
CREDS_KEYS = ("node_id", "client_cert", "client_key", "mqtt_host", "mqtt_cred_host", "random")

Value = int | str | bytes


class NVSFormatError(ValueError):
    """The bytes are not a well-formed NVS partition; the message names where and what."""


@dataclass(frozen=True)
class Partition:
    """The live key/value pairs of an NVS partition, by namespace name then key."""

    namespaces: Mapping[str, Mapping[str, Value]]
    version: int | None  # None when no page was ever initialised (a blank partition)

    def get(self, namespace: str, key: str) -> Value | None:
        """The value of `key` in `namespace`, or None when absent."""
        return self.namespaces.get(namespace, {}).get(key)

    @property
    def blank(self) -> bool:
        """True when no key is stored at all."""
        return not any(self.namespaces.values())


def is_erased(data: bytes) -> bool:
    """True when every byte is 0xFF (erased flash)."""
    return data.count(0xFF) == len(data)


def _crc(data: bytes) -> int:
    # ESP-IDF's crc32_le with an initial value of 0xFFFFFFFF, as nvs_partition_gen computes it.
    return zlib.crc32(data, 0xFFFFFFFF) & 0xFFFFFFFF


def _entry_states(page: bytes) -> list[int]:
    bitmap = page[_HEADER_SIZE:_FIRST_ENTRY]
    return [(bitmap[i // 4] >> ((i % 4) * 2)) & 0b11 for i in range(_ENTRIES_PER_PAGE)]


def _key(raw: bytes, where: str) -> str:
    end = raw.find(0)
    if end < 0:
        raise NVSFormatError(f"{where}: key is not NUL-terminated")
    if end == 0:
        raise NVSFormatError(f"{where}: empty key")
    try:
        return raw[:end].decode("ascii")
    except UnicodeDecodeError:
        raise NVSFormatError(f"{where}: key is not ASCII: {raw[:end]!r}") from None


@dataclass(frozen=True)
class _Item:
    ns: int
    type: int
    chunk: int
    key: str
    value: Value  # primitives: int; strings: str; blobs and blob chunks: bytes
    blob_index: tuple[int, int, int] | None = None  # blob index items: (size, count, start)


def _page_items(page: bytes, page_no: int) -> Iterable[_Item]:
    states = _entry_states(page)
    i = 0
    while i < _ENTRIES_PER_PAGE:
        state = states[i]
        if state in (_ENTRY_EMPTY, _ENTRY_ERASED):
            i += 1
            continue
        where = f"nvs: page {page_no} entry {i}"
        if state != _ENTRY_WRITTEN:
            raise NVSFormatError(f"{where}: invalid entry state 0b{state:02b}")
        off = _FIRST_ENTRY + i * _ENTRY_SIZE
        entry = page[off : off + _ENTRY_SIZE]
        ns, typ, span, chunk = entry[0], entry[1], entry[2], entry[3]
        (crc,) = struct.unpack_from("<I", entry, 4)
        if _crc(entry[0:4] + entry[8:32]) != crc:
            raise NVSFormatError(f"{where}: entry header CRC mismatch")
        key = _key(entry[8:24], where)
        where = f"{where} key {key!r}"
        if span < 1 or i + span > _ENTRIES_PER_PAGE:
            raise NVSFormatError(f"{where}: span {span} runs past the page")
        if any(s != _ENTRY_WRITTEN for s in states[i + 1 : i + span]):
            raise NVSFormatError(f"{where}: data entries of a {span}-entry item are not written")
        data = entry[24:32]
        if typ in _PRIMITIVES:
            if span != 1:
                raise NVSFormatError(f"{where}: wanted span 1 for a primitive, got {span}")
            size = typ & 0x0F
            value = int.from_bytes(data[:size], "little", signed=bool(typ & 0x10))
            yield _Item(ns, typ, chunk, key, value)
        elif typ in (_TYPE_STR, _TYPE_BLOB, _TYPE_BLOB_DATA):
            size, _reserved, data_crc = struct.unpack("<HHI", data)
            room = (span - 1) * _ENTRY_SIZE
            if size > room or room - size >= _ENTRY_SIZE:
                raise NVSFormatError(f"{where}: size {size} does not fit span {span}")
            payload = page[off + _ENTRY_SIZE : off + _ENTRY_SIZE + size]
            if _crc(payload) != data_crc:
                raise NVSFormatError(f"{where}: data CRC mismatch")
            yield _Item(
                ns, typ, chunk, key, _text(payload, where) if typ == _TYPE_STR else payload
            )
        elif typ == _TYPE_BLOB_IDX:
            if span != 1:
                raise NVSFormatError(f"{where}: wanted span 1 for a blob index, got {span}")
            size, count, start = struct.unpack_from("<IBB", data)
            yield _Item(ns, typ, chunk, key, b"", (size, count, start))
        else:
            raise NVSFormatError(f"{where}: unknown item type 0x{typ:02x}")
        i += span


def _text(payload: bytes, where: str) -> str:
    if not payload.endswith(b"\0"):
        raise NVSFormatError(f"{where}: string is not NUL-terminated")
    try:
        return payload[:-1].decode("utf-8")
    except UnicodeDecodeError:
        raise NVSFormatError(f"{where}: string is not UTF-8") from None


def _pages(data: bytes) -> list[tuple[int, int, int, bytes]]:
    # (sequence number, page number, format version, page) of every initialised page, oldest first.
    pages = []
    for page_no in range(len(data) // PAGE_SIZE):
        page = data[page_no * PAGE_SIZE : (page_no + 1) * PAGE_SIZE]
        where = f"nvs: page {page_no}"
        state, seq, version_byte = struct.unpack_from("<IIB", page)
        if state == _PAGE_UNINITIALIZED:
            if not is_erased(page):
                raise NVSFormatError(f"{where}: uninitialised page is not erased")
            continue
        if state == _PAGE_CORRUPT:
            continue  # ESP-IDF skips such a page and erases it when it needs room
        if state not in (_PAGE_ACTIVE, _PAGE_FULL, _PAGE_FREEING):
            raise NVSFormatError(f"{where}: unknown page state 0x{state:08x}")
        (crc,) = struct.unpack_from("<I", page, 28)
        if _crc(page[4:28]) != crc:
            raise NVSFormatError(f"{where}: header CRC mismatch")
        if version_byte not in _PAGE_VERSIONS:
            raise NVSFormatError(f"{where}: unknown format version 0x{version_byte:02x}")
        pages.append((seq, page_no, _PAGE_VERSIONS[version_byte], page))
    seqs = [p[0] for p in pages]
    if len(set(seqs)) != len(seqs):
        raise NVSFormatError("nvs: two pages share a sequence number")
    return sorted(pages)


def read_partition(data: bytes) -> Partition:
    """Parse an NVS partition image (e.g. read back from a board at its nvs offset).

    Args:
        data: the whole partition, a multiple of 4096 bytes.

    Returns:
        The live values by namespace and key (strings without their NUL, blobs reassembled).

    Raises:
        NVSFormatError: a malformed page or item, naming the page, entry, key and fault.
    """
    if not data or len(data) % PAGE_SIZE:
        raise NVSFormatError(f"nvs: size {len(data)} is not a positive multiple of {PAGE_SIZE}")
    pages = _pages(data)
    versions = {version for _seq, _no, version, _page in pages}
    if len(versions) > 1:
        raise NVSFormatError("nvs: pages of format versions 1 and 2 are mixed")
    # A key copied to a newer page while an older one is being freed: the newer copy wins.
    values: dict[tuple[int, str], _Item] = {}
    chunks: dict[tuple[int, str, int], bytes] = {}
    for _seq, page_no, _version, page in pages:
        for item in _page_items(page, page_no):
            if item.type == _TYPE_BLOB_DATA and isinstance(item.value, bytes):
                chunks[(item.ns, item.key, item.chunk)] = item.value
            else:
                values[(item.ns, item.key)] = item

    names: dict[int, str] = {}
    for (ns, key), item in values.items():
        if ns != _NAMESPACE_INDEX:
            continue
        index = item.value
        if item.type != 0x01 or not isinstance(index, int) or not 0 < index < 0xFF:
            raise NVSFormatError(f"nvs: namespace {key!r}: bad index entry")
        if index in names:
            raise NVSFormatError(
                f"nvs: namespaces {names[index]!r} and {key!r} share index {index}"
            )
        names[index] = key

    result: dict[str, dict[str, Value]] = {name: {} for name in names.values()}
    for (ns, key), item in values.items():
        if ns == _NAMESPACE_INDEX:
            continue
        if ns not in names:
            raise NVSFormatError(f"nvs: key {key!r} is in undeclared namespace index {ns}")
        value = item.value
        if item.blob_index is not None:
            value = _assemble_blob(chunks, ns, key, item.blob_index)
        result[names[ns]][key] = value
    # Blob chunks with no index are left over from an interrupted write; ESP-IDF ignores them too.
    return Partition(result, versions.pop() if versions else None)


def _assemble_blob(
    chunks: Mapping[tuple[int, str, int], bytes], ns: int, key: str, index: tuple[int, int, int]
) -> bytes:
    size, count, start = index
    parts = []
    for chunk in range(start, start + count):
        part = chunks.get((ns, key, chunk))
        if part is None:
            last = start + count - 1
            raise NVSFormatError(f"nvs: blob {key!r}: chunk {chunk} of {start}..{last} is missing")
        parts.append(part)
    blob = b"".join(parts)
    if len(blob) != size:
        raise NVSFormatError(
            f"nvs: blob {key!r}: index says {size} bytes, chunks hold {len(blob)}"
        )
    return blob


def build_partition(namespaces: Mapping[str, Mapping[str, Value]], size: int) -> bytes:
    """An NVS partition image (format version 2) holding `namespaces`, made by nvs_partition_gen.

    bytes become blobs, str become strings and int become i32 values, each as esp32.NVS reads them.

    Args:
        namespaces: values by namespace name then key (names and keys of at most 15 characters).
        size: partition size in bytes, a multiple of 4096 and at least 0x3000.

    Returns:
        The image, exactly `size` bytes.

    Raises:
        ValueError: a name too long, a value of another type, or values that do not fit.
    """
    from esp_idf_nvs_partition_gen import nvs_partition_gen as gen

    if size % PAGE_SIZE or size < 3 * PAGE_SIZE:
        raise ValueError(f"nvs: size 0x{size:x} must be a multiple of 0x1000 and at least 0x3000")
    out = io.BytesIO()
    # One page stays reserved for ESP-IDF's garbage collection, as nvs_partition_gen's CLI does.
    image = gen.nvs_open(out, size - PAGE_SIZE, gen.Page.VERSION2)
    try:
        for name, entries in namespaces.items():
            _check_name(name, "namespace")
            gen.write_entry(image, name, "namespace", "", "")
            for key, value in entries.items():
                _check_name(key, "key")
                if isinstance(value, bytes):
                    gen.write_entry(image, key, "data", "binary", value)
                elif isinstance(value, str):
                    gen.write_entry(image, key, "data", "string", value)
                elif isinstance(value, int) and -(2**31) <= value < 2**31:
                    gen.write_entry(image, key, "data", "i32", str(value))
                else:
                    raise ValueError(f"nvs: key {key!r}: cannot store {type(value).__name__}")
        gen.nvs_close(image)
    except (gen.InputError, gen.InsufficientSizeError, gen.PageFullError) as e:
        raise ValueError(f"nvs: values do not fit in 0x{size:x} bytes: {e}") from e
    data = out.getvalue()
    if len(data) != size:
        raise ValueError(f"nvs: generator made {len(data)} bytes, wanted {size}")
    return data


def _check_name(name: str, what: str) -> None:
    if not name or len(name) > _KEY_MAX or not name.isascii():
        raise ValueError(f"nvs: {what} {name!r} must be 1 to {_KEY_MAX} ASCII characters")
