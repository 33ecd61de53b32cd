"""esp32 stand-in for the Unix port: NVS with the real method set and errors, writing through."""

# NVS as ESP-IDF 5.x does it (the releases MicroPython v1.23+ build on): every set_blob, set_i32
# and erase_key is on flash when it returns, and commit() only checks the handle
# (components/nvs_flash/src/nvs_handle_simple.cpp, NVSHandleSimple::commit, v5.0-v5.5); each
# single write is atomic: after a power cut a key holds its old value or its new one (a blob's
# new version is written whole before the old one is erased, nvs_storage.cpp writeItem). So here
# each write replaces nvs.json whole (write a copy, then rename) before it returns.
# esp32.NVS(namespace) calls nvs_open on each construction and MicroPython never calls nvs_close
# (ports/esp32/esp32_nvs.c, v1.23-v1.28): every construction takes ESP-IDF RAM for good. Each one
# is logged (nvs-opens.log), so tests can count them.
# Lean on purpose: on a board this module is built in and NVS costs no GC heap; here its code
# and data do, and a claim must fit a board's heap with it. So: few functions, const codes, no
# copy of the stored state kept, and nvs.json (blobs as hex text) read and written a piece at a
# time: a read scans the file for the one entry it wants and decodes that entry's hex straight
# into the caller's buffer; a write copies the other entries' hex across in chunks.

import json
import os

import _boardsim
from micropython import const

# ESP-IDF error codes as MicroPython's esp32 port reports them: OSError(-code, name).
_NOT_FOUND = const(-0x1102)
_NOT_ENOUGH_SPACE = const(-0x1105)
_INVALID_NAME = const(-0x1106)
_KEY_TOO_LONG = const(-0x1109)
_INVALID_LENGTH = const(-0x110C)
_VALUE_TOO_LONG = const(-0x110E)
# MicroPython's default `nvs` partition is 0x6000 bytes: 6 pages of 4 KiB, one kept free for
# garbage collection, 126 entries of 32 bytes per page. A blob may use at most 97.6 % of the
# partition minus 4000 bytes (ESP-IDF NVS limits): int(0.976 * 0x6000) - 4000.
_CAPACITY = const(20160)  # 5 * 126 * 32
_MAX_BLOB = const(19986)
_CHUNK = const(64)  # bytes of nvs.json read or written at a time

HEAP_DATA = 4
HEAP_EXEC = 1


def _error(code):
    name = {
        _NOT_FOUND: "NOT_FOUND",
        _NOT_ENOUGH_SPACE: "NOT_ENOUGH_SPACE",
        _INVALID_NAME: "INVALID_NAME",
        _KEY_TOO_LONG: "KEY_TOO_LONG",
        _INVALID_LENGTH: "INVALID_LENGTH",
        _VALUE_TOO_LONG: "VALUE_TOO_LONG",
    }[code]
    return OSError(code, "ESP_ERR_NVS_" + name)


def _name(key):
    # Namespace and key names: 1 to 15 characters.
    if not isinstance(key, str) or not key:
        raise _error(_INVALID_NAME)
    if len(key) > 15:
        raise _error(_KEY_TOO_LONG)
    return key


def _stored():
    # The stored entries, from nvs.json ({namespace: {key: [kind, value]}}, as json.dump
    # writes it): [(namespace, key, kind, value)], value an int, or for a blob (file offset
    # of its hex digits, number of bytes). The file is read 64 bytes at a time and only short
    # strings (names, kinds) are kept, never a blob's hex.
    out = []
    try:
        f = open(_boardsim.path("nvs.json"), "rb")
    except OSError:
        return out
    words = []  # the entry being read: numbers, and strings as (offset, length, text or None)
    depth = pos = start = 0
    ns = text = num = None
    in_str = escaped = False
    with f:
        while True:
            chunk = f.read(_CHUNK)
            if not chunk:
                return out
            for c in chunk:
                if in_str:
                    if c == 0x22 and not escaped:  # the closing quote
                        in_str = False
                        words.append(
                            (
                                start,
                                pos - start,
                                None if text is None else json.loads(b'"' + text + b'"'),
                            )
                        )
                    elif text is not None:
                        text.append(c)
                        if len(text) > 40:  # longer than any name or kind: only its extent
                            text = None
                    escaped = c == 0x5C and not escaped
                elif c == 0x22:
                    in_str = True
                    text = bytearray()
                    start = pos + 1
                elif c == 0x2D or 0x30 <= c <= 0x39:  # an i32's sign and digits
                    if num is None:
                        num = bytearray()
                    num.append(c)
                else:
                    if num is not None:
                        words.append(int(bytes(num)))
                        num = None
                    if c == 0x7B or c == 0x5B:  # { [
                        depth += 1
                        if depth == 2:
                            ns = words.pop()[2]
                    elif c == 0x7D or c == 0x5D:  # } ]
                        if depth == 3 and len(words) == 3:
                            key, kind, value = words
                            if kind[2] == "b":
                                value = (value[0], value[1] // 2)
                            out.append((ns, key[2], kind[2], value))
                        words = []
                        depth -= 1
                pos += 1


def _merged(ns, key, entry):
    # {namespace: [(key, kind, value)]}: the stored entries with one change applied (entry
    # (kind, value), or None for an erase); a value is an int, bytes (the change) or (offset,
    # length) in nvs.json (unchanged).
    out = {}
    for n, k, kind, value in _stored():
        if n != ns or k != key:
            out.setdefault(n, []).append((k, kind, value))
    if entry is not None:
        out.setdefault(ns, []).append((key, entry[0], entry[1]))
    return out


def _write(state):
    # nvs.json replaced by `state`, as json.dump would write it: the unchanged blobs' hex copied
    # from the old file, a new one's written 32 bytes at a time. rename is atomic: a power cut
    # leaves the old state or the new one, as IDF's single writes do.
    path = _boardsim.path("nvs.json")
    old = None
    with open(path + ".tmp", "w") as f:
        f.write("{")
        sep = ""
        for ns, entries in state.items():
            f.write("%s%s: {" % (sep, json.dumps(ns)))
            sep = ""
            for key, kind, value in entries:
                f.write('%s%s: ["%s", ' % (sep, json.dumps(key), kind))
                sep = ", "
                if kind == "i":
                    f.write("%d]" % value)
                    continue
                f.write('"')
                if isinstance(value, bytes):
                    for i in range(0, len(value), _CHUNK // 2):
                        f.write(value[i : i + _CHUNK // 2].hex())
                else:
                    if old is None:
                        old = open(path, "rb")
                    old.seek(value[0])
                    left = 2 * value[1]
                    while left:
                        part = old.read(min(_CHUNK, left))
                        f.write(part.decode())
                        left -= len(part)
                f.write('"]')
            f.write("}")
            sep = ", "
        f.write("}")
    if old is not None:
        old.close()
    os.rename(path + ".tmp", path)


class NVS:
    def __init__(self, namespace):
        self._ns = _name(namespace)
        _boardsim.log("nvs-opens.log", self._ns)

    def __repr__(self):
        return "<NVS namespace>"

    def _get(self, key, kind):
        # The stored value of key ((offset, length) of a blob's hex in nvs.json) if it holds
        # that kind, else NOT_FOUND (IDF keeps a type per entry).
        _name(key)
        entry = None
        for ns, k, kd, value in _stored():
            if ns == self._ns and k == key:
                entry = (kd, value)
        if entry is None or kind and entry[0] != kind:
            raise _error(_NOT_FOUND)
        return entry[1]

    def _set(self, key, entry):
        # One write (entry None: an erase), on flash when this returns; power cuts land just
        # before or just after it (_boardsim.nvs_write).
        _name(key)
        _boardsim.nvs_write(False)
        state = _merged(self._ns, key, entry)
        used = 0
        for entries in state.values():
            for _, kind, value in entries:
                # One 32-byte entry for the header, plus blob data rounded up to whole entries.
                used += 32
                if kind == "b":
                    n = len(value) if isinstance(value, bytes) else value[1]
                    used += (n + 31) // 32 * 32
        if used > _CAPACITY:
            raise _error(_NOT_ENOUGH_SPACE)
        _write(state)
        _boardsim.nvs_write(True)

    def set_i32(self, key, value):
        value = int(value)
        if not -0x80000000 <= value <= 0x7FFFFFFF:
            raise OverflowError("overflow converting long int to machine word")
        self._set(key, ("i", value))

    def get_i32(self, key):
        return self._get(key, "i")

    def set_blob(self, key, value):
        data = value.encode() if isinstance(value, str) else bytes(value)
        if len(data) > _MAX_BLOB:
            _name(key)
            raise _error(_VALUE_TOO_LONG)
        self._set(key, ("b", data))

    def get_blob(self, key, buffer):
        offset, n = self._get(key, "b")
        if n > len(buffer):
            raise _error(_INVALID_LENGTH)
        mv = memoryview(buffer)
        with open(_boardsim.path("nvs.json"), "rb") as f:
            f.seek(offset)
            for i in range(0, n, _CHUNK // 2):
                part = bytes.fromhex(f.read(min(_CHUNK, 2 * (n - i))).decode())
                mv[i : i + len(part)] = part
        return n

    def erase_key(self, key):
        # A missing key is NOT_FOUND and writes nothing.
        self._get(key, None)
        self._set(key, None)

    def commit(self):
        # Nothing to do: every write is on flash already (IDF's commit only checks the handle).
        pass


def idf_heap_info(capabilities):
    # (total, free, largest free block, minimum free seen) per region; one fixed region.
    del capabilities
    return [(327680, 204800, 110592, 180000)]
