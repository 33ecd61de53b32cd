"""Register a board with the local claiming service: its MAC and eFuse OPTIONAL_UNIQUE_ID, as read
by the device library on the board, so that the board can then self-claim."""

from __future__ import annotations

from rmbench import devicecalls
from rmbench.board import Board
from rmbench.errors import UsageError


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
