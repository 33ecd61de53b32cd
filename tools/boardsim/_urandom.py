"""os.urandom as the board gives it: random only while a radio is on (used by the os stand-in)."""

# os.urandom is esp_random() on the board (MicroPython ports/esp32/modos.c in v1.23-v1.27;
# extmod/modos.c through ports/esp32/mphalport.c mp_hal_get_random from v1.28; no release calls
# bootloader_random_enable, and _boot.py starts no radio), and ESP-IDF's "Random Number Generation"
# docs (v5.x) say its output is true random only while an RF subsystem (Wi-Fi, Bluetooth, 802.15.4)
# is on; otherwise it should be taken as pseudo-random. MicroPython turns no radio on by itself.
# Modelled the harsh way: with no radio on, the bytes come from a fixed-seed sequence that restarts
# at every boot, so two boards make the same bytes (and the same key). Every call is logged
# (urandom.log: bytes, radio on/off). The position in the sequence is kept in _boardsim (this
# module is dropped after each call).

import _boardsim


def _radio_on():
    # Whether any radio is on (their state is kept in _boardsim.radios).
    for state in _boardsim.radios.get("wlan", {}).values():
        if state[0]:  # network's WLAN state: active first
            return True
    return bool(_boardsim.radios.get("ble"))


def urandom(n):
    import os

    on = _radio_on()
    _boardsim.log("urandom.log", str(n) + (" on" if on else " off"))
    if on:
        return os._builtin.urandom(n)
    import hashlib

    out = b""
    while len(out) < n:
        i = _boardsim.prng_blocks
        seed = b"boardsim: esp_random with no RF subsystem on"
        out += hashlib.sha256(seed + i.to_bytes(4, "big")).digest()
        _boardsim.prng_blocks = i + 1
    return out[:n]
