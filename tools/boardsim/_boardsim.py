"""Simulation controls for a board run on the MicroPython Unix port (no real board has this)."""

import json
import os

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
    # Pull the plug: the interpreter dies at once (SIGKILL), no finally blocks, no flushes, so
    # anything not yet committed is lost, as on a real board.
    os.system("kill -9 $PPID")
    # Only reached if the kill failed; never continue as if power were still on.
    raise SystemExit(137)


def hard_reset():
    # machine.reset(): a supervisor (the virtual board) sees the marker and boots again.
    with open(path("reset-requested"), "w") as f:
        f.write("1")
    power_cut()


_mutations = 0


def count_nvs_mutation():
    # RMBENCH_POWER_CUT="nvs:N" cuts the power instead of performing the N-th NVS mutation.
    global _mutations
    _mutations += 1
    spec = os.getenv("RMBENCH_POWER_CUT")
    if spec and spec.startswith("nvs:") and _mutations == int(spec[4:]):
        power_cut()


def idf_log(tag, text):
    # An ESP-IDF error log line, "E (<ms since boot>) <tag>: <text>", when board.json says
    # "idf_log": esp.osdebug(None) leaves the level at ERROR (ports/esp32/modesp.c), so such
    # lines appear between the firmware's own on a board's console.
    if board().get("idf_log"):
        import time

        print("E (%d) %s: %s" % (time.ticks_ms(), tag, text))


def now_ms():
    import time

    return time.time_ns() // 1000000
