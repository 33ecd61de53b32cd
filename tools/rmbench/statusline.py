"""The firmware's console protocol: status lines (`rmclaim: step=<step> <outcome> key=value`)
and the ESP-IDF log lines that may come between them.

firmware/rmboot.py prints one status line per step (host_tests/bench/golden/ holds their exact
form); values holding spaces or quotes are "quoted" with backslash escapes. Boards' console
readers (rmbench.board) and the demo, bench and benchmarks parse them here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_STATUS = re.compile(r"^rmclaim: step=(?P<step>\S+) (?P<outcome>\S+)(?P<rest>.*)$")
# An ESP-IDF log line, "E (12345) wifi: ...": esp.osdebug(None) sets the log level to ERROR,
# not off (ports/esp32/modesp.c), so such lines can show between the firmware's own.
_IDF_LOG = re.compile(r"^[EWIDV] \(\d+\) [^:\s]+:")
_FIELD = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|\S*)')


@dataclass(frozen=True)
class StatusLine:
    """One `rmclaim: step=<step> <outcome> key=value ...` line from firmware/main.py."""

    step: str
    outcome: str
    fields: dict[str, str] = field(default_factory=dict)
    line: str = ""

    @property
    def ms(self) -> int | None:
        """The step's duration, when the line carries one."""
        value = self.fields.get("ms")
        return int(value) if value is not None else None


def is_idf_log(line: str) -> bool:
    """Whether `line` is an ESP-IDF log line (which every parser here skips)."""
    return _IDF_LOG.match(line.strip()) is not None


def without_idf_log(text: str) -> str:
    """`text` without its ESP-IDF log lines."""
    return "".join(ln for ln in text.splitlines(keepends=True) if not is_idf_log(ln))


def parse_status(line: str) -> StatusLine | None:
    """The status line in `line`, or None when it is not one."""
    m = _STATUS.match(line.strip())
    if m is None:
        return None
    fields: dict[str, str] = {}
    for key, value in _FIELD.findall(m.group("rest")):
        if value.startswith('"'):
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        fields[key] = value
    return StatusLine(m.group("step"), m.group("outcome"), fields, line.strip())
