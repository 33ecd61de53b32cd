"""os stand-in: the Unix port's builtin os plus uname() as the board reports it, and urandom."""

import sys

import _boardsim

_saved_path = sys.path[:]
sys.path[:] = []
try:
    import os as _builtin
finally:
    sys.path[:] = _saved_path
del _saved_path


def __getattr__(name):
    # Everything but uname is the builtin's, reached here rather than copied (on a board this
    # module is built in and costs no GC heap; here the copies would).
    return getattr(_builtin, name)


class _Uname:
    def __init__(self, machine):
        self.sysname = "esp32"
        self.nodename = "esp32"
        self.release = "1.28.0"
        self.version = "v1.28.0 on 2026-04-06 (boardsim)"
        self.machine = machine

    def __getitem__(self, i):
        return (self.sysname, self.nodename, self.release, self.version, self.machine)[i]

    def __len__(self):
        return 5

    def __repr__(self):
        return "(sysname=%r, nodename=%r, release=%r, version=%r, machine=%r)" % tuple(
            self[i] for i in range(5)
        )


def uname():
    return _Uname(_boardsim.board()["machine"])


# os.urandom is esp_random() on the board (MicroPython ports/esp32/mphalport.c mp_hal_get_random,
# v1.23-v1.28), and ESP-IDF's "Random Number Generation" docs (v5.x) say its output is true
# random only while an RF subsystem (Wi-Fi, Bluetooth, 802.15.4) is on; otherwise it should be
# taken as pseudo-random. MicroPython turns no radio on by itself. Modelled the harsh way: with no
# radio on, the bytes come from a fixed-seed sequence that restarts at every boot, so two boards
# make the same bytes (and the same key). Every call is logged (urandom.log: bytes, radio on/off).
_SEED = b"boardsim: esp_random with no RF subsystem on"
_drawn = 0  # 32-byte blocks of the sequence used in this boot


def _radio_on():
    # A radio is on only through the network or bluetooth stand-in, and only once imported.
    import sys

    for name in ("network", "bluetooth"):
        m = sys.modules.get(name)
        if m is not None and m._radio_active():
            return True
    return False


def urandom(n):
    global _drawn
    on = _radio_on()
    _boardsim.log("urandom.log", "%d %s" % (n, "on" if on else "off"))
    if on:
        return _builtin.urandom(n)
    import hashlib

    out = b""
    while len(out) < n:
        out += hashlib.sha256(_SEED + _drawn.to_bytes(4, "big")).digest()
        _drawn += 1
    return out[:n]
