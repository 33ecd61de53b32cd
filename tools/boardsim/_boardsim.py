"""Simulation controls for a board run on the MicroPython Unix port (no real board has this)."""

import json
import os

# The board state directory comes from RMBENCH_BOARD_DIR, read at each use: the virtual board
# may remount the filesystem and point the variable at the new location after start-up.
_cache_key = None
_cache = None


def board_dir():
    d = os.getenv("RMBENCH_BOARD_DIR")
    if not d:
        raise OSError("boardsim: RMBENCH_BOARD_DIR is not set")
    return d


def path(name):
    return board_dir() + "/" + name


def board():
    # The board description (board.json), cached while the directory stays the same.
    global _cache_key, _cache
    d = board_dir()
    if _cache_key != d:
        with open(d + "/board.json") as f:
            _cache = json.load(f)
        _cache_key = d
    return _cache


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


def now_ms():
    import time

    return time.time_ns() // 1000000
