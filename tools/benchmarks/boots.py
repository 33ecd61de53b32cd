"""Timing a virtual board's boot by its status lines (bench_boot, bench_mqtt)."""

from __future__ import annotations

import time
from collections.abc import Sequence

from rmbench.board import VirtualBoard
from rmbench.statusline import StatusLine


def timed_boot(
    board: VirtualBoard, until: str, wanted: Sequence[str]
) -> tuple[float, dict[str, float], list[StatusLine]]:
    """Power-cycle `board` and follow its status lines to `until` ok: the ms from power-on to
    that line, the host time each step's first line came (time.monotonic()), and the lines.

    Raises:
        RuntimeError: a step in `wanted` printed no ok line.
    """
    seen: dict[str, float] = {}

    def note(line: StatusLine) -> None:
        seen.setdefault(line.step, time.monotonic())

    since = board.power_cycle()
    t0 = time.monotonic()
    lines = board.watch_status(since, until=(until, "ok"), timeout=60, on_line=note)
    ok = {s.step for s in lines if s.outcome == "ok"}
    missing = [s for s in wanted if s not in ok]
    if missing:
        raise RuntimeError(f"boot without steps {missing}: {[s.line for s in lines]}")
    return (seen[until] - t0) * 1000, seen, lines
