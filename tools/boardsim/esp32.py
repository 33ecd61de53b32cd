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
# and data do, and a claim must fit a board's heap with it. So this module holds only the
# handle; the work on nvs.json is in _nvs_io, loaded for each call and dropped again.

import sys

import _boardsim
from micropython import const

# ESP-IDF error codes as MicroPython's esp32 port reports them: OSError(-code, name).
_NOT_FOUND = const(-0x1102)
_INVALID_NAME = const(-0x1106)
_KEY_TOO_LONG = const(-0x1109)
_VALUE_TOO_LONG = const(-0x110E)
# A blob may use at most 97.6 % of the 0x6000-byte partition minus 4000 bytes (ESP-IDF NVS
# limits): int(0.976 * 0x6000) - 4000.
_MAX_BLOB = const(19986)

HEAP_DATA = 4
HEAP_EXEC = 1


def _error(code):
    name = {
        -0x1102: "NOT_FOUND",
        -0x1105: "NOT_ENOUGH_SPACE",
        _INVALID_NAME: "INVALID_NAME",
        _KEY_TOO_LONG: "KEY_TOO_LONG",
        -0x110C: "INVALID_LENGTH",
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


def _io(name, *args):
    # _nvs_io.<name>(*args), the module loaded for the call and dropped again, into a
    # collected heap: a board's built-in NVS needs no GC heap for its code, so loading this
    # one must not fail where a board would not (it fails now and then when the heap is
    # nearly full of a claim's garbage).
    import gc

    gc.collect()
    import _nvs_io

    try:
        return getattr(_nvs_io, name)(*args)
    finally:
        sys.modules.pop("_nvs_io", None)


class NVS:
    def __init__(self, namespace):
        self._ns = _name(namespace)
        _boardsim.log("nvs-opens.log", self._ns)

    def __repr__(self):
        return "<NVS namespace>"

    def set_i32(self, key, value):
        value = int(value)
        if not -0x80000000 <= value <= 0x7FFFFFFF:
            raise OverflowError("overflow converting long int to machine word")
        _io("put", self._ns, _name(key), ("i", value))

    def get_i32(self, key):
        return _io("get", self._ns, _name(key), "i")

    def set_blob(self, key, value):
        data = value.encode() if isinstance(value, str) else bytes(value)
        _name(key)
        if len(data) > _MAX_BLOB:
            raise _error(_VALUE_TOO_LONG)
        _io("put", self._ns, key, ("b", data))

    def get_blob(self, key, buffer):
        return _io("get_blob", self._ns, _name(key), buffer)

    def erase_key(self, key):
        # A missing key is NOT_FOUND and writes nothing.
        _io("get", self._ns, _name(key), None)
        _io("put", self._ns, key, None)

    def commit(self):
        # Nothing to do: every write is on flash already (IDF's commit only checks the handle).
        pass


def idf_heap_info(capabilities):
    # (total, free, largest free block, minimum free seen) per region; one fixed region.
    del capabilities
    return [(327680, 204800, 110592, 180000)]
