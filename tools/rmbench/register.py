"""Register a board with the local claiming service: its MAC and eFuse OPTIONAL_UNIQUE_ID, as read
by the device library on the board, so that the board can then self-claim."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rmbench import devicecalls
from rmbench.board import Board
from rmbench.errors import BenchError, UsageError
from rmbench.service import accounts


@dataclass(frozen=True)
class Registered:
    """A board recorded in the service: self-claims from its MAC now verify."""

    board: str
    port: str
    mac: str
    replaced: bool  # the MAC was registered before with another unique id


def read_registration(board: Board) -> tuple[str, bytes]:
    """The (MAC, 16-byte unique id) the board's own device library reads.

    Raises:
        UsageError: the chip cannot self-claim (no unique id to register), or the device
            library is not on the board.
        DeviceError: the board failed to read its eFuse.
    """
    info = devicecalls.device_info(board, with_unique_id=True)
    if info.unique_id is None:
        raise UsageError(
            f"{info.family} cannot self-claim, so there is nothing to register; claim it "
            f"with a token instead: rmbench claim --port {board.port} --board "
            f"{board.profile.name} ...",
            board=board.name,
            port=board.port,
            step="identify",
        )
    return info.mac, info.unique_id


def register(board: Board, state_dir: Path) -> Registered:
    """Read the board's MAC and unique id on the board and record them in the local service.

    Args:
        board: a board with the device library deployed.
        state_dir: the local service's state directory (rmbench serve --state-dir).

    Returns:
        The MAC registered, and whether it replaced an earlier unique id.

    Raises:
        UsageError: see read_registration; or the state directory holds no service.
    """
    mac, unique_id = read_registration(board)
    try:
        reg = accounts.register_device(state_dir, mac, unique_id)
    except BenchError as e:
        raise e.with_context(board=board.name, port=board.port, step="register") from e
    return Registered(board.name, board.port, reg.mac, reg.replaced)


def registration_from_port(port: str, board: str | None) -> tuple[str, bytes]:
    """read_registration for the board on `port` (profile `board`), opened and closed here."""
    from rmbench.board import open_board

    if board is None:
        raise UsageError("--board is needed with --port (the profile of that board)")
    b = open_board(port=port, board=board)
    try:
        return read_registration(b)
    finally:
        b.close()
