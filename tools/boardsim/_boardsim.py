"""Simulation controls for a board run on the MicroPython Unix port (no real board has this)."""

import json
import os
import time

# The board state directory comes from RMBENCH_BOARD_DIR, read at each use: the virtual board
# may remount the filesystem and point the variable at the new location after start-up.


def board_dir():
    d = os.getenv("RMBENCH_BOARD_DIR")
    if not d:
        raise OSError("boardsim: RMBENCH_BOARD_DIR is not set")
    return d


def path(name):
    return board_dir() + "/" + name


def board():
    # The board description (board.json), read at each call: kept, it would hold a kilobyte of
    # GC heap that a real board's built-in modules do not (and few calls need it).
    with open(path("board.json")) as f:
        return json.load(f)


def firmware():
    # What the simulated MicroPython release reports (board.json "firmware", written by the
    # host from rmbench.releases): name, release, version, git_tag, date, mpy, build, thread,
    # if_sta.
    return board().get("firmware") or {}


def power_cut():
    # Pull the plug: the interpreter dies at once (SIGKILL), no finally blocks, no flushes. NVS
    # keeps every write that returned (ESP-IDF writes through), files what was written.
    os.system("kill -9 $PPID")
    # Only reached if the kill failed; never continue as if power were still on.
    raise SystemExit(137)


def hard_reset():
    # machine.reset(): a supervisor (the virtual board) sees the marker and boots again.
    with open(path("reset-requested"), "w") as f:
        f.write("1")
    power_cut()


nvs_writes = 0  # NVS writes this boot (_nvs_io counts them, for RMBENCH_POWER_CUT)


# The radios' state, kept here as a board keeps it in its drivers (it outlives the Python
# modules that switch it): "wlan" -> {interface: state} (network), "ble" -> on (bluetooth).
# A soft reset starts a new interpreter here, so every radio is off after one; a board's soft
# reset stops Bluetooth but leaves Wi-Fi running (MicroPython v1.28 ports/esp32/main.c calls
# mp_bluetooth_deinit, no Wi-Fi stop): the harsher model, for os.urandom.
radios = {}
prng_blocks = 0  # 32-byte blocks drawn this boot from os.urandom's radio-off sequence (_urandom)
# This run of the interpreter (a boot, a soft reset): one session of the logs below.
_session = str(time.time_ns())


def log(name, line):
    # One line in the board file `name`, after the session, so host tests can count per boot.
    with open(path(name), "a") as f:
        f.write(_session + " " + line + "\n")


def idf_log(tag, text):
    # An ESP-IDF error log line, "E (<ms since boot>) <tag>: <text>", when board.json says
    # "idf_log": esp.osdebug(None) leaves the level at ERROR (ports/esp32/modesp.c), so such
    # lines appear between the firmware's own on a board's console.
    if board().get("idf_log"):
        import time

        print("E (%d) %s: %s" % (time.ticks_ms(), tag, text))


def now_ms():
    return time.time_ns() // 1000000
