"""machine stand-in: the Unix port's builtin plus unique_id, mem32 eFuse words, reset, Pin, RTC."""

# Lean on purpose (on a board this module is built in and costs no GC heap): the builtin's
# other names are reached through the module __getattr__ below, not copied.

import sys

import _boardsim

# Import the builtin module of the same name: with sys.path empty, only builtins are found.
_saved_path = sys.path[:]
sys.path[:] = []
try:
    import machine as _builtin
finally:
    sys.path[:] = _saved_path
del _saved_path


def __getattr__(name):
    # Pin, RTC, WDT, reset, freq and the reset causes come from _machine_io, imported on first
    # use (a claim needs none of them); everything else not defined here (idle, soft_reset,
    # time_pulse_us, Signal...) is the builtin's.
    import _machine_io

    try:
        return getattr(_machine_io, name)
    except AttributeError:
        return getattr(_builtin, name)


def unique_id():
    # The base MAC from eFuse, 6 bytes, as esp_efuse_mac_get_default() gives it.
    return bytes.fromhex(_boardsim.board()["mac"])


class _Mem:
    # Memory-mapped reads of the eFuse OPTIONAL_UNIQUE_ID words. On 32-bit ports a word of
    # 0x80000000 or more comes back negative (mp_obj_new_int of a uint32), and so it does here.
    # Any other address raises: on a board it would read a peripheral we do not emulate.
    def __init__(self, width):
        self._width = width

    def __getitem__(self, addr):
        board = _boardsim.board()
        base = board.get("efuse_addr")
        width = self._width
        if addr % width:
            raise ValueError("memory address not aligned to %d bytes" % width)
        if base is None or not base <= addr < base + 16:
            raise OSError("boardsim: read of unemulated address 0x%08x" % addr)
        off = addr - base
        value = int.from_bytes(bytes.fromhex(board["unique_id"])[off : off + width], "little")
        if width == 4 and value >= 0x80000000:
            value -= 0x100000000
        return value

    def __setitem__(self, addr, value):
        raise OSError("boardsim: write to 0x%08x: eFuse words are read-only" % addr)


mem8 = _Mem(1)
mem16 = _Mem(2)
mem32 = _Mem(4)
