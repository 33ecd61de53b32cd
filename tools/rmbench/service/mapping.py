"""The user-node mapping rules of the local service: challenge-response, secret key, node lists.

Pure of HTTP, like logic.py: each call takes the raw body (or query) and Authorization value and
returns the reply object or raises ClaimFailure(status, description).

What the client sends and reads is taken from esp-rainmaker-cli 1.14.1 (the version pinned in
tools/pyproject.toml), what the node signs and publishes from ESP RainMaker v1.16.0 firmware:

- Challenge-response (rmaker_tools/rmaker_prov/challenge_response.py): the CLI POSTs
  `user/nodes/mapping/initiate` {"timeout": 360} and reads `challenge` and `request_id`; it sends
  the challenge's UTF-8 bytes to the device, which hashes them with SHA-256 and signs the hash
  with its claimed key (components/esp_rainmaker/src/core/esp_rmaker_node_auth.c,
  esp_rmaker_node_auth_sign_msg: mbedtls_pk_sign, i.e. a DER ECDSA signature for an EC key,
  RSASSA-PSS with SHA-256 for an RSA key); the CLI POSTs `user/nodes/mapping/verify`
  {request_id, node_id, challenge_response: the signature as lowercase hex (bytes.hex().lower())}
  and looks only at the HTTP status (raise_for_status).
- Secret key (rmaker_lib/node.py, Node.__user_node_mapping and get_mapping_status;
  rmaker_cmd/provision.py): `PUT user/nodes/mapping` {user_id, node_id, secret_key (a uuid4
  string), operation: "add"|"remove", tags?, metadata?} -> `request_id`; then
  `GET user/nodes/mapping?&request_id=...` -> `request_status`, polled every 5 s for 60 s until
  "confirmed" (or "timedout"/"discarded"; "requested" keeps it polling). The node publishes
  {"node_id", "user_id", "secret_key", "reset": true} on node/<node_id>/user/mapping
  (esp_rmaker_user_mapping.c, esp_rmaker_user_mapping_cb; "reset" only when the user differs
  from the one it last mapped to). The mapping holds when both agree, in either order: a node
  that joins fast publishes before the CLI's PUT (the CLI PUTs only after Wi-Fi is connected).
- Node lists (rmaker_lib/session.py, get_nodes / get_node_details): `GET user/nodes` ->
  {"nodes": [...], "next_id"?}, followed with `start_id` while next_id is set;
  `node_details=true` -> {"node_details": [{"id", "status": {"connectivity": ...}, "config",
  "params", "role", "primary", "is_matter", "mapping_timestamp" (seconds), "tags"?,
  "metadata"?}], ...} (rmaker_cmd/node.py, _print_node_details).

Where the real cloud's rule is not known, the harsher one is modelled: a node has one user; a
node message without "reset" cannot take a node another user holds; a challenge is spent by the
first verify of its owner, right or wrong; only the certificate issued last to a node counts.
"""

from __future__ import annotations

import hmac
import json
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from rmbench.service.logic import (
    UNAUTHORIZED,
    ClaimFailure,
    Settings,
    parse_bool_param,
    parse_object,
    string_field,
    token_from_header,
)
from rmbench.service.store import (
    MappingChallenge,
    MappingRequest,
    NodeReport,
    Store,
    User,
    UserNode,
    random_alnum,
)

REQUEST_ID_LENGTH = 32
MAPPING_CHALLENGE_LENGTH = 64
DEFAULT_MAPPING_TIMEOUT = 360  # what esp-rainmaker-cli asks for
MAX_MAPPING_TIMEOUT = 3600
DEFAULT_PAGE = 10  # nodes per page of GET user/nodes (the real default is not known)
MAX_PAGE = 100
# The signature of an RSA-4096 key is 512 bytes; a DER P-256 ECDSA signature at most 72.
MAX_SIGNATURE = 512
# The user id the firmware sends to report a factory reset (esp_rmaker_user_mapping.c
# USER_RESET_ID, with CONFIG_ESP_RMAKER_FACTORY_RESET_REPORTING).
RESET_USER_ID = "esp-rmaker"

NODE_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
SECRET_KEY_RE = re.compile(r"[\x21-\x7e]{1,128}")
HEX_RE = re.compile(r"(?:[0-9a-f]{2})+")
TAG_RE = re.compile(r"[^\x00-\x1f]{1,128}")

REQUEST_UNKNOWN = "request_id is unknown; call user/nodes/mapping/initiate first"
STATUS_UNKNOWN = "request_id is unknown"


@dataclass(frozen=True)
class NodeMappingOutcome:
    """What a node's mapping message did.

    result: "confirmed" (a request of that user with that secret key was waiting, and the node
    is now mapped to the user), "pending" (kept until the user's PUT arrives), "mismatch"
    (requests are waiting for this node, none of that user with that secret key; kept too),
    "refused" (no "reset" and another user holds the node), "reset" (the factory-reset report:
    the node is unmapped).
    """

    result: str
    description: str
    request_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        reply: dict[str, Any] = {"status": "success", "result": self.result}
        if self.request_id is not None:
            reply["request_id"] = self.request_id
        reply["description"] = self.description
        return reply


def signature_valid(cert_pem: str, message: bytes, signature: bytes) -> bool:
    """Whether `signature` is the certificate key's signature of `message`, as the firmware
    makes it: ECDSA over SHA-256 in DER for an EC key; RSASSA-PSS, SHA-256, MGF1-SHA-256, any
    salt length for an RSA key (esp_rmaker_node_auth.c signs RSA with PSS only: "the cloud
    verifies RSA challenge signatures with PSS only")."""
    key = x509.load_pem_x509_certificate(cert_pem.encode()).public_key()
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, message, ec.ECDSA(hashes.SHA256()))
        elif isinstance(key, rsa.RSAPublicKey):
            pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.AUTO)
            key.verify(signature, message, pss, hashes.SHA256())
        else:
            return False
    except InvalidSignature:
        return False
    return True


def _node_id(obj: dict[str, Any], name: str = "node_id") -> str:
    value = string_field(obj, name)
    if not NODE_ID_RE.fullmatch(value):
        raise ClaimFailure(400, f"{name} must be 1 to 64 letters, digits, '-' or '_'")
    return value


def _secret_key(obj: dict[str, Any]) -> str:
    value = string_field(obj, "secret_key")
    if not SECRET_KEY_RE.fullmatch(value):
        raise ClaimFailure(400, "secret_key must be 1 to 128 printable ASCII characters")
    return value


def _tags_and_metadata(obj: dict[str, Any]) -> tuple[str | None, str | None]:
    # As the CLI sends them with --tags/--metadata: a list of "key:value" strings, an object.
    tags = obj.get("tags")
    if tags is not None and (
        not isinstance(tags, list)
        or len(tags) > 32
        or not all(isinstance(t, str) and TAG_RE.fullmatch(t) for t in tags)
    ):
        raise ClaimFailure(400, "tags must be a list of up to 32 strings")
    metadata = obj.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise ClaimFailure(400, "metadata must be a JSON object")
    return (
        None if not tags else json.dumps(tags),
        None if not metadata else json.dumps(metadata, separators=(",", ":")),
    )


class MappingService:
    """The user-node mapping API over one store."""

    def __init__(
        self, store: Store, settings: Settings, clock: Callable[[], float] = time.time
    ) -> None:
        self.store = store
        self.settings = settings
        self.clock = clock

    def _user(self, authorization: str | None) -> User:
        # The CLI sends its access token raw in Authorization (rmaker_lib/session.py).
        token = token_from_header(authorization)
        user = self.store.user_for_token(token) if token else None
        if user is None:
            raise ClaimFailure(401, UNAUTHORIZED)
        return user

    # --- POST /v1/user/nodes/mapping/initiate ---------------------------------------------------

    def initiate(self, body: bytes, authorization: str | None) -> dict[str, Any]:
        user = self._user(authorization)
        obj = parse_object(body) if body.strip() else {}
        timeout = obj.get("timeout", DEFAULT_MAPPING_TIMEOUT)
        if (
            not isinstance(timeout, int)
            or isinstance(timeout, bool)
            or not 1 <= timeout <= MAX_MAPPING_TIMEOUT
        ):
            raise ClaimFailure(
                400, f"timeout must be a whole number of seconds, 1 to {MAX_MAPPING_TIMEOUT}"
            )
        request_id = random_alnum(REQUEST_ID_LENGTH)
        challenge = random_alnum(MAPPING_CHALLENGE_LENGTH)
        now = self.clock()
        self.store.new_mapping_challenge(user.user_id, request_id, challenge, now + timeout, now)
        return {"status": "success", "request_id": request_id, "challenge": challenge}

    # --- POST /v1/user/nodes/mapping/verify -----------------------------------------------------

    def verify(self, body: bytes, authorization: str | None) -> dict[str, Any]:
        user = self._user(authorization)
        obj = parse_object(body)
        request_id = string_field(obj, "request_id")
        node_id = _node_id(obj)
        response = string_field(obj, "challenge_response")
        tags, metadata = _tags_and_metadata(obj)
        now = self.clock()
        refusal: ClaimFailure | None = None
        with self.store.transaction() as db:
            challenge = self.store.mapping_challenge(db, request_id)
            # Another user's request is not theirs to spend, nor to learn about.
            if challenge is None or challenge.user_id != user.user_id:
                refusal = ClaimFailure(404, REQUEST_UNKNOWN)
            else:
                # Spent by this verify, right or wrong: no second guess.
                self.store.spend_mapping_challenge(db, request_id)
                refusal = self._check_response(db, challenge, node_id, response, now)
                if refusal is None:
                    self.store.map_node(
                        db,
                        UserNode(node_id, user.user_id, now, "challenge_response", tags, metadata),
                    )
                    # The node is now this user's: secret-key requests for it are moot.
                    self.store.discard_open_requests(db, node_id, now)
                    self.store.drop_node_report(db, node_id)
        if refusal is not None:
            raise refusal
        return {"status": "success", "description": f"Node {node_id} mapped to user"}

    def _check_response(
        self, db: Any, challenge: MappingChallenge, node_id: str, response: str, now: float
    ) -> ClaimFailure | None:
        if challenge.used:
            return ClaimFailure(
                400, "request_id was already used; call user/nodes/mapping/initiate again"
            )
        if challenge.expires < now:
            return ClaimFailure(
                400, "request_id has expired; call user/nodes/mapping/initiate again"
            )
        if len(response) > 2 * MAX_SIGNATURE or not HEX_RE.fullmatch(response):
            return ClaimFailure(
                400, "challenge_response must be the signature as lowercase hex digits"
            )
        cert_pem = self.store.latest_certificate(db, node_id)
        if cert_pem is None:
            return ClaimFailure(404, f"node {node_id} has no certificate from this service")
        cert = x509.load_pem_x509_certificate(cert_pem.encode())
        if cert.not_valid_after_utc.timestamp() < now:
            return ClaimFailure(400, f"the certificate of node {node_id} has expired")
        if not signature_valid(cert_pem, challenge.challenge.encode(), bytes.fromhex(response)):
            return ClaimFailure(
                400, f"challenge_response is not a signature by the key of node {node_id}"
            )
        return None

    # --- PUT /v1/user/nodes/mapping -------------------------------------------------------------

    def put_mapping(self, body: bytes, authorization: str | None) -> dict[str, Any]:
        user = self._user(authorization)
        obj = parse_object(body)
        operation = string_field(obj, "operation")
        if operation not in ("add", "remove"):
            raise ClaimFailure(400, f"operation must be add or remove, got {operation[:20]!r}")
        claimed_user = obj.get("user_id")
        if claimed_user is not None and claimed_user != user.user_id:
            raise ClaimFailure(403, "user_id is not the user of this access token")
        node_id = _node_id(obj)
        if operation == "remove":
            with self.store.transaction() as db:
                removed = self.store.unmap_node(db, node_id, user.user_id)
            if not removed:
                raise ClaimFailure(404, f"node {node_id} is not mapped to this user")
            return {"status": "success", "description": f"Node {node_id} removed from user"}
        secret_key = _secret_key(obj)
        tags, metadata = _tags_and_metadata(obj)
        now = self.clock()
        request = MappingRequest(
            random_alnum(REQUEST_ID_LENGTH),
            user.user_id,
            node_id,
            secret_key,
            now,
            now + self.settings.mapping_ttl,
            "requested",
            tags,
            metadata,
        )
        with self.store.transaction() as db:
            # A new request of the same user for the same node replaces the waiting one.
            self.store.discard_open_requests(db, node_id, now, user.user_id)
            self.store.add_mapping_request(db, request)
            report = self.store.node_report(db, node_id)
            # The node may have spoken first: a fresh report that agrees confirms at once.
            if (
                report is not None
                and report.received + self.settings.mapping_ttl >= now
                and report.user_id == user.user_id
                and hmac.compare_digest(report.secret_key, secret_key)
                and self._may_take(db, node_id, user.user_id, report.reset)
            ):
                self._confirm(db, request, now)
        return {"status": "success", "request_id": request.request_id}

    def _may_take(self, db: Any, node_id: str, user_id: str, reset: bool) -> bool:
        owner = self.store.node_owner(db, node_id)
        return reset or owner is None or owner == user_id

    def _confirm(self, db: Any, request: MappingRequest, now: float) -> None:
        self.store.set_request_status(db, request.request_id, "confirmed", now)
        self.store.discard_open_requests(db, request.node_id, now)
        self.store.map_node(
            db,
            UserNode(
                request.node_id, request.user_id, now, "secret_key", request.tags, request.metadata
            ),
        )
        self.store.drop_node_report(db, request.node_id)

    # --- GET /v1/user/nodes/mapping?request_id= -------------------------------------------------

    def mapping_status(self, request_id: str | None, authorization: str | None) -> dict[str, Any]:
        user = self._user(authorization)
        if not request_id:
            raise ClaimFailure(400, "request_id is required")
        request = self.store.mapping_request(request_id)
        if request is None or request.user_id != user.user_id:
            raise ClaimFailure(404, STATUS_UNKNOWN)
        status = request.status
        if status == "requested" and request.expires < self.clock():
            status = "timedout"
        return {
            "request_id": request.request_id,
            "request_status": status,
            "user_node_id": request.node_id,
            "request_source": "user",
        }

    # --- the node's message on node/<node_id>/user/mapping --------------------------------------

    def node_message(self, node_id: str, payload: bytes) -> NodeMappingOutcome:
        """Take the mapping message the node `node_id` published (node_id as the broker
        authenticated it: the client certificate's CN and the topic).

        Raises:
            ClaimFailure: 400 for a message that is not what the firmware sends or names
                another node; 404 when this service issued no certificate to node_id.
        """
        try:
            obj = parse_object(payload)
        except ClaimFailure as e:
            raise ClaimFailure(400, f"mapping message: {e.description}") from None
        unknown = sorted(set(obj) - {"node_id", "user_id", "secret_key", "reset"})
        if unknown:
            raise ClaimFailure(400, f"mapping message: unknown field {unknown[0][:40]!r}")
        said = string_field(obj, "node_id")
        if said != node_id:
            raise ClaimFailure(
                400, f"mapping message names node {said[:40]!r}, but it came from {node_id}"
            )
        user_id = string_field(obj, "user_id")
        secret_key = string_field(obj, "secret_key")
        reset = obj.get("reset", False)
        if not isinstance(reset, bool):
            raise ClaimFailure(400, "mapping message: reset must be true or false")
        now = self.clock()
        with self.store.transaction() as db:
            if self.store.latest_certificate(db, node_id) is None:
                raise ClaimFailure(404, f"node {node_id} has no certificate from this service")
            if user_id == RESET_USER_ID:
                self.store.unmap_node(db, node_id)
                self.store.drop_node_report(db, node_id)
                return NodeMappingOutcome("reset", f"node {node_id} reported a factory reset")
            if not self._may_take(db, node_id, user_id, reset):
                return NodeMappingOutcome(
                    "refused",
                    f"node {node_id} is mapped to another user and the message has no reset",
                )
            waiting = self.store.open_mapping_requests(db, node_id, now)
            for request in waiting:
                if request.user_id == user_id and hmac.compare_digest(
                    request.secret_key, secret_key
                ):
                    self._confirm(db, request, now)
                    return NodeMappingOutcome(
                        "confirmed",
                        f"node {node_id} mapped to user {user_id}",
                        request.request_id,
                    )
            self.store.keep_node_report(db, NodeReport(node_id, user_id, secret_key, reset, now))
        if waiting:
            return NodeMappingOutcome(
                "mismatch",
                f"no request of user {user_id} for node {node_id} holds this secret key",
            )
        return NodeMappingOutcome("pending", f"kept until user {user_id} asks to map {node_id}")

    # --- GET /v1/user/nodes ---------------------------------------------------------------------

    def user_nodes(self, query: Mapping[str, str], authorization: str | None) -> dict[str, Any]:
        user = self._user(authorization)
        details = parse_bool_param("node_details", query.get("node_details"))
        limit = DEFAULT_PAGE
        if "num_records" in query:
            text = query["num_records"]
            if not text.isdigit() or not 1 <= int(text) <= MAX_PAGE:
                raise ClaimFailure(400, f"num_records must be 1 to {MAX_PAGE}")
            limit = int(text)
        node_id = query.get("node_id")
        if node_id is not None:
            nodes, _, _ = self.store.user_nodes(user.user_id, node_id, 1)
            nodes = [n for n in nodes if n.node_id == node_id]
            if not nodes:
                raise ClaimFailure(404, f"node {node_id[:64]} is not mapped to this user")
            total, next_id = 1, None
        else:
            nodes, total, next_id = self.store.user_nodes(
                user.user_id, query.get("start_id"), limit
            )
        reply: dict[str, Any] = {"nodes": [n.node_id for n in nodes]}
        if details:
            reply["node_details"] = [node_details(n) for n in nodes]
        reply["total"] = total
        if next_id is not None:
            reply["next_id"] = next_id
        return reply


def node_details(node: UserNode) -> dict[str, Any]:
    """One entry of node_details, as esp-rainmaker-cli's getnodedetails prints it. Connectivity,
    config and params are what the node reports over MQTT, which this service does not see
    (yet): offline, empty."""
    entry: dict[str, Any] = {
        "id": node.node_id,
        "role": "primary",
        "primary": True,
        "is_matter": False,
        "mapping_timestamp": int(node.mapped),
        "status": {"connectivity": {"connected": False, "timestamp": 0}},
        "config": {},
        "params": {},
    }
    if node.tags:
        entry["tags"] = json.loads(node.tags)
    if node.metadata:
        entry["metadata"] = json.loads(node.metadata)
    return entry
