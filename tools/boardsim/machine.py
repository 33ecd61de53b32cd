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
    # Everything not defined here (idle, soft_reset, time_pulse_us, Signal...) is the builtin's.
    return getattr(_builtin, name)


PWRON_RESET = 1
HARD_RESET = 2
WDT_RESET = 3
DEEPSLEEP_RESET = 4
SOFT_RESET = 5


def unique_id():
    # The base MAC from eFuse, 6 bytes, as esp_efuse_mac_get_default() gives it.
    return bytes.fromhex(_boardsim.board()["mac"])


def freq(hz=None):
    return 240000000 if hz is None else None


def reset():
    _boardsim.hard_reset()


def reset_cause():
    return PWRON_RESET


def idle():
    pass


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


class Pin:
    IN = 1
    OUT = 3
    OPEN_DRAIN = 7
    PULL_UP = 2
    PULL_DOWN = 1
    IRQ_RISING = 1
    IRQ_FALLING = 2
    DRIVE_0 = 0
    DRIVE_1 = 1
    DRIVE_2 = 2
    DRIVE_3 = 3

    # Levels of every pin driven in this process; each change is appended to pins.log as
    # "<epoch ms> <pin> <level>" so tests can read patterns such as the status LED's.
    _levels = {}

    def __init__(self, id, mode=-1, pull=-1, *, value=None, drive=None):
        self._id = id
        self.init(mode, pull, value=value)

    def init(self, mode=-1, pull=-1, *, value=None, drive=None):
        if mode != -1:
            self._mode = mode
        if value is not None:
            self.value(value)

    def value(self, x=None):
        if x is None:
            return Pin._levels.get(self._id, 0)
        level = 1 if x else 0
        if Pin._levels.get(self._id) != level:
            Pin._levels[self._id] = level
            with open(_boardsim.path("pins.log"), "a") as f:
                f.write("%d %s %d\n" % (_boardsim.now_ms(), self._id, level))
        return None

    def __call__(self, x=None):
        return self.value(x)

    def on(self):
        self.value(1)

    def off(self):
        self.value(0)

    def irq(self, handler=None, trigger=3):
        return None

    def __repr__(self):
        return "Pin(%s)" % self._id


class RTC:
    # The host clock is the board clock; setting it (mpremote rtc --set) is accepted and ignored.
    def __init__(self, id=0):
        pass

    def datetime(self, dt=None):
        if dt is not None:
            return None
        import time

        t = time.localtime()
        return (t[0], t[1], t[2], t[6], t[3], t[4], t[5], 0)

    def init(self, dt):
        return None


class WDT:
    def __init__(self, id=0, timeout=5000):
        self.timeout = timeout

    def feed(self):
        pass
