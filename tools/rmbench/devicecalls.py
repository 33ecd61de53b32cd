"""Calls into the device library (lib/rmclaim) on a board, over its REPL, with typed results.

Every call runs a few lines on the board that print one JSON object, so results come back as
plain data and the device library's exceptions as DeviceError (their type in `device_type`).
A board without the library gets a UsageError that says to deploy it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from rmbench.board import Board
from rmbench.errors import BenchError, BoardError, DeviceError, UsageError

# Key generation and the certificate checks run P-256 in Python on the board: seconds on an
# ESP32, so these calls get a long deadline.
_SLOW_S = 180.0
_CERT_FILE = "/.rmbench-cert.pem"  # a relayed certificate, until the board has read it


@dataclass(frozen=True)
class DeviceInfo:
    """What the board says about itself (rmclaim.device_info)."""

    mac: str
    platform: str
    machine: str
    family: str
    self_claim: bool
    unique_id: bytes | None  # the eFuse OPTIONAL_UNIQUE_ID, when asked for and the chip has it


@dataclass(frozen=True)
class StoredCredentials:
    """The identity stored on the board (rmclaim.load_credentials), without the private key."""

    node_id: str
    cert_pem: str
    mqtt_host: str | None
    mqtt_cred_host: str | None


# Turns Credentials `c` (or None) into `out`, leaving the private key on the board.
_CREDENTIALS = """out = None if c is None else {'node_id': c.node_id, 'cert': c.cert_pem,
    'mqtt_host': c.mqtt_host, 'mqtt_cred_host': c.mqtt_cred_host}
del c"""


def _credentials(out: dict[str, Any]) -> StoredCredentials:
    return StoredCredentials(out["node_id"], out["cert"], out["mqtt_host"], out["mqtt_cred_host"])


def _at(e: BenchError, board: Board, step: str) -> BenchError:
    # The board names its own steps generically ("exec", "raw REPL"); this call's is clearer.
    e.step = step
    return e.with_context(board=board.name, port=board.port)


def _call(board: Board, body: str, step: str, timeout: float = 30.0) -> Any:
    # `body` sets `out`; the board prints it as JSON on the last line. Each call starts with a
    # soft reset, so the heap holds nothing from earlier ones: a claim's P-256 work, and a
    # certificate of 1.5 KB or more, need most of an ESP32's heap, unfragmented.
    code = "import json, rmclaim\n" + body + "\nprint(json.dumps(out))\ndel out\n"
    try:
        board.soft_reset()
        text = board.exec(code, timeout=timeout)
    except DeviceError as e:
        if e.device_type == "ImportError" and "rmclaim" in e.reason:
            raise UsageError(
                "the device library is not on the board",
                board=board.name,
                port=board.port,
                step=step,
                hint=f"deploy it first: rmbench deploy --port {board.port} "
                f"--board {board.profile.name}",
            ) from e
        raise _at(e, board, step) from e
    except BoardError as e:
        raise _at(e, board, step) from e
    lines = text.strip().splitlines()
    try:
        return json.loads(lines[-1])
    except (IndexError, ValueError) as e:
        raise BoardError(
            f"unreadable reply from the board: {text.strip()[-200:]!r}",
            board=board.name,
            port=board.port,
            step=step,
        ) from e


def device_info(board: Board, *, with_unique_id: bool = False) -> DeviceInfo:
    """The board's MAC, platform and chip, and on request its eFuse OPTIONAL_UNIQUE_ID."""
    out = _call(board, f"out = rmclaim.device_info({with_unique_id!r})", "identify")
    uid = out.get("unique_id")
    return DeviceInfo(
        mac=str(out["mac"]),
        platform=str(out["platform"]),
        machine=str(out["machine"]),
        family=str(out["family"]),
        self_claim=bool(out["self_claim"]),
        unique_id=bytes.fromhex(uid) if isinstance(uid, str) else None,
    )


def load_credentials(board: Board) -> StoredCredentials | None:
    """The stored identity, or None when the board is not claimed."""
    out = _call(board, "c = rmclaim.load_credentials()\n" + _CREDENTIALS, "load credentials")
    return None if out is None else _credentials(out)


def prepare_csr(board: Board, node_id: str) -> str:
    """A CSR for `node_id` made on the board with its own key (made and stored if it has none)."""
    out = _call(board, f"out = rmclaim.prepare_csr({node_id!r})", "csr", _SLOW_S)
    if not isinstance(out, str) or "CERTIFICATE REQUEST" not in out:
        raise BoardError(f"the board returned no CSR: {out!r:.200}", board=board.name, step="csr")
    return out


def accept_certificate(
    board: Board,
    node_id: str,
    certificate: str,
    mqtt_host: str | None,
    mqtt_cred_host: str | None,
    claim_ca: str | None = None,
) -> StoredCredentials:
    """Hand the certificate to the board, which checks it against its key and only then stores
    it; returns what it stored.

    Raises:
        DeviceError: the board refused it (device_type "BadCertificate": nothing was stored).
    """
    # The certificate goes over as a file: as a literal in the code, compiling it would take
    # more heap than the board has to spare next to the checks (so does importing os there).
    board.fs_write(_CERT_FILE, certificate.encode())
    args = (node_id, mqtt_host, mqtt_cred_host, claim_ca)
    body = (
        f"import gc\nf = open({_CERT_FILE!r})\ncert = f.read()\nf.close()\n"
        f"n, h, ch, ca = {args!r}\ndel f\ngc.collect()\n"
        "c = rmclaim.accept_certificate(n, cert, h, ch, ca)\n"
        "del cert, n, h, ch, ca\n"
        # Not the certificate again: the host has it, and its JSON would need another 3 KB.
        "out = {'node_id': c.node_id, 'mqtt_host': c.mqtt_host,\n"
        "    'mqtt_cred_host': c.mqtt_cred_host}"
    )
    try:
        out = _call(board, body, "store", _SLOW_S)
    finally:
        board.soft_reset()
        board.fs_remove(_CERT_FILE)
    return StoredCredentials(out["node_id"], certificate, out["mqtt_host"], out["mqtt_cred_host"])
