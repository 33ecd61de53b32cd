"""X.509 certificates from cryptography's builders: what the service, tests and benchmarks issue.

One builder call (subject, issuer, key, serial, validity, extensions, SHA-256 signature) and the
extensions they share, so each caller states only what its certificate is for.
"""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Iterable, Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificateIssuerPrivateKeyTypes,
    CertificatePublicKeyTypes,
)
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# An extension and whether it is critical, as CertificateBuilder.add_extension takes them.
Extension = tuple[x509.ExtensionType, bool]


def cn_name(cn: str) -> x509.Name:
    """A name with only a common name."""
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def certificate(
    subject: x509.Name,
    public_key: CertificatePublicKeyTypes,
    issuer: x509.Name,
    issuer_key: CertificateIssuerPrivateKeyTypes,
    not_before: datetime.datetime,
    not_after: datetime.datetime,
    extensions: Iterable[Extension] = (),
    *,
    serial: int | None = None,
) -> x509.Certificate:
    """A certificate for public_key, signed by issuer_key with SHA-256 (random serial unless
    given), carrying `extensions` in their order."""
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number() if serial is None else serial)
        .not_valid_before(not_before)
        .not_valid_after(not_after)
    )
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical=critical)
    return builder.sign(issuer_key, hashes.SHA256())


def self_signed(
    key: CertificateIssuerPrivateKeyTypes,
    subject: x509.Name,
    not_before: datetime.datetime,
    not_after: datetime.datetime,
    extensions: Iterable[Extension] = (),
    *,
    serial: int | None = None,
) -> x509.Certificate:
    """A certificate for key's own public key, subject = issuer (a root CA or a test leaf)."""
    return certificate(
        subject, key.public_key(), subject, key, not_before, not_after, extensions, serial=serial
    )


def ca_constraints(path_length: int | None = None) -> Extension:
    """BasicConstraints CA:TRUE (critical)."""
    return x509.BasicConstraints(ca=True, path_length=path_length), True


def leaf_constraints() -> Extension:
    """BasicConstraints CA:FALSE (critical)."""
    return x509.BasicConstraints(ca=False, path_length=None), True


def key_usage(*, certificate_signing: bool) -> Extension:
    """KeyUsage (critical): digitalSignature, plus keyCertSign and cRLSign for a CA."""
    usage = x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=certificate_signing,
        crl_sign=certificate_signing,
        encipher_only=False,
        decipher_only=False,
    )
    return usage, True


def client_auth() -> Extension:
    """ExtendedKeyUsage clientAuth (not critical)."""
    return x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), False


def server_auth() -> Extension:
    """ExtendedKeyUsage serverAuth (not critical)."""
    return x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False


def subject_key_id(public_key: CertificatePublicKeyTypes) -> Extension:
    """SubjectKeyIdentifier of public_key (not critical)."""
    return x509.SubjectKeyIdentifier.from_public_key(public_key), False


def authority_key_id(issuer: x509.Certificate) -> Extension:
    """AuthorityKeyIdentifier (not critical): the issuer's own subject key identifier."""
    ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), False


def alt_names(names: Sequence[str]) -> Extension:
    """SubjectAlternativeName (not critical): an IP address entry for each name that is one, a
    DNS name for the others."""
    entries: list[x509.GeneralName] = []
    for name in names:
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            entries.append(x509.DNSName(name))
    return x509.SubjectAlternativeName(entries), False


def pem(cert: x509.Certificate) -> str:
    """The certificate as PEM text."""
    return cert.public_bytes(serialization.Encoding.PEM).decode("ascii")
