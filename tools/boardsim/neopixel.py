"""neopixel stand-in: the module stock ESP32 firmware freezes (micropython-lib's neopixel).

Its interface as released firmware v1.23-v1.28 freezes it (ports/esp32/boards/manifest.py
requires micropython-lib's neopixel): NeoPixel(pin, n, bpp=3, timing=1), pixels set as (r, g,
b[, w]) tuples and held in one buffer in the order the LED takes them (GRB for bpp 3, GRBW for
4), write() sends that buffer with machine.bitstream (encoding 0: high/low times in ns, 800 kHz
for timing 1, 400 kHz for 0). Written here from that interface; the board doubles' bitstream
records what the LED received, so tests read the colours off the wire.
"""

import machine

_ORDER = (1, 0, 2, 3)  # colour i of a pixel goes to byte _ORDER[i]: G, R, B, W


class NeoPixel:
    ORDER = _ORDER

    def __init__(self, pin, n, bpp=3, timing=1):
        self.pin = pin
        self.n = n
        self.bpp = bpp
        self.buf = bytearray(n * bpp)
        self.pin.init(pin.OUT)
        # WS2812 bit timings (T0H, T0L, T1H, T1L) in ns, 800 kHz or 400 kHz, or as given.
        if timing == 1:
            self.timing = (400, 850, 800, 450)
        elif timing == 0:
            self.timing = (800, 1700, 1600, 900)
        else:
            self.timing = timing

    def __len__(self):
        return self.n

    def __setitem__(self, i, v):
        off = i * self.bpp
        for k in range(self.bpp):
            self.buf[off + _ORDER[k]] = v[k]

    def __getitem__(self, i):
        off = i * self.bpp
        return tuple(self.buf[off + _ORDER[k]] for k in range(self.bpp))

    def fill(self, v):
        for i in range(self.n):
            self[i] = v

    def write(self):
        machine.bitstream(self.pin, 0, self.timing, self.buf)
