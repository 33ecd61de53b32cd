"""Byte-stream filters between the serial side of a virtual board and its Unix-port process.

The MicroPython Unix port speaks the same REPL protocol as a board, with two differences the
relay absorbs here:
- it ends printed lines with "\\n" where a board's UART gives "\\r\\n";
- start-up markers from the boot shim (tools/boardsim/_vboot.py) ride in the output stream as
  OSC escape sequences, `ESC ] rmvb:<event> BEL`, and are taken out before anyone sees them.

`mpremote mount` exchanges binary frames over the same link: the board sends 0x18 and a command
byte, the host answers 0x18, the board sends the arguments and the host the reply (CMD_CLOSE
has none: its one argument byte ends it). Newline translation stops from the board's 0x18 until
the frame ends, so those frames pass untouched.
"""

from __future__ import annotations

from dataclasses import dataclass, field

SENTINEL_PREFIX = b"\x1b]rmvb:"
SENTINEL_END = b"\x07"
_MAX_SENTINEL = 40

RAW_BANNER = b"raw REPL; CTRL-B to exit\r\n"
FRIENDLY_BANNER = b'Type "help()" for more information.'
_TAIL = max(len(RAW_BANNER), len(FRIENDLY_BANNER))

# Mount exchange states (see the module docstring).
_TEXT = 0
_AWAIT_SYNC = 1
_DEVICE_ARGS = 2
_CMD_CLOSE = 5  # mpremote's fs_hook_cmds


@dataclass
class StreamState:
    """What the relay knows about the link: REPL mode and any mount exchange under way."""

    raw_repl: bool = False
    exchange: int = _TEXT
    command: int = -1  # the frame's command byte, once the board has sent it

    @property
    def binary(self) -> bool:
        """True while a mount frame is on the wire (no translation, Ctrl-C is data)."""
        return self.exchange != _TEXT

    def host_sent(self, data: bytes) -> None:
        """Advance the mount exchange for bytes the host wrote."""
        if not data:
            return
        if self.exchange == _AWAIT_SYNC:
            self.exchange = _DEVICE_ARGS if data[:1] == b"\x18" else _TEXT
            if self.exchange == _DEVICE_ARGS and len(data) > 1:
                self.exchange = _TEXT
        elif self.exchange == _DEVICE_ARGS:
            self.exchange = _TEXT

    def board_sent(self, byte: int) -> None:
        """Advance the mount exchange for one byte of a frame the board is sending."""
        if self.exchange == _AWAIT_SYNC and self.command < 0:
            self.command = byte
        elif self.exchange == _DEVICE_ARGS and self.command == _CMD_CLOSE:
            self.exchange = _TEXT  # the descriptor byte was the whole frame


@dataclass
class OutputFilter:
    """Board process output -> serial side: CRLF line ends, markers out, REPL mode tracked."""

    state: StreamState = field(default_factory=StreamState)
    _carry: bytes = b""
    _last: int = 0
    _tail: bytes = b""

    def feed(self, data: bytes) -> tuple[bytes, list[str]]:
        """Filter one chunk; returns the bytes for the serial side and the markers seen."""
        data = self._carry + data
        self._carry = b""
        out = bytearray()
        events: list[str] = []
        i = 0
        n = len(data)
        while i < n:
            b = data[i]
            if self.state.binary:
                self.state.board_sent(b)
                out.append(b)
                i += 1
                continue
            if b == 0x1B:
                end = data.find(SENTINEL_END, i)
                head = data[i : i + len(SENTINEL_PREFIX)]
                if SENTINEL_PREFIX.startswith(head) and end < 0 and n - i < _MAX_SENTINEL:
                    self._carry = data[i:]  # maybe a marker split across reads
                    break
                if head == SENTINEL_PREFIX and 0 <= end - i < _MAX_SENTINEL:
                    events.append(data[i + len(SENTINEL_PREFIX) : end].decode("ascii", "replace"))
                    i = end + 1
                    continue
            if b == 0x18:
                self.state.exchange = _AWAIT_SYNC
                self.state.command = -1
            elif b == 0x0A and self._last != 0x0D:
                out.append(0x0D)
            out.append(b)
            self._last = b
            i += 1
        result = bytes(out)
        self._track_mode(result)
        return result, events

    def _track_mode(self, chunk: bytes) -> None:
        seen = self._tail + chunk
        raw_at = seen.rfind(RAW_BANNER)
        friendly_at = seen.rfind(FRIENDLY_BANNER)
        if raw_at > friendly_at:
            self.state.raw_repl = True
        elif friendly_at > raw_at:
            self.state.raw_repl = False
        self._tail = seen[-_TAIL:]

    def reset(self) -> None:
        """A new board process starts: friendly REPL, no exchange, nothing carried."""
        self.state.raw_repl = False
        self.state.exchange = _TEXT
        self._carry = b""
        self._last = 0
        self._tail = b""
