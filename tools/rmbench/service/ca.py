"""The service's two local CAs (server TLS, device claims) and every certificate they issue."""

from __future__ import annotations

import datetime
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.x509.oid import NameOID

from rmbench import certs
from rmbench.errors import UsageError
from rmbench.files import write_atomic

# File names inside the state directory (contract: server-ca.pem and claim-ca.pem).
SERVER_CA_CERT = "server-ca.pem"
SERVER_CA_KEY = "server-ca.key"
CLAIM_CA_CERT = "claim-ca.pem"
CLAIM_CA_KEY = "claim-ca.key"
SERVER_CERT = "server-cert.pem"
SERVER_KEY = "server-cert.key"

# The real service issues device certificates valid for 4 years (seen in its verify replies:
# e.g. 2024-10-02 to 2028-10-02).
DEVICE_VALIDITY = datetime.timedelta(days=4 * 365 + 1)
CA_VALIDITY = datetime.timedelta(days=10 * 365 + 2)
SERVER_VALIDITY = datetime.timedelta(days=365)
# Certificates start a little in the past so a board whose clock lags still accepts them.
BACKDATE = datetime.timedelta(hours=1)

SERVER_CA_NAME = x509.Name(
    [
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "rmbench"),
        x509.NameAttribute(NameOID.COMMON_NAME, "rmbench local claiming service server CA"),
    ]
)
CLAIM_CA_NAME = x509.Name(
    [
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "rmbench"),
        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "local claiming service"),
        x509.NameAttribute(NameOID.COMMON_NAME, "ESP-RainMaker local claim CA"),
    ]
)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC).replace(microsecond=0)


def _serial() -> int:
    # 159 random bits: positive and at most 20 octets, as RFC 5280 asks.
    return secrets.randbits(159) | 1


@dataclass(frozen=True)
class Authority:
    """A CA certificate with its private key."""

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def pem(self) -> str:
        return certs.pem(self.cert)


def _new_ca(name: x509.Name) -> Authority:
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    extensions = [
        certs.ca_constraints(path_length=0),
        certs.key_usage(certificate_signing=True),
        certs.subject_key_id(key.public_key()),
    ]
    cert = certs.self_signed(
        key, name, now - BACKDATE, now + CA_VALIDITY, extensions, serial=_serial()
    )
    return Authority(cert, key)


def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    """A private key as unencrypted PKCS#8 PEM (how every key here is written)."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def load_or_create_ca(
    state_dir: Path, cert_name: str, key_name: str, name: x509.Name
) -> Authority:
    """The CA stored in state_dir, created on first use; a half-present pair is an error."""
    cert_path, key_path = state_dir / cert_name, state_dir / key_name
    have_cert, have_key = cert_path.exists(), key_path.exists()
    if not have_cert and not have_key:
        ca = _new_ca(name)
        # Key first: a certificate on disk always has its key next to it.
        write_atomic(key_path, key_pem(ca.key), private=True)
        write_atomic(cert_path, ca.pem.encode("ascii"))
        return ca
    if have_cert != have_key:
        missing = key_name if have_cert else cert_name
        raise UsageError(
            f"{state_dir}: {missing} is missing but its pair exists; "
            f"restore it, or remove {cert_name} and {key_name} to create a new CA"
        )
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except ValueError as e:
        raise UsageError(f"{state_dir}: cannot load {cert_name}/{key_name}: {e}") from e
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise UsageError(f"{state_dir}: {key_name} is not an EC private key")
    if cert.public_key() != key.public_key():
        raise UsageError(f"{state_dir}: {cert_name} does not match {key_name}")
    return Authority(cert, key)


@dataclass(frozen=True)
class Authorities:
    server: Authority
    claim: Authority


def load_or_create_authorities(state_dir: Path) -> Authorities:
    """Both CAs of a state directory (created on first run, kept afterwards)."""
    state_dir.mkdir(parents=True, exist_ok=True)
    server = load_or_create_ca(state_dir, SERVER_CA_CERT, SERVER_CA_KEY, SERVER_CA_NAME)
    claim = load_or_create_ca(state_dir, CLAIM_CA_CERT, CLAIM_CA_KEY, CLAIM_CA_NAME)
    return Authorities(server, claim)


def server_names(names: Sequence[str]) -> list[str]:
    """localhost, 127.0.0.1 and ::1 first, then each further name once (without [] around an
    IPv6 address): the names of every server certificate on the bench."""
    out: list[str] = []
    for raw in ["localhost", "127.0.0.1", "::1", *names]:
        name = raw.strip().strip("[]")
        if name and name not in out:
            out.append(name)
    return out


def issue_server_certificate(
    server_ca: Authority, names: Sequence[str]
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A fresh key and TLS server certificate for localhost, 127.0.0.1, ::1 and every name,
    issued by server_ca (the CA a board pins): the service's own, and the bench broker's."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    extensions = [
        certs.leaf_constraints(),
        certs.alt_names(server_names(names)),
        certs.server_auth(),
        certs.subject_key_id(key.public_key()),
        certs.authority_key_id(server_ca.cert),
    ]
    cert = certs.certificate(
        certs.cn_name("localhost"),
        key.public_key(),
        server_ca.cert.subject,
        server_ca.key,
        now - BACKDATE,
        now + SERVER_VALIDITY,
        extensions,
        serial=_serial(),
    )
    return key, cert


def write_server_certificate(state_dir: Path, server_ca: Authority, names: Sequence[str]) -> None:
    """A fresh TLS certificate for localhost, 127.0.0.1, ::1 and every name, issued by server_ca.

    It is remade on every start, because the names may change; the CA stays.
    """
    key, cert = issue_server_certificate(server_ca, names)
    write_atomic(state_dir / SERVER_KEY, key_pem(key), private=True)
    write_atomic(state_dir / SERVER_CERT, cert.public_bytes(serialization.Encoding.PEM))


def device_certificate(
    claim_ca: Authority, public_key: CertificatePublicKeyTypes, node_id: str
) -> x509.Certificate:
    """The certificate the service returns for a claimed node (as the real ESP-RainMaker CA).

    CN = node id; KeyUsage digitalSignature (critical); EKU clientAuth; SKI and AKI; 4 years.
    """
    now = _now()
    extensions = [
        certs.key_usage(certificate_signing=False),
        certs.client_auth(),
        certs.subject_key_id(public_key),
        certs.authority_key_id(claim_ca.cert),
    ]
    return certs.certificate(
        certs.cn_name(node_id),
        public_key,
        claim_ca.cert.subject,
        claim_ca.key,
        now - BACKDATE,
        now + DEVICE_VALIDITY,
        extensions,
        serial=_serial(),
    )
