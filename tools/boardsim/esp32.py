"""esp32 stand-in for the Unix port: NVS with the real method set, errors and commit semantics."""

# Lean on purpose: on a board this module is built in and costs no GC heap, here its code
# does, and the claim must fit a board's heap with it (few functions, const codes).

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


def _load():
    # The committed state as nvs.json holds it: {namespace: {key: [kind, value]}}, blobs as
    # hex text (decoded only when read: the file holds every namespace).
    try:
        with open(_boardsim.path("nvs.json")) as f:
            return json.load(f)
    except OSError:
        return {}


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
            if entry and entry[0] == "b":
                entry = ("b", bytes.fromhex(entry[1]))
        if entry is None or kind and entry[0] != kind:
            raise _error(_NOT_FOUND)
        return entry[1]

    def _set(self, key, entry):
        # One mutation (entry None: erase): counted for power cuts, checked against the space.
        _name(key)
        _boardsim.count_nvs_mutation()
        state = _load()
        for ns, entries in _pending.items():
            for k, v in entries.items():
                state.setdefault(ns, {})[k] = v
        state.setdefault(self._ns, {})[key] = entry
        used = 0
        for entries in state.values():
            for v in entries.values():
                # One 32-byte entry for the header, plus blob data rounded up to whole entries
                # (a committed blob is hex text: two digits a byte).
                if v is not None:
                    used += 32
                    if v[0] == "b":
                        n = len(v[1]) // (1 if isinstance(v[1], bytes) else 2)
                        used += (n + 31) // 32 * 32
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
                kind, value = entry
                entries[key] = [kind, value.hex() if kind == "b" else value]
        if not entries:
            del data[self._ns]
        tmp = _boardsim.path("nvs.json.tmp")
        with open(tmp, "w") as f:
            json.dump(data, f)
        # rename is atomic: a power cut leaves either the old or the new committed state.
        os.rename(tmp, _boardsim.path("nvs.json"))


def idf_heap_info(capabilities):
    # (total, free, largest free block, minimum free seen) per region; one fixed region.
    del capabilities
    return [(327680, 204800, 110592, 180000)]
