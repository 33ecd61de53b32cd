"""Certificates around the bench broker: its server certificate (from the claiming service's
server CA, which boards pin) and client certificates from the service's claim CA."""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from rmbench import certs
from rmbench.files import write_atomic
from rmbench.service import ca

# In the broker's state directory (never the service's: its server-cert.pem is the service's).
BROKER_CERT = "broker-cert.pem"
BROKER_KEY = "broker-cert.key"


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC).replace(microsecond=0)


def write_broker_certificate(
    broker_dir: Path, server_ca: ca.Authority, names: Sequence[str]
) -> tuple[Path, Path]:
    """A fresh TLS server certificate and key for the broker, issued by the service's server CA
    (the CA a board pins) for localhost, 127.0.0.1, ::1 and `names`; returns (cert, key) paths.

    Remade on every broker start, as the service remakes its own; the CA stays.
    """
    key, cert = ca.issue_server_certificate(server_ca, names)
    broker_dir.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = broker_dir / BROKER_CERT, broker_dir / BROKER_KEY
    write_atomic(key_path, ca.key_pem(key), private=True)
    write_atomic(cert_path, cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path


@dataclass(frozen=True)
class ClientIdentity:
    """A client key and certificate, in the forms a host client (PEM files) and a board (DER,
    as `tls.SSLContext.load_cert_chain` takes it) use."""

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def cn(self) -> str:
        return str(self.cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value)

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def cert_der(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.DER)

    @property
    def key_pem(self) -> bytes:
        return ca.key_pem(self.key)

    @property
    def key_der(self) -> bytes:
        # SEC1 "EC PRIVATE KEY", the form the device library stores in NVS.
        return self.key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )

    def write(self, directory: Path, stem: str) -> tuple[Path, Path]:
        """Write `stem`.crt and `stem`.key (PEM; the key 0600); returns their paths."""
        directory.mkdir(parents=True, exist_ok=True)
        cert_path, key_path = directory / f"{stem}.crt", directory / f"{stem}.key"
        write_atomic(key_path, self.key_pem, private=True)
        write_atomic(cert_path, self.cert_pem)
        return cert_path, key_path


def client_identity(
    issuer: ca.Authority,
    node_id: str,
    *,
    key: ec.EllipticCurvePrivateKey | None = None,
    not_before: datetime.datetime | None = None,
    not_after: datetime.datetime | None = None,
) -> ClientIdentity:
    """A node's client identity issued by `issuer` (the claim CA for a real one): CN = node_id,
    with the extensions and 4-year validity of the service's device certificates unless
    not_before/not_after say otherwise (e.g. an expired certificate)."""
    key = key or ec.generate_private_key(ec.SECP256R1())
    if not_before is None and not_after is None:
        return ClientIdentity(ca.device_certificate(issuer, key.public_key(), node_id), key)
    now = _now()
    start = not_before or now - ca.BACKDATE
    end = not_after or start + ca.DEVICE_VALIDITY
    extensions = [
        certs.key_usage(certificate_signing=False),
        certs.client_auth(),
        certs.subject_key_id(key.public_key()),
        certs.authority_key_id(issuer.cert),
    ]
    cert = certs.certificate(
        certs.cn_name(node_id),
        key.public_key(),
        issuer.cert.subject,
        issuer.key,
        start,
        end,
        extensions,
    )
    return ClientIdentity(cert, key)
