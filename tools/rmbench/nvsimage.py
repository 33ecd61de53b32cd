"""Factory NVS images: a RainMaker identity with a host-made key, for lines that write NVS.

The image is a whole `nvs` partition (the one esp32.NVS opens, at the profile's nvs_offset) with
namespace rmaker_creds laid out exactly as lib/rmclaim/store.py writes it, so the device library
finds the board claimed on first boot. The key exists outside the board, which rmclaim's own
claim never allows; callers must have been asked for that explicitly (`--host-key`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from rmbench import assist, nvs
from rmbench.errors import BenchError, UsageError
from rmbench.profiles import BoardProfile

HOST_KEY_NOTICE = (
    "an NVS image carries a private key made on this host; rmclaim's own claim makes the key on "
    "the board and it never leaves it (rmbench claim --port ..., or self-claim on first boot). "
    "Pass --host-key to accept a host-made key for this image"
)


@dataclass(frozen=True)
class NVSImage:
    """A finished image and what it holds (checked by reading it back with the device store)."""

    data: bytes
    offset: int
    node_id: str
    mqtt_host: str | None
    certificate: x509.Certificate


def _sec1_pem(key: ec.EllipticCurvePrivateKey) -> str:
    # rmclaim stores the key as SEC1 PEM ("EC PRIVATE KEY"), as the RainMaker firmware does.
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()


def _load_key(path: Path) -> ec.EllipticCurvePrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except OSError as e:
        raise UsageError(f"key {path}: {e.strerror or e}") from e
    except (ValueError, TypeError) as e:
        raise UsageError(f"key {path}: not an unencrypted PEM private key ({e})") from e
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise UsageError(f"key {path}: wanted an EC P-256 key, as rmclaim uses")
    return key


def identity_from_files(
    cert_path: Path,
    key_path: Path,
    *,
    node_id: str | None = None,
    mqtt_host: str | None = None,
    mqtt_cred_host: str | None = None,
) -> nvs.Identity:
    """An identity from an existing certificate and its key (e.g. esp-rainmaker-cli's node.crt
    and node.key); the node id defaults to the certificate's CN.

    Raises:
        UsageError: unreadable files, or a certificate that is not for this key or node id.
    """
    key = _load_key(key_path)
    try:
        text = cert_path.read_text()
        first = x509.load_pem_x509_certificates(text.encode())[0]
    except OSError as e:
        raise UsageError(f"certificate {cert_path}: {e.strerror or e}") from e
    except (ValueError, UnicodeDecodeError) as e:
        raise UsageError(f"certificate {cert_path}: not a PEM certificate ({e})") from e
    if node_id is None:
        names = first.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        node_id = str(names[0].value) if names else ""
    try:
        assist.check_certificate(text, key.public_key(), node_id)
    except BenchError as e:
        raise UsageError(f"{cert_path}: {e.reason}") from e
    return nvs.Identity(_sec1_pem(key), text, node_id, mqtt_host, mqtt_cred_host, os.urandom(64))


def identity_from_service(
    target: assist.ServiceTarget,
    mac: str,
    profile: BoardProfile,
    *,
    mqtt_host: str | None = None,
) -> nvs.Identity:
    """Claim a node for `mac` with the user's token, with a P-256 key made here, and check the
    certificate against that key before returning it.

    Raises:
        ServiceError: the service refused or its certificate failed a check.
    """
    node_id = assist.initiate(target, mac, profile.platform)
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, node_id)]))
        .sign(key, hashes.SHA256())
    )
    issued = assist.verify(target, csr.public_bytes(serialization.Encoding.PEM).decode())
    assist.check_certificate(issued.certificate, key.public_key(), node_id)
    return nvs.Identity(
        _sec1_pem(key),
        issued.certificate,
        node_id,
        mqtt_host or issued.mqtt_host,
        issued.mqtt_cred_host,
        os.urandom(64),
    )


def build_image(identity: nvs.Identity, profile: BoardProfile) -> NVSImage:
    """The board's whole nvs partition holding `identity`, read back through the device store.

    Raises:
        UsageError: the device library refused a value, or it does not fit the partition.
        BenchError: the image did not read back as the same identity (a bug: nothing is kept).
    """
    try:
        data = nvs.build_partition(nvs.credentials(identity), profile.nvs_size)
    except ValueError as e:
        raise UsageError(str(e), step="build image") from e
    found = nvs.read_identity(data)
    if (found.node_id, found.cert, found.mqtt_host) != (
        identity.node_id,
        identity.cert,
        identity.mqtt_host,
    ):
        raise BenchError(f"the image reads back as {found.describe()}", step="check image")
    cert = x509.load_pem_x509_certificates(identity.cert.encode())[0]
    return NVSImage(data, profile.nvs_offset, identity.node_id, identity.mqtt_host, cert)
