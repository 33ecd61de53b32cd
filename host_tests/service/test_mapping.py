"""User-node mapping rules, in-process: MappingService over a real SQLite store, a clock the
tests move, nodes claimed through the real ClaimService and signatures made by `cryptography`."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from rmbench.service import ca
from rmbench.service.logic import ClaimFailure, ClaimService, Settings
from rmbench.service.mapping import MappingService
from rmbench.service.store import Store

from .helpers import PrivateKey, make_csr

TTL = 60.0


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@dataclass
class World:
    store: Store
    claims: ClaimService
    api: MappingService
    clock: Clock
    tokens: dict[str, str]  # user id -> token

    def add_user(self, user_id: str) -> str:
        token = f"token-of-{user_id}"
        self.store.add_user(token, quota=50, user_id=user_id)
        self.tokens[user_id] = token
        return token

    def claim(self, user_id: str, mac: str, key: PrivateKey | None = None) -> tuple[str, Any]:
        """A token claim through the claiming rules; (node id, the node's private key)."""
        token = self.tokens[user_id]
        body = json.dumps({"mac_addr": mac, "platform": "esp32"}).encode()
        node_id = self.claims.initiate(body, token)["node_id"]
        csr, key = make_csr(node_id, key)
        self.claims.verify(json.dumps({"csr": csr}).encode(), token, False)
        return node_id, key

    def owner(self, node_id: str) -> str | None:
        with self.store.snapshot() as db:
            return self.store.node_owner(db, node_id)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    store = Store.open(tmp_path)
    settings = Settings(mapping_ttl=TTL)
    claim_ca = ca.load_or_create_authorities(tmp_path).claim
    clock = Clock()
    w = World(
        store,
        ClaimService(store, claim_ca, settings),
        MappingService(store, settings, clock),
        clock,
        {},
    )
    w.add_user("alice")
    w.add_user("bob")
    yield w
    store.close()


def body(obj: object) -> bytes:
    return json.dumps(obj).encode()


def refused(call: Any, *args: Any) -> tuple[int, str]:
    with pytest.raises(ClaimFailure) as e:
        call(*args)
    return e.value.status, e.value.description


def ecdsa(key: Any, message: bytes) -> bytes:
    return key.sign(message, ec.ECDSA(hashes.SHA256()))  # type: ignore[no-any-return]


# --- challenge-response ---------------------------------------------------------------------


def initiate(w: World, user: str, timeout: object = 360) -> tuple[str, str]:
    reply = w.api.initiate(body({"timeout": timeout}), w.tokens[user])
    assert reply["status"] == "success"
    return reply["request_id"], reply["challenge"]


def verify(w: World, user: str, request_id: str, node_id: str, signature: bytes | str) -> Any:
    response = signature if isinstance(signature, str) else signature.hex()
    obj = {"request_id": request_id, "node_id": node_id, "challenge_response": response}
    return w.api.verify(body(obj), w.tokens[user])


def test_challenge_response_maps_the_node(world: World) -> None:
    node_id, key = world.claim("alice", "7CDFA1000001")
    request_id, challenge = initiate(world, "alice")
    assert len(challenge) == 64 and challenge.isalnum()
    reply = verify(world, "alice", request_id, node_id, ecdsa(key, challenge.encode()))
    assert reply == {"status": "success", "description": f"Node {node_id} mapped to user"}
    assert world.owner(node_id) == "alice"
    nodes, total, _ = world.store.user_nodes("alice")
    assert total == 1 and nodes[0].how == "challenge_response"
    assert world.store.user_nodes("bob")[1] == 0


def test_the_request_is_spent_by_a_wrong_answer(world: World) -> None:
    node_id, key = world.claim("alice", "7CDFA1000002")
    request_id, challenge = initiate(world, "alice")
    wrong = ecdsa(key, challenge.encode() + b"x")
    assert refused(verify, world, "alice", request_id, node_id, wrong) == (
        400,
        f"challenge_response is not a signature by the key of node {node_id}",
    )
    # The right answer comes too late: one guess per challenge.
    right = ecdsa(key, challenge.encode())
    assert refused(verify, world, "alice", request_id, node_id, right) == (
        400,
        "request_id was already used; call user/nodes/mapping/initiate again",
    )
    assert world.owner(node_id) is None


def test_a_signature_by_another_nodes_key_is_refused(world: World) -> None:
    node_id, _ = world.claim("alice", "7CDFA1000003")
    _, other_key = world.claim("alice", "7CDFA1000004")
    request_id, challenge = initiate(world, "alice")
    sig = ecdsa(other_key, challenge.encode())
    status, _ = refused(verify, world, "alice", request_id, node_id, sig)
    assert status == 400 and world.owner(node_id) is None


def test_a_key_the_service_never_certified_is_refused(world: World) -> None:
    node_id, _ = world.claim("alice", "7CDFA1000005")
    request_id, challenge = initiate(world, "alice")
    stranger = ec.generate_private_key(ec.SECP256R1())
    status, _ = refused(
        verify, world, "alice", request_id, node_id, ecdsa(stranger, challenge.encode())
    )
    assert status == 400 and world.owner(node_id) is None


def test_only_the_latest_certificate_counts(world: World) -> None:
    mac = "7CDFA1000006"
    node_id, old_key = world.claim("alice", mac)
    again, new_key = world.claim("alice", mac)  # re-claimed: same node id, new key
    assert again == node_id and len(world.store.certificates(node_id)) == 2
    request_id, challenge = initiate(world, "alice")
    sig = ecdsa(old_key, challenge.encode())
    assert refused(verify, world, "alice", request_id, node_id, sig)[0] == 400
    request_id, challenge = initiate(world, "alice")
    verify(world, "alice", request_id, node_id, ecdsa(new_key, challenge.encode()))
    assert world.owner(node_id) == "alice"


def test_expired_request(world: World) -> None:
    node_id, key = world.claim("alice", "7CDFA1000007")
    request_id, challenge = initiate(world, "alice", timeout=30)
    world.clock.now += 31
    sig = ecdsa(key, challenge.encode())
    assert refused(verify, world, "alice", request_id, node_id, sig) == (
        400,
        "request_id has expired; call user/nodes/mapping/initiate again",
    )


def test_unknown_and_other_users_requests(world: World) -> None:
    node_id, key = world.claim("alice", "7CDFA1000008")
    unknown = (404, "request_id is unknown; call user/nodes/mapping/initiate first")
    assert refused(verify, world, "alice", "nope", node_id, b"\x30\x00") == unknown
    request_id, challenge = initiate(world, "alice")
    sig = ecdsa(key, challenge.encode())
    # Bob has the request id and a valid signature, but the request is Alice's: it does not
    # exist for him, and his attempt does not spend it.
    assert refused(verify, world, "bob", request_id, node_id, sig) == unknown
    verify(world, "alice", request_id, node_id, sig)
    assert world.owner(node_id) == "alice"


def test_node_without_certificate(world: World) -> None:
    request_id, _ = initiate(world, "alice")
    assert refused(verify, world, "alice", request_id, "NoSuchNode0000000000aa", b"\x30\x00") == (
        404,
        "node NoSuchNode0000000000aa has no certificate from this service",
    )


def test_expired_certificate(world: World) -> None:
    node_id, key = world.claim("alice", "7CDFA1000009")
    (_, _, pem) = world.store.certificates(node_id)[0]
    expiry = x509.load_pem_x509_certificate(pem.encode()).not_valid_after_utc.timestamp()
    request_id, challenge = initiate(world, "alice", timeout=3600)
    world.clock.now = expiry + 1
    # The challenge would have expired too: move only the certificate check past expiry.
    with world.store.transaction() as db:
        db.execute("UPDATE mapping_challenges SET expires = ?", (expiry + 100,))
    sig = ecdsa(key, challenge.encode())
    assert refused(verify, world, "alice", request_id, node_id, sig) == (
        400,
        f"the certificate of node {node_id} has expired",
    )


def _long_form(der: bytes) -> bytes:
    # The same signature with the SEQUENCE length in long form (BER, not DER).
    assert der[0] == 0x30 and der[1] < 0x80
    return b"\x30\x81" + der[1:2] + der[2:]


@pytest.mark.parametrize(
    ("mangle", "description"),
    [
        (
            lambda s: s.hex().upper(),
            "challenge_response must be the signature as lowercase hex digits",
        ),
        (
            lambda s: s.hex()[:-1],
            "challenge_response must be the signature as lowercase hex digits",
        ),
        (lambda s: "", "challenge_response must be the signature as lowercase hex digits"),
        (
            lambda s: "zz" + s.hex(),
            "challenge_response must be the signature as lowercase hex digits",
        ),
        (lambda s: _long_form(s).hex(), None),
        (lambda s: (s + b"\x00").hex(), None),
        (lambda s: s[:-1].hex(), None),
    ],
)
def test_signature_encoding(world: World, mangle: Any, description: str | None) -> None:
    node_id, key = world.claim("alice", "7CDFA100000A")
    request_id, challenge = initiate(world, "alice")
    sig = mangle(ecdsa(key, challenge.encode()))
    status, text = refused(verify, world, "alice", request_id, node_id, sig)
    expected = description or f"challenge_response is not a signature by the key of node {node_id}"
    assert (status, text) == (400, expected)


def test_rsa_nodes_sign_with_pss(world: World) -> None:
    # The firmware signs with RSA-PSS (esp_rmaker_node_auth.c); PKCS#1 v1.5 is refused.
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    node_id, _ = world.claim("alice", "7CDFA100000B", rsa_key)
    request_id, challenge = initiate(world, "alice")
    v15 = rsa_key.sign(challenge.encode(), padding.PKCS1v15(), hashes.SHA256())
    assert refused(verify, world, "alice", request_id, node_id, v15)[0] == 400
    request_id, challenge = initiate(world, "alice")
    pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
    verify(
        world, "alice", request_id, node_id, rsa_key.sign(challenge.encode(), pss, hashes.SHA256())
    )
    assert world.owner(node_id) == "alice"


@pytest.mark.parametrize("timeout", [0, 3601, "360", True, 1.5, None, -1])
def test_initiate_timeout_checked(world: World, timeout: object) -> None:
    assert refused(world.api.initiate, body({"timeout": timeout}), world.tokens["alice"]) == (
        400,
        "timeout must be a whole number of seconds, 1 to 3600",
    )


def test_initiate_default_timeout(world: World) -> None:
    for raw in (b"", b"{}"):
        request_id = world.api.initiate(raw, world.tokens["alice"])["request_id"]
        with world.store.snapshot() as db:
            challenge = world.store.mapping_challenge(db, request_id)
        assert challenge is not None
        assert challenge.expires == pytest.approx(world.clock.now + 360)


def test_every_call_needs_a_known_token(world: World) -> None:
    unauthorized = (401, "Unauthorized")
    for auth in (None, "", "not-a-token"):
        assert refused(world.api.initiate, b"{}", auth) == unauthorized
        assert refused(world.api.verify, b"{}", auth) == unauthorized
        assert refused(world.api.put_mapping, b"{}", auth) == unauthorized
        assert refused(world.api.mapping_status, "x", auth) == unauthorized
        assert refused(world.api.user_nodes, {}, auth) == unauthorized
    # Bearer works as for claiming.
    assert world.api.user_nodes({}, "Bearer " + world.tokens["alice"])["total"] == 0


def test_concurrent_verifies_of_one_request(world: World) -> None:
    node_id, key = world.claim("alice", "7CDFA100000C")
    request_id, challenge = initiate(world, "alice")
    sig = ecdsa(key, challenge.encode())
    results: list[str] = []
    start = threading.Barrier(8)

    def attempt() -> None:
        start.wait()
        try:
            verify(world, "alice", request_id, node_id, sig)
            results.append("ok")
        except ClaimFailure as e:
            results.append(e.description)
        finally:
            world.store.close()

    threads = [threading.Thread(target=attempt) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count("ok") == 1, results
    assert (
        results.count("request_id was already used; call user/nodes/mapping/initiate again") == 7
    )


# --- secret key -----------------------------------------------------------------------------


def put(w: World, user: str, node_id: str, secret: str, **extra: object) -> str:
    obj = {"user_id": user, "node_id": node_id, "secret_key": secret, "operation": "add", **extra}
    reply = w.api.put_mapping(body(obj), w.tokens[user])
    assert reply["status"] == "success" and set(reply) == {"status", "request_id"}
    return str(reply["request_id"])


def status(w: World, user: str, request_id: str) -> str:
    reply = w.api.mapping_status(request_id, w.tokens[user])
    assert reply["request_id"] == request_id and reply["request_source"] == "user"
    return str(reply["request_status"])


def node_says(w: World, node_id: str, **fields: object) -> Any:
    return w.api.node_message(node_id, body({"node_id": node_id, **fields}))


def test_put_then_node_message(world: World) -> None:
    node_id, _ = world.claim("alice", "7CDFA1000010")
    request_id = put(world, "alice", node_id, "secret-1")
    assert status(world, "alice", request_id) == "requested"
    assert world.api.mapping_status(request_id, world.tokens["alice"])["user_node_id"] == node_id
    outcome = node_says(world, node_id, user_id="alice", secret_key="secret-1", reset=True)
    assert (outcome.result, outcome.request_id) == ("confirmed", request_id)
    assert status(world, "alice", request_id) == "confirmed"
    assert world.owner(node_id) == "alice"
    assert world.store.user_nodes("alice")[0][0].how == "secret_key"


def test_node_message_then_put(world: World) -> None:
    # A node that joins fast publishes before the CLI's PUT: kept, and the PUT confirms.
    node_id, _ = world.claim("alice", "7CDFA1000011")
    outcome = node_says(world, node_id, user_id="alice", secret_key="s", reset=True)
    assert outcome.result == "pending"
    assert world.owner(node_id) is None
    request_id = put(world, "alice", node_id, "s")
    assert status(world, "alice", request_id) == "confirmed"
    assert world.owner(node_id) == "alice"


def test_stale_node_message_does_not_confirm(world: World) -> None:
    node_id, _ = world.claim("alice", "7CDFA1000012")
    node_says(world, node_id, user_id="alice", secret_key="s", reset=True)
    world.clock.now += TTL + 1
    request_id = put(world, "alice", node_id, "s")
    assert status(world, "alice", request_id) == "requested"
    assert world.owner(node_id) is None


@pytest.mark.parametrize(
    "fields",
    [
        {"user_id": "alice", "secret_key": "wrong", "reset": True},
        {"user_id": "bob", "secret_key": "right", "reset": True},
    ],
)
def test_node_message_that_does_not_agree(world: World, fields: dict[str, object]) -> None:
    node_id, _ = world.claim("alice", "7CDFA1000013")
    request_id = put(world, "alice", node_id, "right")
    outcome = node_says(world, node_id, **fields)
    assert outcome.result == "mismatch", outcome
    assert status(world, "alice", request_id) == "requested"
    world.clock.now += TTL + 1
    assert status(world, "alice", request_id) == "timedout"
    # A message after the timeout confirms nothing either.
    assert node_says(world, node_id, user_id="alice", secret_key="right").result == "pending"
    assert status(world, "alice", request_id) == "timedout"
    assert world.owner(node_id) is None


def test_wrong_put_then_right_put(world: World) -> None:
    # The node's message is kept even when it matched no waiting request.
    node_id, _ = world.claim("alice", "7CDFA1000014")
    first = put(world, "alice", node_id, "typo")
    assert node_says(world, node_id, user_id="alice", secret_key="real").result == "mismatch"
    second = put(world, "alice", node_id, "real")
    assert status(world, "alice", first) == "discarded"
    assert status(world, "alice", second) == "confirmed"


def test_a_new_request_discards_the_waiting_one(world: World) -> None:
    node_id, _ = world.claim("alice", "7CDFA1000015")
    first = put(world, "alice", node_id, "a")
    second = put(world, "alice", node_id, "b")
    assert status(world, "alice", first) == "discarded"
    assert node_says(world, node_id, user_id="alice", secret_key="a").result == "mismatch"
    assert node_says(world, node_id, user_id="alice", secret_key="b").result == "confirmed"
    assert status(world, "alice", second) == "confirmed"


def test_reset_decides_who_may_take_a_mapped_node(world: World) -> None:
    node_id, _ = world.claim("alice", "7CDFA1000016")
    put(world, "alice", node_id, "a")
    node_says(world, node_id, user_id="alice", secret_key="a", reset=True)
    # Bob's request with a message that does not say the node was reset: Alice keeps it.
    request_id = put(world, "bob", node_id, "b")
    outcome = node_says(world, node_id, user_id="bob", secret_key="b")
    assert outcome.result == "refused"
    assert (world.owner(node_id), status(world, "bob", request_id)) == ("alice", "requested")
    # After a reset (the node was re-provisioned by Bob): Bob's.
    outcome = node_says(world, node_id, user_id="bob", secret_key="b", reset=True)
    assert outcome.result == "confirmed" and world.owner(node_id) == "bob"
    assert world.store.user_nodes("alice")[1] == 0
    # The same user again needs no reset (the firmware sends none then).
    request_id = put(world, "bob", node_id, "c")
    assert node_says(world, node_id, user_id="bob", secret_key="c").result == "confirmed"


def test_factory_reset_report_unmaps(world: World) -> None:
    node_id, _ = world.claim("alice", "7CDFA1000017")
    put(world, "alice", node_id, "a")
    node_says(world, node_id, user_id="alice", secret_key="a", reset=True)
    outcome = node_says(world, node_id, user_id="esp-rmaker", secret_key="failed", reset=True)
    assert outcome.result == "reset" and world.owner(node_id) is None


@pytest.mark.parametrize(
    ("payload", "description"),
    [
        (b"not json", "mapping message: Request body is not valid JSON"),
        (b"[]", "mapping message: Request body must be a JSON object"),
        (b"", "mapping message: Request body is empty; a JSON object is required"),
        (
            b'{"node_id":"N","user_id":"u","secret_key":"s","extra":1}',
            "mapping message: unknown field 'extra'",
        ),
        (b'{"node_id":"N","user_id":"u"}', "secret_key is required"),
        (b'{"node_id":"N","user_id":7,"secret_key":"s"}', "user_id must be a string, got int"),
        (
            b'{"node_id":"N","user_id":"u","secret_key":"s","reset":"yes"}',
            "mapping message: reset must be true or false",
        ),
        (
            b'{"node_id":"Other","user_id":"u","secret_key":"s"}',
            "mapping message names node 'Other', but it came from N",
        ),
    ],
)
def test_malformed_node_messages(world: World, payload: bytes, description: str) -> None:
    node_id, _ = world.claim("alice", "7CDFA1000018")
    payload = payload.replace(b'"N"', json.dumps(node_id).encode())
    description = description.replace("from N", f"from {node_id}")
    assert refused(world.api.node_message, node_id, payload) == (400, description)


def test_node_message_from_a_node_without_certificate(world: World) -> None:
    payload = body({"node_id": "Ghost", "user_id": "alice", "secret_key": "s"})
    assert refused(world.api.node_message, "Ghost", payload) == (
        404,
        "node Ghost has no certificate from this service",
    )


def test_challenge_response_discards_waiting_secret_key_requests(world: World) -> None:
    node_id, key = world.claim("alice", "7CDFA1000019")
    waiting = put(world, "bob", node_id, "b")
    request_id, challenge = initiate(world, "alice")
    verify(world, "alice", request_id, node_id, ecdsa(key, challenge.encode()))
    assert status(world, "bob", waiting) == "discarded"
    assert world.owner(node_id) == "alice"


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        (
            {"node_id": "N", "secret_key": "s", "operation": "move"},
            (400, "operation must be add or remove, got 'move'"),
        ),
        ({"node_id": "N", "secret_key": "s"}, (400, "operation is required")),
        (
            {"node_id": "N", "secret_key": "s", "operation": "add", "user_id": "bob"},
            (403, "user_id is not the user of this access token"),
        ),
        (
            {"node_id": "has space", "secret_key": "s", "operation": "add"},
            (400, "node_id must be 1 to 64 letters, digits, '-' or '_'"),
        ),
        (
            {"node_id": "N" * 65, "secret_key": "s", "operation": "add"},
            (400, "node_id must be 1 to 64 letters, digits, '-' or '_'"),
        ),
        ({"node_id": "N", "operation": "add"}, (400, "secret_key is required")),
        (
            {"node_id": "N", "secret_key": "", "operation": "add"},
            (400, "secret_key must be 1 to 128 printable ASCII characters"),
        ),
        (
            {"node_id": "N", "secret_key": "s" * 129, "operation": "add"},
            (400, "secret_key must be 1 to 128 printable ASCII characters"),
        ),
        (
            {"node_id": "N", "secret_key": "sé", "operation": "add"},
            (400, "secret_key must be 1 to 128 printable ASCII characters"),
        ),
        (
            {"node_id": "N", "secret_key": "s", "operation": "add", "tags": "a:b"},
            (400, "tags must be a list of up to 32 strings"),
        ),
        (
            {"node_id": "N", "secret_key": "s", "operation": "add", "metadata": [1]},
            (400, "metadata must be a JSON object"),
        ),
        (
            {"node_id": "N", "secret_key": "", "operation": "remove"},
            (404, "node N is not mapped to this user"),
        ),
    ],
)
def test_put_refusals(world: World, obj: dict[str, object], expected: tuple[int, str]) -> None:
    assert refused(world.api.put_mapping, body(obj), world.tokens["alice"]) == expected


def test_remove(world: World) -> None:
    node_id, key = world.claim("alice", "7CDFA100001A")
    request_id, challenge = initiate(world, "alice")
    verify(world, "alice", request_id, node_id, ecdsa(key, challenge.encode()))
    remove = body({"node_id": node_id, "secret_key": "", "operation": "remove"})
    # Only the user it is mapped to can remove it.
    assert refused(world.api.put_mapping, remove, world.tokens["bob"])[0] == 404
    assert world.api.put_mapping(remove, world.tokens["alice"])["status"] == "success"
    assert world.owner(node_id) is None


def test_status_refusals(world: World) -> None:
    node_id, _ = world.claim("alice", "7CDFA100001B")
    request_id = put(world, "alice", node_id, "s")
    assert refused(world.api.mapping_status, None, world.tokens["alice"]) == (
        400,
        "request_id is required",
    )
    assert refused(world.api.mapping_status, request_id, world.tokens["bob"]) == (
        404,
        "request_id is unknown",
    )


def _race_put_and_node_message(w: World, node_id: str) -> tuple[str, str]:
    """PUT and the node's message at the same moment; (request id, node outcome)."""
    ids: list[str] = []
    outcomes: list[str] = []
    start = threading.Barrier(2)

    def user() -> None:
        start.wait()
        ids.append(put(w, "alice", node_id, "k"))
        w.store.close()

    def node() -> None:
        start.wait()
        outcomes.append(node_says(w, node_id, user_id="alice", secret_key="k").result)
        w.store.close()

    threads = [threading.Thread(target=user), threading.Thread(target=node)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return ids[0], outcomes[0]


def test_concurrent_put_and_node_message_confirm_once(world: World) -> None:
    for i in range(10):
        node_id, _ = world.claim("alice", f"7CDFA10001{i:02X}")
        request_id, outcome = _race_put_and_node_message(world, node_id)
        # Whichever came second confirmed: never both left waiting.
        assert status(world, "alice", request_id) == "confirmed"
        assert outcome in ("confirmed", "pending")
        assert world.owner(node_id) == "alice"


# --- GET user/nodes ---------------------------------------------------------------------------


def map_many(w: World, user: str, n: int) -> list[str]:
    ids = []
    for i in range(n):
        node_id, key = w.claim(user, f"7CDFA1{user[:1].upper()}{i:05X}")
        request_id, challenge = initiate(w, user)
        verify(w, user, request_id, node_id, ecdsa(key, challenge.encode()))
        ids.append(node_id)
    return sorted(ids)


def test_user_nodes_pages(world: World) -> None:
    ids = map_many(world, "alice", 12)
    map_many(world, "bob", 2)
    token = world.tokens["alice"]
    first = world.api.user_nodes({}, token)
    assert first == {"nodes": ids[:10], "total": 12, "next_id": ids[10]}
    second = world.api.user_nodes({"start_id": ids[10]}, token)
    assert second == {"nodes": ids[10:], "total": 12}
    small = world.api.user_nodes({"num_records": "5", "start_id": ids[3]}, token)
    assert small == {"nodes": ids[3:8], "total": 12, "next_id": ids[8]}
    for bad in ("0", "101", "x", "-1"):
        assert refused(world.api.user_nodes, {"num_records": bad}, token) == (
            400,
            "num_records must be 1 to 100",
        )


def test_user_nodes_details(world: World) -> None:
    (node_id,) = map_many(world, "alice", 1)
    reply = world.api.user_nodes({"node_details": "true"}, world.tokens["alice"])
    (entry,) = reply["node_details"]
    assert entry["id"] == node_id and entry["role"] == "primary" and entry["primary"] is True
    assert entry["mapping_timestamp"] == int(world.clock.now)
    assert entry["status"] == {"connectivity": {"connected": False, "timestamp": 0}}
    one = world.api.user_nodes({"node_details": "true", "node_id": node_id}, world.tokens["alice"])
    assert one["node_details"] == [entry]
    assert refused(world.api.user_nodes, {"node_id": node_id}, world.tokens["bob"]) == (
        404,
        f"node {node_id} is not mapped to this user",
    )


def test_tags_and_metadata_are_kept(world: World) -> None:
    node_id, _ = world.claim("alice", "7CDFA100001C")
    put(world, "alice", node_id, "k", tags=["room:kitchen"], metadata={"floor": 1})
    node_says(world, node_id, user_id="alice", secret_key="k", reset=True)
    entry = world.api.user_nodes({"node_details": "true"}, world.tokens["alice"])["node_details"][
        0
    ]
    assert (entry["tags"], entry["metadata"]) == (["room:kitchen"], {"floor": 1})


def test_mapping_tables_survive_a_reopen(tmp_path: Path) -> None:
    # A state directory made before the mapping tables existed gains them when opened.
    store = Store.open(tmp_path)
    with store.transaction() as db:
        for table in ("mapping_challenges", "mapping_requests", "node_reports", "user_nodes"):
            db.execute(f"DROP TABLE {table}")
    store.close()
    reopened = Store.open(tmp_path)
    assert reopened.user_nodes("anyone") == ([], 0, None)
    reopened.close()
