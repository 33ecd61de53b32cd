"""The claiming rules of the local service: request validation, self and token claims, signing.

Pure of HTTP: each call takes the raw body and Authorization value and returns the reply object
or raises ClaimFailure(status, description). Behaviour: as the ESP RainMaker firmware
(esp_rmaker_claim.c) and esp-rainmaker-cli (claim.py) expect it, and the real service's replies
and error texts reported in esp-rainmaker issues #83, #106 and #219.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import sqlite3
import time
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from rmbench import certs
from rmbench.service import ca
from rmbench.service.store import Store, User, random_alnum

VALID_PLATFORMS = frozenset(
    {"esp32", "esp32s2", "esp32c3", "esp32s3", "esp32c2", "esp32c6", "esp32h2"}
)
SELF_CLAIM_PLATFORMS = frozenset({"esp32s2", "esp32s3", "esp32c3", "esp32c6", "esp32h2"})
# esp-rainmaker-cli sends "host" when --platform is not given.
TOKEN_PLATFORMS = VALID_PLATFORMS | {"host"}

MAX_BODY = 8192
AUTH_ID_LENGTH = 32  # the device keeps at most 63 characters
CHALLENGE_LENGTH = 128  # the device keeps at most 128 characters
NODE_ID_LENGTH = 22
DEFAULT_CHALLENGE_TTL = 300.0
# How long a secret-key mapping request (PUT user/nodes/mapping) and a node's mapping message
# wait for each other; esp-rainmaker-cli polls the status for 60 s (rmaker_cmd/provision.py).
DEFAULT_MAPPING_TTL = 300.0
DEFAULT_MQTT_HOST = "mqtt.rainmaker.espressif.com"
# The firmware's Kconfig default; esp-rainmaker-cli needs GET /mqtt_host to return one.
DEFAULT_MQTT_CRED_HOST = "c10yordfvrjdjb.credentials.iot.us-east-1.amazonaws.com"
RSA_BITS = (2048, 4096)  # bigger keys would push the reply past the device's 3 KB limit

MAC_RE = re.compile(r"[0-9A-F]{12}")
# The self-claim answer exactly as the firmware writes it: each of the 64 HMAC-SHA512 bytes as
# snprintf "%02X" (ESP RainMaker v1.16.0 components/esp_rainmaker/src/core/esp_rmaker_claim.c,
# handle_self_claim_init_response), so 128 uppercase hex digits; anything else is refused.
CHALLENGE_RESPONSE_RE = re.compile(r"[0-9A-F]{128}")

# The texts the real service is known to use (esp-rainmaker issues #83, #106; API gateway).
PLATFORM_INVALID = "Platform is invalid"
NO_QUOTA = "User does not have available quota. Please contact Administrator"
UNAUTHORIZED = "Unauthorized"


class ClaimFailure(Exception):
    """A refused request: HTTP status and the description sent to the client."""

    def __init__(self, status: int, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.description = description


def _shown(value: object, limit: int = 40) -> str:
    # Echo client input in messages, but bounded: replies must stay under 3000 bytes.
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def parse_object(body: bytes) -> dict[str, Any]:
    """The request body as a JSON object, or ClaimFailure 400."""
    if not body.strip():
        raise ClaimFailure(400, "Request body is empty; a JSON object is required")
    try:
        text = body.decode("utf-8")
        value = json.loads(text, parse_constant=_refuse_constant)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ClaimFailure(400, "Request body is not valid JSON") from None
    if not isinstance(value, dict):
        raise ClaimFailure(400, "Request body must be a JSON object")
    return value


def _refuse_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


def string_field(obj: dict[str, Any], name: str) -> str:
    if name not in obj or obj[name] is None:
        raise ClaimFailure(400, f"{name} is required")
    value = obj[name]
    if not isinstance(value, str):
        raise ClaimFailure(400, f"{name} must be a string, got {type(value).__name__}")
    return value


def parse_bool_param(name: str, value: str | None) -> bool:
    """A query flag: True/true/False/false as the CLI and apps send it (absent = false)."""
    if value is None:
        return False
    lowered = value.lower()
    if lowered in ("true", "1"):
        return True
    if lowered in ("false", "0"):
        return False
    raise ClaimFailure(400, f"{name} must be true or false, got {_shown(value)}")


def parse_mac(value: str) -> str:
    if not MAC_RE.fullmatch(value):
        raise ClaimFailure(
            400,
            f"mac_addr must be 12 uppercase hex digits with no separators "
            f"(e.g. 7CDFA100033B), got {_shown(value)}",
        )
    return value


def token_from_header(authorization: str | None) -> str | None:
    """The access token of an Authorization header: raw (as real clients send) or Bearer."""
    if authorization is None:
        return None
    value = authorization.strip()
    if value[:7].lower() == "bearer ":
        value = value[7:].strip()
    return value


@dataclass(frozen=True)
class Settings:
    """Knobs of one running service."""

    challenge_ttl: float = DEFAULT_CHALLENGE_TTL
    mapping_ttl: float = DEFAULT_MAPPING_TTL
    mqtt_host: str = DEFAULT_MQTT_HOST
    mqtt_cred_host: str | None = DEFAULT_MQTT_CRED_HOST


@dataclass(frozen=True)
class Issued:
    """A certificate the service just issued (what verify replies with)."""

    certificate: x509.Certificate
    chain_pem: str  # device PEM + claim CA PEM


class ClaimService:
    """The claiming API over one store and claim CA."""

    def __init__(self, store: Store, claim_ca: ca.Authority, settings: Settings) -> None:
        self.store = store
        self.claim_ca = claim_ca
        self.settings = settings

    # --- GET /mqtt_host -------------------------------------------------------------------------

    def mqtt_host(self) -> dict[str, Any]:
        reply: dict[str, Any] = {"mqtt_host": self.settings.mqtt_host}
        if self.settings.mqtt_cred_host:
            reply["mqtt_cred_host"] = self.settings.mqtt_cred_host
        return reply

    # --- POST /claim/initiate -------------------------------------------------------------------

    def initiate(self, body: bytes, authorization: str | None) -> dict[str, Any]:
        obj = parse_object(body)
        mac = parse_mac(string_field(obj, "mac_addr"))
        platform = string_field(obj, "platform").lower()
        token = token_from_header(authorization)
        if token is None:
            return self._initiate_self(mac, platform)
        user = self._user(token)
        if platform not in TOKEN_PLATFORMS:
            raise ClaimFailure(400, PLATFORM_INVALID)
        node = self.store.node_for(mac, user.user_id)
        return {"node_id": node.node_id}

    def _initiate_self(self, mac: str, platform: str) -> dict[str, Any]:
        if platform not in SELF_CLAIM_PLATFORMS:
            raise ClaimFailure(400, PLATFORM_INVALID)
        if self.store.unique_id(mac) is None:
            raise ClaimFailure(
                403, f"MAC {mac} is not registered for self-claiming (rmbench register)"
            )
        auth_id = random_alnum(AUTH_ID_LENGTH)
        challenge = random_alnum(CHALLENGE_LENGTH)
        self.store.new_challenge(mac, auth_id, challenge, self.settings.challenge_ttl)
        return {"auth_id": auth_id, "challenge": challenge}

    def _user(self, token: str) -> User:
        user = self.store.user_for_token(token) if token else None
        if user is None:
            raise ClaimFailure(401, UNAUTHORIZED)
        return user

    # --- POST /claim/verify ---------------------------------------------------------------------

    def verify(self, body: bytes, authorization: str | None, matter: bool) -> dict[str, Any]:
        obj = parse_object(body)
        send_mqtt_host = obj.get("send_mqtt_host", False)
        if not isinstance(send_mqtt_host, bool):
            raise ClaimFailure(400, "send_mqtt_host must be true or false")
        if "auth_id" in obj:
            issued = self._verify_self(obj, matter)
        else:
            token = token_from_header(authorization)
            if token is None:
                raise ClaimFailure(401, UNAUTHORIZED)
            issued = self._verify_token(obj, self._user(token), matter)
        reply: dict[str, Any] = {"certificate": issued.chain_pem}
        if send_mqtt_host:
            reply.update(self.mqtt_host())
        return reply

    def _verify_self(self, obj: dict[str, Any], matter: bool) -> Issued:
        auth_id = string_field(obj, "auth_id")
        response = string_field(obj, "challenge_response")
        csr_text = string_field(obj, "csr")
        # The challenge is spent by any verify that names it, right or wrong: no second guess.
        challenge = self.store.spend_challenge(auth_id)
        if challenge is None:
            raise ClaimFailure(401, "auth_id is unknown; call /claim/initiate first")
        if challenge.used:
            raise ClaimFailure(401, "auth_id was already used; call /claim/initiate again")
        if challenge.expires < time.time():
            raise ClaimFailure(401, "auth_id has expired; call /claim/initiate again")
        if not CHALLENGE_RESPONSE_RE.fullmatch(response):
            raise ClaimFailure(400, "challenge_response must be 128 uppercase hex digits")
        unique_id = self.store.unique_id(challenge.mac)
        if unique_id is None:
            raise ClaimFailure(403, f"MAC {challenge.mac} is no longer registered")
        expected = hmac.new(unique_id, challenge.challenge.encode(), hashlib.sha512).hexdigest()
        if not hmac.compare_digest(expected.upper(), response):
            raise ClaimFailure(401, "challenge_response is wrong")
        csr = load_csr(csr_text, matter)
        check_common_name(csr, challenge.mac, "the MAC address")
        with self.store.transaction() as db:
            return self._issue(
                db, csr, challenge.mac, mac=challenge.mac, user_id=None, mode="self"
            )

    def _verify_token(self, obj: dict[str, Any], user: User, matter: bool) -> Issued:
        csr = load_csr(string_field(obj, "csr"), matter)
        cn = common_name(csr)
        node = self.store.node(cn)
        if node is None or node.user_id != user.user_id:
            raise ClaimFailure(
                400,
                f"CSR common name {_shown(cn)} is not a node id this user initiated; "
                "call /claim/initiate first",
            )
        with self.store.claim_node(node.node_id) as (db, over_quota):
            if over_quota:
                raise ClaimFailure(403, NO_QUOTA)
            return self._issue(
                db, csr, node.node_id, mac=node.mac, user_id=user.user_id, mode="token"
            )

    def _issue(
        self,
        db: sqlite3.Connection,
        csr: x509.CertificateSigningRequest,
        node_id: str,
        *,
        mac: str,
        user_id: str | None,
        mode: str,
    ) -> Issued:
        # The certificate for csr's key, recorded in the caller's transaction.
        cert = ca.device_certificate(self.claim_ca, csr.public_key(), node_id)
        pem = certs.pem(cert)
        self.store.record_certificate(
            db,
            serial=cert.serial_number,
            node_id=node_id,
            mac=mac,
            user_id=user_id,
            mode=mode,
            pem=pem,
        )
        return Issued(cert, pem + self.claim_ca.pem)


def load_csr(text: str, matter: bool) -> x509.CertificateSigningRequest:
    """Parse and check a PEM CSR: valid signature; EC P-256 or RSA 2048..4096 (Matter: P-256)."""
    try:
        csr = x509.load_pem_x509_csr(text.encode("utf-8"))
    except (ValueError, UnicodeEncodeError):
        raise ClaimFailure(400, "csr is not a PEM certificate signing request") from None
    try:
        key = csr.public_key()
    except (ValueError, TypeError):
        raise ClaimFailure(400, "csr public key is not supported") from None
    if isinstance(key, ec.EllipticCurvePublicKey):
        if not isinstance(key.curve, ec.SECP256R1):
            raise ClaimFailure(400, f"csr EC key must be P-256, got {key.curve.name}")
    elif isinstance(key, rsa.RSAPublicKey):
        if matter:
            raise ClaimFailure(400, "matter=true needs an EC P-256 key, got RSA")
        if not RSA_BITS[0] <= key.key_size <= RSA_BITS[1]:
            raise ClaimFailure(
                400, f"csr RSA key must be 2048 to 4096 bits, got {key.key_size} bits"
            )
    else:
        raise ClaimFailure(400, "csr key must be EC P-256 or RSA 2048..4096")
    try:
        valid = csr.is_signature_valid
    except (ValueError, TypeError):  # unsupported signature algorithm
        valid = False
    if not valid:
        raise ClaimFailure(400, "csr signature is invalid")
    return csr


def common_name(csr: x509.CertificateSigningRequest) -> str:
    try:
        names = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    except ValueError:
        names = []
    if len(names) != 1 or not isinstance(names[0].value, str):
        raise ClaimFailure(400, "csr subject must hold exactly one common name (CN)")
    return names[0].value


def check_common_name(csr: x509.CertificateSigningRequest, wanted: str, what: str) -> None:
    cn = common_name(csr)
    if cn != wanted:
        raise ClaimFailure(400, f"csr common name {_shown(cn)} must be {what} {wanted}")
