"""Virtual boards: the MicroPython Unix port behind a pty that stock mpremote drives like a board.

`start()` runs one in the background (rmbench.vboard.supervisor) and returns its /dev/pts/N
path; `stop()`, `list_boards()`, `power_cycle()`, `power_off()`, `power_on()` act on it. Each board
keeps its filesystem (fs/), NVS and pin log in its own state directory under build/vboards/.
"""

from __future__ import annotations

from rmbench.vboard.manager import (
    DEFAULT_STATE_ROOT,
    VBoardInfo,
    find,
    list_boards,
    power_cycle,
    power_off,
    power_on,
    request,
    start,
    state_root,
    stop,
    wait_for,
)

__all__ = [
    "DEFAULT_STATE_ROOT",
    "VBoardInfo",
    "find",
    "list_boards",
    "power_cycle",
    "power_off",
    "power_on",
    "request",
    "start",
    "state_root",
    "stop",
    "wait_for",
]
