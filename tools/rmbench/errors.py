"""The rmbench exception hierarchy: every failure carries the board, port and step it concerns."""

from __future__ import annotations


class BenchError(Exception):
    """Base of every rmbench failure; `main()` prints it as one line and exits non-zero."""

    exit_code = 2

    def __init__(
        self,
        reason: str,
        *,
        board: str | None = None,
        port: str | None = None,
        step: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.board = board
        self.port = port
        self.step = step
        self.hint = hint

    def with_context(
        self, *, board: str | None = None, port: str | None = None, step: str | None = None
    ) -> BenchError:
        """Fill in context that a lower layer did not know; returns self for `raise ... from`."""
        self.board = self.board or board
        self.port = self.port or port
        self.step = self.step or step
        return self

    def location(self) -> str:
        """`board@port: step` with the parts that are known."""
        where = ""
        if self.board or self.port:
            where = f"{self.board or '?'}@{self.port or '?'}"
        parts = [p for p in (where, self.step) if p]
        return ": ".join(parts)


class UsageError(BenchError):
    """The command line or a config value is wrong: the message says how to fix it."""

    exit_code = 1


class BoardError(BenchError):
    """The board could not be reached or driven (serial port, virtual board process)."""


class DeviceError(BenchError):
    """Code on the device raised: carries the device-side exception type and message."""

    def __init__(self, reason: str, *, device_type: str | None = None, **kw: str | None) -> None:
        super().__init__(reason, **kw)
        self.device_type = device_type


class ServiceError(BenchError):
    """The claiming service refused a request or could not be reached."""


class FlashError(BenchError):
    """esptool could not detect, read or write the chip."""
