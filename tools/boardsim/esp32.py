"""esp32 stand-in for the Unix port: NVS with the real method set, errors and commit semantics."""

# Lean on purpose: on a board this module is built in and NVS costs no GC heap; here its code
# and data do, and a claim must fit a board's heap with it. So: few functions, const codes,
# the committed state read once (decoded) and then kept while nvs.json stays unchanged
# (size and modification time), and commits written piece by piece, never as one string.

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

HEAP_DATA = 4
HEAP_EXEC = 1

# Shared by every NVS handle in this process, as on the chip: namespace -> {key: value}, where
# a value is ("b", bytes), ("i", int) or None for an erase not yet committed.
_pending = {}
# The committed state as last read or written: (nvs.json path, (size, mtime), {namespace:
# {key: ("b", bytes) or ("i", int)}}); nvs.json holds blobs as hex text.
_committed = None


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


def _stamp(path):
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st[6], st[8]


def _load():
    # The committed state: {namespace: {key: (kind, value)}}, read again only when nvs.json
    # changed (the board directory moved, or another process wrote it).
    global _committed
    path = _boardsim.path("nvs.json")
    stamp = _stamp(path)
    if _committed is None or _committed[0] != path or _committed[1] != stamp:
        _committed = None
        data = {}
        if stamp is not None:
            with open(path) as f:
                raw = json.load(f)
            for ns, entries in raw.items():
                data[ns] = {}
                for key, (kind, value) in entries.items():
                    data[ns][key] = (kind, bytes.fromhex(value) if kind == "b" else value)
            del raw
        _committed = (path, stamp, data)
    return _committed[2]


class NVS:
    def __init__(self, namespace):
        self._ns = _name(namespace)

    def __repr__(self):
        return "<NVS namespace>"

    def _get(self, key, kind):
        # The value of key if it holds that kind, else NOT_FOUND (IDF keeps a type per entry).
        _name(key)
        pending = _pending.get(self._ns, {})
        if key in pending:
            entry = pending[key]
        else:
            entry = _load().get(self._ns, {}).get(key)
        if entry is None or kind and entry[0] != kind:
            raise _error(_NOT_FOUND)
        return entry[1]

    def _set(self, key, entry):
        # One mutation (entry None: erase): counted for power cuts, checked against the space.
        _name(key)
        _boardsim.count_nvs_mutation()
        state = {}
        for part in (_load(), _pending, {self._ns: {key: entry}}):
            for ns, entries in part.items():
                state.setdefault(ns, {}).update(entries)
        used = 0
        for entries in state.values():
            for v in entries.values():
                # One 32-byte entry for the header, plus blob data rounded up to whole entries.
                if v is not None:
                    used += 32 + ((len(v[1]) + 31) // 32 * 32 if v[0] == "b" else 0)
        if used > _CAPACITY:
            raise _error(_NOT_ENOUGH_SPACE)
        _pending.setdefault(self._ns, {})[key] = entry

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
        data = self._get(key, "b")
        if len(data) > len(buffer):
            raise _error(_INVALID_LENGTH)
        memoryview(buffer)[: len(data)] = data
        return len(data)

    def erase_key(self, key):
        self._get(key, None)
        self._set(key, None)

    def commit(self):
        global _committed
        _boardsim.count_nvs_mutation()
        pending = _pending.pop(self._ns, None)
        if not pending:
            return
        data = _load()
        _committed = None  # written below, or unknown if writing fails
        entries = data.setdefault(self._ns, {})
        for key, entry in pending.items():
            if entry is None:
                entries.pop(key, None)
            else:
                entries[key] = entry
        if not entries:
            del data[self._ns]
        # nvs.json, as json.dump would write it, with each blob's hex made 64 bytes at a time.
        path = _boardsim.path("nvs.json")
        with open(path + ".tmp", "w") as f:
            f.write("{")
            sep = ""
            for ns, entries in data.items():
                f.write("%s%s: {" % (sep, json.dumps(ns)))
                sep = ""
                for key, (kind, value) in entries.items():
                    f.write('%s%s: ["%s", ' % (sep, json.dumps(key), kind))
                    if kind == "b":
                        f.write('"')
                        for i in range(0, len(value), 64):
                            f.write(value[i : i + 64].hex())
                        f.write('"]')
                    else:
                        f.write("%d]" % value)
                    sep = ", "
                f.write("}")
                sep = ", "
            f.write("}")
        # rename is atomic: a power cut leaves either the old or the new committed state.
        os.rename(path + ".tmp", path)
        _committed = (path, _stamp(path), data)


def idf_heap_info(capabilities):
    # (total, free, largest free block, minimum free seen) per region; one fixed region.
    del capabilities
    return [(327680, 204800, 110592, 180000)]
