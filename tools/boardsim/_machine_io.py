"""The rest of the machine stand-in (Pin, RTC, WDT, reset, freq): imported on first use."""

import _boardsim

PWRON_RESET = 1
HARD_RESET = 2
WDT_RESET = 3
DEEPSLEEP_RESET = 4
SOFT_RESET = 5


def freq(hz=None):
    return 240000000 if hz is None else None


def reset():
    _boardsim.hard_reset()


def reset_cause():
    return PWRON_RESET


def bitstream(pin, encoding, timing, buf):
    # machine.bitstream (MicroPython v1.23+, extmod/machine_bitstream.c): encoding 0 sends
    # each bit of buf, MSB first, as a high/low pulse pair of the (T0H, T0L, T1H, T1L) ns
    # timings. What an addressable LED on the pin received is logged as
    # "<epoch ms> <pin> bits <hex of buf>" in pins.log (a WS2812 takes 3 bytes: G, R, B).
    if encoding != 0:
        raise ValueError("encoding")
    if len(timing) != 4:
        raise ValueError("timing")
    with open(_boardsim.path("pins.log"), "a") as f:
        f.write("%d %s bits %s\n" % (_boardsim.now_ms(), pin._id, bytes(buf).hex()))


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
