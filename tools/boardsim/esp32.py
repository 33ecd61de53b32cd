"""esp32 stand-in for the Unix port: NVS with the real method set, errors and commit semantics."""

import json
import os

import _boardsim

# ESP-IDF error codes as MicroPython's esp32 port reports them: OSError(-code, name).
_NOT_FOUND = -0x1102
_NOT_ENOUGH_SPACE = -0x1105
_INVALID_NAME = -0x1106
_KEY_TOO_LONG = -0x1109
_INVALID_LENGTH = -0x110C
_VALUE_TOO_LONG = -0x110E
_NAMES = {
    _NOT_FOUND: "ESP_ERR_NVS_NOT_FOUND",
    _NOT_ENOUGH_SPACE: "ESP_ERR_NVS_NOT_ENOUGH_SPACE",
    _INVALID_NAME: "ESP_ERR_NVS_INVALID_NAME",
    _KEY_TOO_LONG: "ESP_ERR_NVS_KEY_TOO_LONG",
    _INVALID_LENGTH: "ESP_ERR_NVS_INVALID_LENGTH",
    _VALUE_TOO_LONG: "ESP_ERR_NVS_VALUE_TOO_LONG",
}
# MicroPython's default `nvs` partition is 0x6000 bytes: 6 pages of 4 KiB, one kept free for
# garbage collection, 126 entries of 32 bytes per page. A blob may use at most 97.6 % of the
# partition minus 4000 bytes (ESP-IDF NVS limits).
_CAPACITY = 5 * 126 * 32
_MAX_BLOB = int(0.976 * 0x6000) - 4000

HEAP_DATA = 4
HEAP_EXEC = 1

# Shared by every NVS handle in this process, as on the chip: namespace -> {key: value}, where
# a value is ("b", bytes), ("i", int) or None for an erase not yet committed.
_pending = {}


def _error(code):
    return OSError(code, _NAMES[code])


def _load():
    try:
        with open(_boardsim.path("nvs.json")) as f:
            raw = json.load(f)
    except OSError:
        return {}
    data = {}
    for ns, entries in raw.items():
        data[ns] = {}
        for key, (kind, value) in entries.items():
            data[ns][key] = (kind, bytes.fromhex(value) if kind == "b" else value)
    return data


def _save(data):
    raw = {}
    for ns, entries in data.items():
        raw[ns] = {}
        for key, (kind, value) in entries.items():
            raw[ns][key] = [kind, value.hex() if kind == "b" else value]
    tmp = _boardsim.path("nvs.json.tmp")
    with open(tmp, "w") as f:
        json.dump(raw, f)
    # rename is atomic: a power cut leaves either the old or the new committed state.
    os.rename(tmp, _boardsim.path("nvs.json"))


def _entry_size(kind, value):
    # One 32-byte entry for the header, plus the data rounded up to whole entries.
    if kind == "i":
        return 32
    return 32 + (len(value) + 31) // 32 * 32


class NVS:
    def __init__(self, namespace):
        if not isinstance(namespace, str) or not namespace:
            raise _error(_INVALID_NAME)
        if len(namespace) > 15:
            raise _error(_KEY_TOO_LONG)
        self._ns = namespace

    def __repr__(self):
        return "<NVS namespace>"

    def _check_key(self, key):
        if not isinstance(key, str) or not key:
            raise _error(_INVALID_NAME)
        if len(key) > 15:
            raise _error(_KEY_TOO_LONG)

    def _lookup(self, key):
        pending = _pending.get(self._ns, {})
        if key in pending:
            return pending[key]
        return _load().get(self._ns, {}).get(key)

    def _set(self, key, entry):
        self._check_key(key)
        _boardsim.count_nvs_mutation()
        used = 0
        merged = _load()
        for ns, entries in _pending.items():
            merged.setdefault(ns, {}).update(entries)
        merged.setdefault(self._ns, {})[key] = entry
        for entries in merged.values():
            for item in entries.values():
                if item is not None:
                    used += _entry_size(item[0], item[1])
        if used > _CAPACITY:
            raise _error(_NOT_ENOUGH_SPACE)
        _pending.setdefault(self._ns, {})[key] = entry

    def set_i32(self, key, value):
        value = int(value)
        if not -0x80000000 <= value <= 0x7FFFFFFF:
            raise OverflowError("overflow converting long int to machine word")
        self._set(key, ("i", value))

    def get_i32(self, key):
        self._check_key(key)
        entry = self._lookup(key)
        if entry is None or entry[0] != "i":
            raise _error(_NOT_FOUND)
        return entry[1]

    def set_blob(self, key, value):
        data = value.encode() if isinstance(value, str) else bytes(value)
        if len(data) > _MAX_BLOB:
            self._check_key(key)
            raise _error(_VALUE_TOO_LONG)
        self._set(key, ("b", data))

    def get_blob(self, key, buffer):
        self._check_key(key)
        entry = self._lookup(key)
        if entry is None or entry[0] != "b":
            raise _error(_NOT_FOUND)
        data = entry[1]
        if len(data) > len(buffer):
            raise _error(_INVALID_LENGTH)
        mv = memoryview(buffer)
        mv[: len(data)] = data
        return len(data)

    def erase_key(self, key):
        self._check_key(key)
        if self._lookup(key) is None:
            raise _error(_NOT_FOUND)
        _boardsim.count_nvs_mutation()
        _pending.setdefault(self._ns, {})[key] = None

    def commit(self):
        _boardsim.count_nvs_mutation()
        pending = _pending.pop(self._ns, None)
        if not pending:
            return
        data = _load()
        entries = data.setdefault(self._ns, {})
        for key, entry in pending.items():
            if entry is None:
                entries.pop(key, None)
            else:
                entries[key] = entry
        if not entries:
            del data[self._ns]
        _save(data)


def idf_heap_info(capabilities):
    # (total, free, largest free block, minimum free seen) per region; one fixed region.
    del capabilities
    return [(327680, 204800, 110592, 180000)]
