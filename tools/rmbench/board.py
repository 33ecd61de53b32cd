"""A board on the bench, driven over its serial REPL: real (`SerialBoard`) or virtual.

Both kinds speak to MicroPython through mpremote's SerialTransport, so every operation runs the
same code on a USB board and on a virtual one (rmbench.vboard); they differ only in what they
can do beyond the REPL (`capabilities`): a virtual board can cut its own power, shows its NVS
and pin log to the host, and needs no hardware. Pick one with `open_board()`.

The console (everything the board prints outside raw-REPL commands: boot output, main.py's
status lines) is read into a buffer that `expect()` and `expect_status()` search; with `log`
set, it is also appended to that file, with each command sent.
"""

from __future__ import annotations

import ast
import contextlib
import re
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from rmbench.errors import BoardError, DeviceError, UsageError
from rmbench.profiles import BoardProfile, get_profile
from rmbench.statusline import StatusLine, parse_status, without_idf_log

# What a board may be able to do beyond the REPL (test markers: @pytest.mark.needs(...)).
CAPABILITIES = ("power_cut", "virtual", "efuse_unique_id", "wifi")

_SERIAL_TIMEOUT_S = 2.0
_WRITE_CHUNK = 1024


def _device_error(error_output: str, **context: str | None) -> DeviceError:
    # The last line of a device traceback is "<Type>: <message>" (or just "<Type>").
    lines = [ln for ln in error_output.replace("\r", "").split("\n") if ln.strip()]
    last = lines[-1] if lines else "no error text"
    device_type, _, message = last.partition(": ")
    return DeviceError(
        f"device raised {last}",
        device_type=device_type if message or ":" not in last else None,
        **context,
    )


class Board(ABC):
    """One board with a MicroPython REPL on a serial port; see the module docstring.

    Every method may raise BoardError (the link failed) or DeviceError (code on the board raised;
    `device_type` holds its exception type).
    """

    capabilities: frozenset[str] = frozenset()

    def __init__(self, name: str, port: str, profile: BoardProfile, log: Path | None) -> None:
        self.name = name
        self.port = port
        self.profile = profile
        self.log = log
        self._transport: Any = None
        self._console = bytearray()
        self._raw_fresh = False  # raw REPL entered with a soft reset since the last reset

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} ({self.profile.name}) on {self.port}>"

    def has(self, capability: str) -> bool:
        """True when this board can do `capability` (one of CAPABILITIES)."""
        return capability in self.capabilities

    # --- the link ------------------------------------------------------------------------

    def _link(self) -> Any:
        if self._transport is None:
            from mpremote.transport_serial import SerialTransport

            try:
                self._transport = SerialTransport(self.port, timeout=_SERIAL_TIMEOUT_S)
            except Exception as e:  # mpremote raises bare TransportError/OSError subtypes
                raise BoardError(
                    f"cannot open the serial port: {e}",
                    board=self.name,
                    port=self.port,
                    hint="is another program (a terminal, mpremote) holding the port?",
                ) from e
        return self._transport

    def close(self) -> None:
        """Let go of the serial port (leaving the board in the friendly REPL)."""
        t = self._transport
        self._transport = None
        if t is None:
            return
        with contextlib.suppress(Exception):
            if t.in_raw_repl:
                t.exit_raw_repl()
        with contextlib.suppress(Exception):
            t.close()

    def _note(self, text: str) -> None:
        if self.log is not None:
            with self.log.open("a") as f:
                f.write(text if text.endswith("\n") else text + "\n")

    def _pump(self, timeout: float = 0.0) -> int:
        # Move what the board printed into the console buffer; returns the bytes read.
        t = self._link()
        if t.in_raw_repl:
            return 0
        ser = t.serial
        got = 0
        end = time.monotonic() + timeout
        while True:
            n = ser.in_waiting
            if n:
                data = ser.read(n)
            elif time.monotonic() < end:
                ser.timeout = min(0.05, max(0.0, end - time.monotonic()))
                data = ser.read(1)
                ser.timeout = _SERIAL_TIMEOUT_S
            else:
                break
            if data:
                got += len(data)
                self._console += data
                if self.log is not None:
                    with self.log.open("ab") as f:
                        f.write(data.replace(b"\r\n", b"\n"))
                if data.endswith(b"\n") and not ser.in_waiting:
                    break  # a whole line: let the caller look at it now
        return got

    # --- the console ---------------------------------------------------------------------

    def mark(self) -> int:
        """A position in the console output, for `since=` (output from now on)."""
        self._pump()
        return len(self._console)

    def output(self, since: int = 0) -> str:
        """The console output from `since`, with CRLF line ends as LF."""
        return self._console[since:].decode(errors="replace").replace("\r\n", "\n")

    def expect(self, pattern: str, *, timeout: float, since: int | None = None) -> re.Match[str]:
        """Wait for `pattern` (a regex, MULTILINE) in the console output from `since`.

        Raises:
            BoardError: not within `timeout`; the message holds the tail of the output and the
                log file.
        """
        start = self.mark() if since is None else since
        rx = re.compile(pattern, re.MULTILINE)
        deadline = time.monotonic() + timeout
        while True:
            m = rx.search(self.output(start))
            if m is not None:
                return m
            if time.monotonic() > deadline:
                tail = self.output(start)[-1500:]
                where = f"; log: {self.log}" if self.log else ""
                raise BoardError(
                    f"timed out after {timeout:g} s waiting for /{pattern}/{where}; "
                    f"output:\n{tail}",
                    board=self.name,
                    port=self.port,
                    step="expect",
                )
            self._pump(0.1)

    def status_lines(self, since: int = 0) -> list[StatusLine]:
        """Every status line of firmware/main.py in the output from `since`."""
        self._pump()
        lines = (parse_status(line) for line in self.output(since).splitlines())
        return [s for s in lines if s is not None]

    def expect_status(
        self, step: str, outcome: str = "ok", *, timeout: float = 60.0, since: int | None = None
    ) -> StatusLine:
        """Wait for main.py's status line for `step` with `outcome` (e.g. "claimed", "ok").

        Raises:
            BoardError: not within `timeout`: names the step, the tail of the output, the log.
        """
        pattern = rf"^rmclaim: step={re.escape(step)} {re.escape(outcome)}\b.*$"
        try:
            m = self.expect(pattern, timeout=timeout, since=since)
        except BoardError as e:
            e.step = f"status step={step} {outcome}"
            raise
        line = parse_status(m.group(0))
        if line is None:  # the pattern is a status line, so this cannot happen
            raise BoardError(f"unparsable status line {m.group(0)!r}", board=self.name)
        return line

    def watch_status(
        self,
        since: int,
        *,
        until: tuple[str, str] = ("claimed", "ok"),
        timeout: float = 120.0,
        on_line: Callable[[StatusLine], None] | None = None,
    ) -> list[StatusLine]:
        """Follow main.py's status lines from `since` until `until` (step, outcome) shows.

        Each new line goes to `on_line` as it arrives. Returns every line seen.
        Raises:
            BoardError: `until` did not show within `timeout` (the output tail, the log).
        """
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            lines = self.status_lines(since)
            for line in lines[seen:]:
                if on_line is not None:
                    on_line(line)
                if (line.step, line.outcome) == until:
                    return lines[: lines.index(line) + 1]
            seen = len(lines)
            if time.monotonic() > deadline:
                where = f"; log: {self.log}" if self.log else ""
                raise BoardError(
                    f"timed out after {timeout:g} s waiting for step={until[0]} {until[1]}"
                    f"{where}; output:\n{self.output(since)[-1500:]}",
                    board=self.name,
                    port=self.port,
                    step=f"status step={until[0]} {until[1]}",
                )
            self._pump(0.1)

    # --- the REPL ------------------------------------------------------------------------

    def _raw(self) -> Any:
        t = self._link()
        if not t.in_raw_repl or not self._raw_fresh:
            self._pump()
            if self._console and not self._console.endswith(b"\n"):
                # A line still being printed: let it end first, since entering the raw REPL
                # discards whatever the board sends meanwhile (mpremote flushes its input).
                self._pump(0.2)
            try:
                # Ctrl-C stops main.py if it still runs; the soft reset gives a clean interpreter.
                t.enter_raw_repl(soft_reset=True)
            except Exception as e:
                raise BoardError(
                    f"no raw REPL: {e}", board=self.name, port=self.port, step="raw REPL"
                ) from e
            self._raw_fresh = True
        return t

    def exec(self, code: str, *, timeout: float = 30.0) -> str:
        """Run `code` in the raw REPL (stopping main.py first if it runs); returns its output
        (without ESP-IDF log lines).

        Raises:
            DeviceError: the code raised on the board.
        """
        from mpremote.transport import TransportError

        t = self._raw()
        self._note(f"[exec] {code.strip()[:400]}")
        try:
            out, err = t.exec_raw(code, timeout=timeout)
        except TransportError as e:
            self._raw_fresh = False
            raise BoardError(
                f"exec failed: {e}", board=self.name, port=self.port, step="exec"
            ) from e
        text = without_idf_log(bytes(out).decode(errors="replace").replace("\r\n", "\n"))
        if err:
            error = bytes(err).decode(errors="replace")
            self._note(f"[error] {error.strip()}")
            raise _device_error(error, board=self.name, port=self.port, step="exec")
        return text

    def eval(self, expr: str, *, timeout: float = 30.0) -> Any:
        """The value of `expr` on the board (its repr read back with ast.literal_eval)."""
        out = self.exec(f"print(repr({expr}))", timeout=timeout)
        try:
            return ast.literal_eval(out.strip())
        except (ValueError, SyntaxError) as e:
            raise BoardError(
                f"cannot read back {expr!r}: {out.strip()[:200]!r}", board=self.name, step="eval"
            ) from e

    def soft_reset(self) -> None:
        """Soft reset from the raw REPL (boot.py runs, main.py does not)."""
        self._raw_fresh = False
        self._raw()

    def reset(self) -> int:
        """Hard reset (machine.reset()): boot.py and main.py run; returns the console mark.

        Read what the board prints from the returned mark with expect()/expect_status().
        """
        t = self._raw()
        self._pump()
        since = len(self._console)
        self._note("[reset] machine.reset()")
        with contextlib.suppress(Exception):
            t.exec_raw_no_follow("import machine\nmachine.reset()")
        t.in_raw_repl = False
        self._raw_fresh = False
        self._after_reset()
        return since

    def _after_reset(self) -> None:
        # A hook for boards whose port goes away on reset (native USB); nothing by default.
        return None

    def interrupt(self) -> None:
        """Ctrl-C: stop whatever main.py runs, leaving the friendly REPL."""
        t = self._link()
        self._pump()
        t.serial.write(b"\r\x03")

    # --- files ---------------------------------------------------------------------------

    def _fs(self, what: str, path: str, fn: Callable[[], Any]) -> Any:
        from mpremote.transport import TransportError

        self._raw()
        try:
            return fn()
        except OSError as e:
            raise DeviceError(
                f"{what} {path}: {e.strerror or e}",
                device_type="OSError",
                board=self.name,
                port=self.port,
                step=what,
            ) from e
        except TransportError as e:
            raise BoardError(f"{what} {path}: {e}", board=self.name, port=self.port) from e

    def fs_read(self, path: str) -> bytes:
        """The content of a file on the board."""
        t = self._link()
        return bytes(self._fs("read", path, lambda: t.fs_readfile(path, chunk_size=_WRITE_CHUNK)))

    def fs_write(self, path: str, data: bytes) -> None:
        """Write (create or replace) a file on the board; its folder must exist."""
        t = self._link()
        self._note(f"[write] {path} ({len(data)} bytes)")
        self._fs("write", path, lambda: t.fs_writefile(path, data, chunk_size=_WRITE_CHUNK))

    def fs_sha256(self, path: str) -> bytes | None:
        """SHA-256 of a file on the board, or None when there is no such file."""
        t = self._link()
        if not self._fs("stat", path, lambda: t.fs_exists(path)):
            return None
        return bytes(self._fs("hash", path, lambda: t.fs_hashfile(path, "sha256")))

    def fs_exists(self, path: str) -> bool:
        """True when `path` exists on the board."""
        t = self._link()
        return bool(self._fs("stat", path, lambda: t.fs_exists(path)))

    def fs_makedirs(self, path: str) -> None:
        """Create a folder and its parents on the board (existing ones are fine)."""
        parts = [p for p in path.split("/") if p]
        t = self._link()
        for i in range(1, len(parts) + 1):
            sub = "/" + "/".join(parts[:i])
            if not self._fs("stat", sub, partial(t.fs_isdir, sub)):
                self._fs("mkdir", sub, partial(t.fs_mkdir, sub))

    def fs_remove(self, path: str) -> None:
        """Remove a file on the board."""
        t = self._link()
        self._fs("remove", path, lambda: t.fs_rmfile(path))

    def fs_listdir(self, path: str = "/") -> list[str]:
        """Names in a folder on the board."""
        t = self._link()
        return [e.name for e in self._fs("list", path, lambda: t.fs_listdir(path))]

    # --- what differs ----------------------------------------------------------------------

    @abstractmethod
    def power_cycle(self, *, power_cut: str | None = None) -> int:
        """Cut the power and restore it (boot.py, main.py run); returns the console mark.

        power_cut "nvs:N" makes the new boot cut its own power just before its N-th NVS write
        (it does not happen), "nvs:N:after" just after it (it is stored).

        Raises:
            UsageError: the board cannot (capability "power_cut").
        """


class SerialBoard(Board):
    """A real board on a serial port (USB-UART bridge or native USB)."""

    capabilities = frozenset({"wifi", "efuse_unique_id"})

    def __init__(
        self, port: str, profile: BoardProfile, *, name: str | None = None, log: Path | None = None
    ) -> None:
        super().__init__(name or port.rsplit("/", 1)[-1], port, profile, log)
        caps = set()
        if profile.wifi:
            caps.add("wifi")
        if profile.efuse_unique_id is not None:
            caps.add("efuse_unique_id")
        self.capabilities = frozenset(caps)

    def power_cycle(self, *, power_cut: str | None = None) -> int:
        raise UsageError(
            "power_cut is not supported by a real board on the bench (no switchable power)",
            board=self.name,
            port=self.port,
        )


class VirtualBoard(Board):
    """A virtual board (rmbench.vboard) driven through its pty like a real one."""

    def __init__(self, info: Any, *, log: Path | None = None, owned: bool = False) -> None:
        from rmbench.boardsim import open_board as open_sim

        profile = get_profile(info.board)
        super().__init__(info.name, info.pty, profile, log)
        self.info = info
        self.sim = open_sim(info.directory)
        self.owned = owned  # stopped by close() when this object started it
        caps = {"virtual", "power_cut"}
        if profile.wifi:
            caps.add("wifi")
        if profile.efuse_unique_id is not None:
            caps.add("efuse_unique_id")
        self.capabilities = frozenset(caps)

    @classmethod
    def start(
        cls,
        profile: BoardProfile | str,
        *,
        name: str | None = None,
        root: Path | None = None,
        log: Path | None = None,
        **kwargs: Any,
    ) -> VirtualBoard:
        """Start a new virtual board (see rmbench.vboard.start) that close() will stop.

        The board is tied to this process: if it dies without close(), the board stops too.
        """
        from rmbench import vboard

        info = vboard.start(profile, name=name, root=root, detach=False, **kwargs)
        return cls(info, log=log, owned=True)

    def power_cycle(self, *, power_cut: str | None = None) -> int:
        from rmbench import vboard

        since = self.mark()
        self._note(f"[power-cycle] power_cut={power_cut}")
        self.info = vboard.power_cycle(self.info, power_cut=power_cut)
        if self._transport is not None:
            self._transport.in_raw_repl = False
        self._raw_fresh = False
        return since

    def power_off(self) -> None:
        """Cut the power and leave it off."""
        from rmbench import vboard

        self.info = vboard.power_off(self.info)
        if self._transport is not None:
            self._transport.in_raw_repl = False
        self._raw_fresh = False

    def wait_off(self, timeout: float = 60.0) -> None:
        """Wait until the board has cut its own power (RMBENCH_POWER_CUT)."""
        from rmbench import vboard

        self.info = vboard.wait_for(
            self.info, lambda i: i.state == "off", timeout=timeout, what="the power cut"
        )
        if self._transport is not None:
            self._transport.in_raw_repl = False
        self._raw_fresh = False

    def state(self) -> Any:
        """The supervisor's view: on/off, boot phase, boots so far."""
        from rmbench import vboard

        self.info = vboard.find(self.info.name, root=self.info.directory.parent)
        return self.info

    def nvs(self) -> dict[str, dict[str, bytes | int]]:
        """NVS contents: every write that finished (what survives a power cut)."""
        return self.sim.nvs()

    def pin_log(self) -> list[tuple[int, str, int]]:
        """Every pin change the board made: (epoch ms, pin, level)."""
        return self.sim.pin_log()

    def close(self) -> None:
        super().close()
        if self.owned:
            from rmbench import vboard

            vboard.stop(self.info)
            self.owned = False


def open_board(
    *,
    port: str | None = None,
    board: str | BoardProfile,
    name: str | None = None,
    root: Path | None = None,
    log: Path | None = None,
) -> Board:
    """The board to drive, chosen once: the real one on `port`, else a new virtual one.

    Args:
        port: serial port of a real board (/dev/ttyUSB0), or a virtual board's /dev/pts/N;
            None starts a virtual board of profile `board` (stopped again by close()).
        board: the board profile (name).
    """
    profile = get_profile(board) if isinstance(board, str) else board
    if port is None:
        return VirtualBoard.start(profile, name=name, root=root, log=log)
    from rmbench import vboard

    for info in vboard.list_boards(root=root):
        if info.running and info.pty == port:
            return VirtualBoard(info, log=log)
    return SerialBoard(port, profile, name=name, log=log)
