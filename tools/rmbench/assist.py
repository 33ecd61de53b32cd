"""Host-assisted claiming: the host relays initiate and verify with the user's token.

This module holds the host side of the claiming API (as esp-rainmaker-cli and the phone apps call
it: `Authorization: <token>` raw, JSON bodies) and checks of what the service returns. The
certificate is always checked against the key it is meant for before anything is stored.
"""

from __future__ import annotations

import json
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from rmbench import ProgressFn, devicecalls
from rmbench.board import Board
from rmbench.errors import BenchError, ServiceError, UsageError
from rmbench.service import accounts, client


@dataclass(frozen=True)
class ServiceTarget:
    """Where and as whom to claim: the service's base URL, the CA its TLS certificate chains
    to (required for https), and the user's access token."""

    base_url: str
    ca_file: Path | None
    token: str

    def __post_init__(self) -> None:
        url = urllib.parse.urlsplit(self.base_url)
        if url.scheme not in ("https", "http") or not url.hostname:
            raise UsageError(f"service URL {self.base_url!r}: wanted https://HOST[:PORT]")
        if url.scheme == "https" and self.ca_file is None:
            raise UsageError(
                f"service URL {self.base_url}: give the CA of its TLS certificate with --ca "
                "(for the local service: STATE_DIR/server-ca.pem)"
            )
        if not self.token:
            raise UsageError("an access token is needed (--token)")


@dataclass(frozen=True)
class Issued:
    """What verify returned: the certificate text as sent (device cert then CA) and hosts."""

    certificate: str
    mqtt_host: str | None
    mqtt_cred_host: str | None


def _call(target: ServiceTarget, step: str, method: str, path: str, body: Any = None) -> Any:
    base = urllib.parse.urlsplit(target.base_url)
    full = base.path.rstrip("/") + path
    headers = {"Authorization": target.token}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    try:
        reply = client.request(
            target.base_url, method, full, ca_file=target.ca_file, body=data, headers=headers
        )
    except ServiceError as e:
        raise e.with_context(step=step) from e
    try:
        obj = reply.json()
    except ValueError:
        obj = None
    if reply.status != 200:
        described = obj.get("description") or obj.get("message") if isinstance(obj, dict) else None
        reason = described or reply.body[:200].decode(errors="replace") or "(empty body)"
        raise ServiceError(f"HTTP {reply.status}: {reason}", step=step)
    if not isinstance(obj, dict):
        raise ServiceError("the reply is not a JSON object", step=step)
    return obj


def _text(obj: dict[str, Any], field: str, step: str) -> str:
    value = obj.get(field)
    if not isinstance(value, str) or not value:
        raise ServiceError(f"the reply has no {field} string", step=step)
    return value


def _optional_text(obj: dict[str, Any], field: str, step: str) -> str | None:
    return None if obj.get(field) is None else _text(obj, field, step)


def initiate(target: ServiceTarget, mac: str, platform: str) -> str:
    """POST /claim/initiate with the user's token; returns the node id the service assigns.

    Raises:
        ServiceError: refused (the service's description is quoted) or unreachable.
    """
    body = {"mac_addr": accounts.normalize_mac(mac), "platform": platform}
    obj = _call(target, "initiate", "POST", "/claim/initiate", body)
    return _text(obj, "node_id", "initiate")


def verify(target: ServiceTarget, csr_pem: str) -> Issued:
    """POST /claim/verify with the CSR (asking for the MQTT host); returns what was issued.

    Raises:
        ServiceError: refused (the service's description is quoted) or unreachable.
    """
    obj = _call(
        target, "verify", "POST", "/claim/verify", {"csr": csr_pem, "send_mqtt_host": True}
    )
    return Issued(
        _text(obj, "certificate", "verify"),
        _optional_text(obj, "mqtt_host", "verify"),
        _optional_text(obj, "mqtt_cred_host", "verify"),
    )


def check_certificate(
    certificate: str, public_key: ec.EllipticCurvePublicKey, node_id: str
) -> x509.Certificate:
    """The first certificate of `certificate`, checked: its key is `public_key`, its CN is
    `node_id`, and it is signed by the CA certificate sent after it (when one is).

    Raises:
        ServiceError: any check fails (nothing should then be stored).
    """
    try:
        chain = x509.load_pem_x509_certificates(certificate.encode())
    except ValueError as e:
        raise ServiceError(f"certificate: not PEM certificates: {e}", step="check") from e
    cert = chain[0]
    if cert.public_key() != public_key:
        raise ServiceError("certificate: it is for another key, not this board's", step="check")
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    cn = names[0].value if names else None
    if cn != node_id:
        raise ServiceError(f"certificate: CN is {cn!r}, wanted {node_id!r}", step="check")
    if len(chain) > 1:
        try:
            cert.verify_directly_issued_by(chain[1])
        except (ValueError, TypeError, InvalidSignature) as e:
            raise ServiceError(
                f"certificate: not issued by the CA sent with it: {e}", step="check"
            ) from e
    return cert


# --- the host-assisted claim of a board ---------------------------------------------------------


@dataclass(frozen=True)
class ClaimResult:
    """The outcome of `claim` for one board."""

    board: str
    port: str
    mac: str
    node_id: str
    already: bool  # the board was claimed before: nothing was requested
    mqtt_host: str | None
    seconds: float


def claim(
    board: Board,
    target: ServiceTarget,
    *,
    claim_ca: str | None = None,
    info: devicecalls.DeviceInfo | None = None,
    progress: ProgressFn | None = None,
) -> ClaimResult:
    """Claim a board with the user's token; the key and CSR are made on the board.

    Steps: identify (MAC and platform from the board), stored (a claimed board is left as it
    is), initiate (the service assigns the node id), csr (made on the board), verify (the
    service signs it), store (the board checks the certificate against its key, CN and CA, and
    only then stores it).

    Args:
        board: a board with the device library deployed.
        target: the claiming service and the user's token.
        claim_ca: PEM of the CA that must sign the certificate; None trusts the CA sent with it.
        info: the board's device_info when the caller read it already.
        progress: called with (step, 0, 0) as each step starts.

    Returns:
        The node id and MQTT host now stored on the board.

    Raises:
        ServiceError: the service refused (its description quoted) or is unreachable.
        DeviceError: the board refused the certificate (nothing stored) or failed.
        UsageError: the device library is not on the board.
    """
    t0 = time.monotonic()

    def step(name: str) -> str:
        if progress is not None:
            progress(name, 0, 0)
        return name

    name = "identify"
    try:
        if info is None:
            name = step("identify")
            info = devicecalls.device_info(board)
        name = step("stored")
        stored = devicecalls.load_credentials(board)
        if stored is not None:
            return ClaimResult(
                board.name,
                board.port,
                info.mac,
                stored.node_id,
                True,
                stored.mqtt_host,
                time.monotonic() - t0,
            )
        name = step("initiate")
        node_id = initiate(target, info.mac, info.platform)
        name = step("csr")
        csr = devicecalls.prepare_csr(board, node_id)
        name = step("verify")
        issued = verify(target, csr)
        name = step("store")
        stored = devicecalls.accept_certificate(
            board, node_id, issued.certificate, issued.mqtt_host, issued.mqtt_cred_host, claim_ca
        )
    except BenchError as e:
        raise e.with_context(board=board.name, port=board.port, step=name) from e
    return ClaimResult(
        board.name,
        board.port,
        info.mac,
        stored.node_id,
        False,
        stored.mqtt_host,
        time.monotonic() - t0,
    )
