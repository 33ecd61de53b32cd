"""main.py's status lines are an API: their exact form is kept in golden files."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from rmbench.board import VirtualBoard
from rmbench.statusline import parse_status

from .helpers import BenchSetup

GOLDEN = Path(__file__).with_name("golden")
# What differs from run to run: timings, the service's port, the board's identity.
_VARIABLE = (
    (re.compile(r"\bms=\d+"), "ms=<ms>"),
    (re.compile(r"\bs=\d+\.\d+"), "s=<s>"),
    (re.compile(r"\bservice=\S+"), "service=<url>"),
    (re.compile(r"\bnode_id=\S+"), "node_id=<node>"),
    (re.compile(r"\byear=\d+"), "year=<year>"),
)


def normalized(output: str) -> str:
    lines = []
    for line in output.splitlines():
        if parse_status(line) is None:
            continue
        for rx, repl in _VARIABLE:
            line = rx.sub(repl, line)
        lines.append(line)
    return "\n".join(lines) + "\n"


def check_golden(name: str, text: str) -> None:
    # RMBENCH_UPDATE_GOLDEN=1 rewrites the file instead of comparing (review the diff: it is
    # the API); the test then reports itself skipped, since it checked nothing.
    path = GOLDEN / name
    if os.environ.get("RMBENCH_UPDATE_GOLDEN") == "1":
        changed = not path.exists() or path.read_text() != text
        path.write_text(text)
        pytest.skip(
            f"RMBENCH_UPDATE_GOLDEN=1: regenerated {path} "
            f"({'changed: review the diff' if changed else 'unchanged'}); nothing compared"
        )
    assert path.read_text() == text, f"status lines differ from {path}:\n{text}"


@pytest.mark.needs("virtual")  # the golden files hold the virtual bench's Wi-Fi and address
def test_first_boot_reboot_and_broken_config_lines(bench: BenchSetup, board: VirtualBoard) -> None:
    bench.prepare()
    since = board.reset()
    # Each boot to its last line: without mqtt_ca, "mqtt skip" after "claimed".
    board.watch_status(since, until=("mqtt", "skip"), timeout=bench.timeout)
    board.watch_status(board.reset(), until=("mqtt", "skip"), timeout=bench.timeout)
    board.fs_write("/rmclaim.json", b"[1, 2]")
    board.watch_status(board.reset(), until=("backoff", "wait"), timeout=bench.timeout)
    check_golden("boot.txt", normalized(board.output(since)))


def test_parse_status_reads_quoted_values() -> None:
    line = parse_status(
        'rmclaim: step=wifi error class=no-wifi msg="wifi: wrong \\"x\\" joining \'a b\'"'
    )
    assert line is not None
    assert (line.step, line.outcome) == ("wifi", "error")
    assert line.fields == {"class": "no-wifi", "msg": "wifi: wrong \"x\" joining 'a b'"}
    assert parse_status("rmclaim step=wifi ok") is None
    assert parse_status("  rmclaim: step=key ok ms=12\r").ms == 12  # type: ignore[union-attr]


@pytest.mark.needs("virtual")
def test_idf_log_lines_between_status_lines_are_skipped(
    bench: BenchSetup, board: VirtualBoard
) -> None:
    # esp.osdebug(None) leaves ESP-IDF logging at ERROR (ports/esp32/modesp.c): "E (ms) tag:"
    # lines can come between the status lines. The parsers skip them; the golden lines hold.
    board.sim.update(idf_log=True, wifi_faults={"no_ap_attempts": 2})
    try:
        bench.prepare()
        since = board.reset()
        lines = board.watch_status(since, until=("mqtt", "skip"), timeout=bench.timeout)
        output = board.output(since)
        assert re.search(r"^E \(\d+\) wifi: sta disconnected, reason 201\r?$", output, re.M)
        first_boot = (GOLDEN / "boot.txt").read_text().splitlines(keepends=True)[:14]
        assert normalized(output) == "".join(first_boot)
        assert [s.step for s in lines][:3] == ["config", "wifi", "time"]
        assert board.exec("print('after')") == "after\n"  # exec output has no log lines
    finally:
        board.sim.update(idf_log=False, wifi_faults={})
