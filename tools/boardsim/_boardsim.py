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


_writes = 0


def nvs_write(after):
    # Called by esp32.NVS just before each write (after False: the write is counted) and just
    # after it (after True: it is on flash). RMBENCH_POWER_CUT="nvs:N" (or "nvs:N:before") cuts
    # the power just before the N-th write, so it never happens; "nvs:N:after" just after it,
    # so it is durable and nothing after it runs.
    global _writes
    if not after:
        _writes += 1
    spec = os.getenv("RMBENCH_POWER_CUT")
    if not spec or not spec.startswith("nvs:"):
        return
    parts = spec.split(":")
    if int(parts[1]) == _writes and (len(parts) > 2 and parts[2] == "after") == after:
        power_cut()


_session = None


def log(name, line):
    # One line in the board file `name`, after this run's id: each run of the interpreter
    # (a boot, a soft reset) is one session, so host tests can count per boot.
    global _session
    if _session is None:
        import time

        _session = "%x" % time.time_ns()
    with open(path(name), "a") as f:
        f.write(_session + " " + line + "\n")


def now_ms():
    import time

    return time.time_ns() // 1000000
