"""Status of a board's identity: claimed or not, node id, certificate subject, issuer, expiry."""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from cryptography import x509

from rmbench import devicecalls
from rmbench.board import Board
from rmbench.errors import BoardError


@dataclass(frozen=True)
class BoardStatus:
    """One board's identity as the device library reports it (the key never leaves it)."""

    board: str
    port: str
    profile: str
    mac: str
    node_id: str | None  # None: not claimed
    subject: str | None
    issuer: str | None
    not_after: datetime.datetime | None
    mqtt_host: str | None

    @property
    def claimed(self) -> bool:
        return self.node_id is not None


def status(board: Board) -> BoardStatus:
    """Read the board's stored identity through the device library and describe its certificate.

    Raises:
        UsageError: the device library is not on the board.
        DeviceError: the board holds a damaged identity (StoreError) or failed.
    """
    info = devicecalls.device_info(board)
    creds = devicecalls.load_credentials(board)
    if creds is None:
        return BoardStatus(
            board.name, board.port, board.profile.name, info.mac, None, None, None, None, None
        )
    try:
        cert = x509.load_pem_x509_certificates(creds.cert_pem.encode())[0]
    except ValueError as e:
        raise BoardError(
            f"the stored certificate does not parse: {e}",
            board=board.name,
            port=board.port,
            step="certificate",
        ) from e
    return BoardStatus(
        board.name,
        board.port,
        board.profile.name,
        info.mac,
        creds.node_id,
        cert.subject.rfc4514_string(),
        cert.issuer.rfc4514_string(),
        cert.not_valid_after_utc,
        creds.mqtt_host,
    )


def describe(s: BoardStatus) -> str:
    """One line for people."""
    where = f"{s.board}@{s.port} ({s.profile}, MAC {s.mac})"
    if not s.claimed:
        return f"{where}: not claimed"
    expiry = s.not_after.date().isoformat() if s.not_after else "?"
    return (
        f"{where}: claimed as {s.node_id}; subject {s.subject}; issuer {s.issuer}; "
        f"expires {expiry}; MQTT host {s.mqtt_host or '(firmware default)'}"
    )
