"""Client-side helpers for the service tests: CSRs, HMAC responses, pinned HTTPS calls."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from rmbench.service import client
from rmbench.service.harness import RunningService

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def make_csr(cn: str, key: PrivateKey | None = None) -> tuple[str, PrivateKey]:
    """A PEM CSR with subject CN=cn (a new EC P-256 key unless one is given)."""
    key = key or ec_key()
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM).decode(), key


def challenge_response(unique_id: bytes, challenge: str) -> str:
    return hmac.new(unique_id, challenge.encode(), hashlib.sha512).hexdigest().upper()


def call(
    svc: RunningService,
    method: str,
    path: str,
    body: Any = None,
    *,
    raw: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> client.Reply:
    """One request over TLS pinned to the service's server-ca.pem; checks the reply's framing.

    Every reply of the real service has a Content-Length (never chunked), stays under 3000 bytes
    (the firmware reads at most 3072) and, when it is a refusal, is exactly
    {"status":"failure","description":...}.
    """
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    reply = client.request(
        svc.base_url, method, path, ca_file=svc._ca(), body=data, headers=headers
    )
    check_framing(reply)
    return reply


def check_framing(reply: client.Reply) -> None:
    assert "transfer-encoding" not in reply.headers, reply.headers
    assert reply.headers.get("content-length") == str(len(reply.body)), reply.headers
    assert len(reply.body) < 3000, len(reply.body)
    if reply.status != 200:
        obj = reply.json()
        assert set(obj) == {"status", "description"}, obj
        assert obj["status"] == "failure"
        assert isinstance(obj["description"], str) and obj["description"]


def failure(reply: client.Reply) -> tuple[int, str]:
    """(status, description) of a refusal."""
    assert reply.status != 200, reply.body
    return reply.status, reply.json()["description"]


def split_chain(chain: str) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(chain.encode())


def self_claim(svc: RunningService, mac: str, unique_id: bytes) -> tuple[str, PrivateKey]:
    """A whole self-claim; returns the certificate string and the device key."""
    r = call(svc, "POST", "/claim/initiate", {"mac_addr": mac, "platform": "esp32s3"})
    assert r.status == 200, r.body
    init = r.json()
    csr, key = make_csr(mac)
    body = {
        "auth_id": init["auth_id"],
        "challenge_response": challenge_response(unique_id, init["challenge"]),
        "csr": csr,
    }
    r = call(svc, "POST", "/claim/verify", body)
    assert r.status == 200, r.body
    return r.json()["certificate"], key
