"""RainMaker identities in NVS partitions: read one from a board's partition (as the device
library's own store code reads it), and build factory images with a host-made key.

The image is a whole `nvs` partition (the one esp32.NVS opens, at the profile's nvs_offset) with
namespace rmaker_creds laid out exactly as lib/rmclaim/store.py writes it, so the device library
finds the board claimed on first boot. The key exists outside the board, which rmclaim's own
claim never allows; callers must have been asked for that explicitly (`--host-key`).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


# --- the device library's layout ------------------------------------------------------------
# What goes into rmaker_creds, and how it is read, is decided by lib/rmclaim/store.py alone (its
# blobs plus an index blob of their lengths). Rather than restate that layout here, the host runs
# that very module on the MicroPython Unix port over a simulated NVS (tools/boardsim's esp32.NVS,
# which keeps the stored values in nvs.json), and converts between nvs.json and partitions.

_STORE_RUN = """
import json, sys, binascii
from rmclaim.store import Store, KEYS
from rmclaim.errors import StoreError
args = json.loads(sys.stdin.read())
def unhex(v):
    return None if v is None else binascii.unhexlify(v)
store = Store()
out = {}
%s
print(json.dumps(out))
"""

_SAVE = """
store.save_key(args["key"], unhex(args["random"]))
store.save_identity(args["cert"], args["node_id"], args["mqtt_host"], args["mqtt_cred_host"])
"""

_LOAD = """
try:
    lens = store.lengths()
    out["stored"] = [KEYS[i] for i in range(len(KEYS)) if lens[i]]
    creds = store.load()
    if creds is not None:
        out["node_id"] = creds.node_id
        out["mqtt_host"] = creds.mqtt_host
        out["cert"] = creds.cert_pem
except StoreError as e:
    out["error"] = str(e)
"""


def _run_device_store(
    code: str, args: Mapping[str, object], namespaces: Mapping[str, Mapping[str, nvs.Value]]
) -> tuple[dict[str, Any], dict[str, dict[str, nvs.Value]]]:
    # Runs `code` with lib/rmclaim/store.py's Store over an NVS holding `namespaces`; returns
    # what the code put in `out` and the NVS contents afterwards.
    from rmbench.boardsim import SIM_DIR
    from rmbench.micropython import micropython

    with tempfile.TemporaryDirectory(prefix="rmbench-nvs-") as tmp:
        nvs_json = Path(tmp) / "nvs.json"
        raw: dict[str, dict[str, list[object]]] = {}
        for ns, entries in namespaces.items():
            raw[ns] = {}
            for key, value in entries.items():
                if isinstance(value, bytes):
                    raw[ns][key] = ["b", value.hex()]
                elif isinstance(value, int):
                    raw[ns][key] = ["i", value]
                else:  # esp32.NVS has no string type: an NVS string reads as a missing blob
                    continue
        nvs_json.write_text(json.dumps(raw))
        out = micropython().run(
            _STORE_RUN % code,
            stdin=json.dumps(args),
            heap="256K",
            path=[SIM_DIR],
            env={"RMBENCH_BOARD_DIR": tmp, "RMBENCH_POWER_CUT": ""},
        )
        after: dict[str, dict[str, nvs.Value]] = {}
        for ns, entries in json.loads(nvs_json.read_text()).items():
            after[ns] = {
                key: bytes.fromhex(v) if kind == "b" else int(v)
                for key, (kind, v) in entries.items()
            }
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result, after


@dataclass(frozen=True)
class Identity:
    """A RainMaker identity to store: what the device library keeps after a claim."""

    key_pem: str  # EC P-256 private key, SEC1 PEM ("EC PRIVATE KEY"), as rmclaim stores it
    cert: str  # the certificate text as the service sent it (device cert, then the CA)
    node_id: str
    mqtt_host: str | None = None
    mqtt_cred_host: str | None = None
    random: bytes | None = None  # 64 bytes; made with os.urandom when None


def credentials(identity: Identity) -> dict[str, dict[str, nvs.Value]]:
    """The NVS namespaces and blobs the device library writes for `identity` (its own code runs).

    Returns:
        {"rmaker_creds": {key: blob}}, including the store's own index blob.

    Raises:
        ValueError: the device library refused a value (its message says which).
    """
    import os

    rnd = identity.random if identity.random is not None else os.urandom(64)
    args = {
        "key": identity.key_pem,
        "cert": identity.cert,
        "node_id": identity.node_id,
        "mqtt_host": identity.mqtt_host,
        "mqtt_cred_host": identity.mqtt_cred_host,
        "random": rnd.hex(),
    }
    from rmbench.micropython import MicroPythonError

    try:
        _out, after = _run_device_store(_SAVE, args, {})
    except MicroPythonError as e:
        last = (e.stderr.strip().splitlines() or ["no output"])[-1]
        raise ValueError(f"nvs: the device library refused the identity: {last}") from e
    return after


@dataclass(frozen=True)
class StoredIdentity:
    """What an nvs partition holds of a RainMaker identity, as the device library reads it."""

    readable: bool  # False: the partition did not parse, or the store reported damage
    stored: tuple[str, ...]  # the rmaker_creds blobs the store lists
    node_id: str | None  # set when the store counts the board as claimed
    mqtt_host: str | None
    cert: str | None
    problem: str | None = None

    @property
    def claimed(self) -> bool:
        return self.node_id is not None

    @property
    def has_key(self) -> bool:
        return "client_key" in self.stored

    @classmethod
    def unreadable(cls, problem: str) -> StoredIdentity:
        return cls(False, (), None, None, None, problem)

    def describe(self) -> str:
        """One line for people: `claimed as NODE`, `a key but no certificate`, ..."""
        if not self.readable:
            return f"NVS that does not read as an identity ({self.problem})"
        if self.claimed:
            return f"claimed as {self.node_id}"
        return "a key but no certificate (claim not finished)" if self.has_key else "no identity"


def stored_identity(partition: nvs.Partition) -> StoredIdentity:
    """The identity in a parsed partition, read by the device library's own store code."""
    out, _after = _run_device_store(_LOAD, {}, partition.namespaces)
    if "error" in out:
        return StoredIdentity.unreadable(str(out["error"]))
    return StoredIdentity(
        readable=True,
        stored=tuple(out.get("stored", ())),
        node_id=out.get("node_id"),
        mqtt_host=out.get("mqtt_host"),
        cert=out.get("cert"),
    )


def read_identity(data: bytes) -> StoredIdentity:
    """The identity in raw partition bytes (a board's flash at its nvs offset, or an image)."""
    try:
        return stored_identity(nvs.read_partition(data))
    except nvs.NVSFormatError as e:
        return StoredIdentity.unreadable(str(e))


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
) -> Identity:
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
    return Identity(_sec1_pem(key), text, node_id, mqtt_host, mqtt_cred_host, os.urandom(64))


def identity_from_service(
    target: assist.ServiceTarget,
    mac: str,
    profile: BoardProfile,
    *,
    mqtt_host: str | None = None,
) -> Identity:
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
    return Identity(
        _sec1_pem(key),
        issued.certificate,
        node_id,
        mqtt_host or issued.mqtt_host,
        issued.mqtt_cred_host,
        os.urandom(64),
    )


def build_image(identity: Identity, profile: BoardProfile) -> NVSImage:
    """The board's whole nvs partition holding `identity`, read back through the device store.

    Raises:
        UsageError: the device library refused a value, or it does not fit the partition.
        BenchError: the image did not read back as the same identity (a bug: nothing is kept).
    """
    try:
        data = nvs.build_partition(credentials(identity), profile.nvs_size)
    except ValueError as e:
        raise UsageError(str(e), step="build image") from e
    found = read_identity(data)
    if (found.node_id, found.cert, found.mqtt_host) != (
        identity.node_id,
        identity.cert,
        identity.mqtt_host,
    ):
        raise BenchError(f"the image reads back as {found.describe()}", step="check image")
    cert = x509.load_pem_x509_certificates(identity.cert.encode())[0]
    return NVSImage(data, profile.nvs_offset, identity.node_id, identity.mqtt_host, cert)
