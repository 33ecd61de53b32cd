"""rmprov.session (security 0 and 1, device side) against esp-rainmaker-cli's own client
classes, Security0 and Security1 (rmaker_tools/common/security), on MicroPython (64 KB heap)
and CPython: handshakes with right and wrong proofs of possession, then encrypted records in
both directions on one keystream. The device's cryptolib is the ECB-only stand-in throughout.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from rmbench.micropython import Interpreter

from .support import Peer, device_peer

SCRIPT = """
install_ecb_only()
from rmprov import session
S = [None]
def new(sec, pop=""):
    MODES[:] = []
    S[0] = session.new(sec, pop)
def handle(data):
    return S[0].handle(data)
def encrypt(data):
    return S[0].encrypt(data)
def decrypt(data):
    return S[0].decrypt(data)
def state():
    return {"established": S[0].established, "modes": MODES}
serve({"new": new, "handle": handle, "encrypt": encrypt, "decrypt": decrypt, "state": state})
"""

WRONG_POP = {"error": "SecurityError", "message": "sec1: client proof does not match (wrong pop?)"}
NO_SESSION = {"error": "SecurityError", "message": "sec1: no session established"}


@pytest.fixture(scope="module")
def device(
    interp: Interpreter, prov_lib: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Peer]:
    peer = device_peer(interp, SCRIPT, prov_lib, tmp_path_factory.mktemp("session"))
    try:
        yield peer
    finally:
        peer.close()


def is_error(answer: Any) -> bool:
    return isinstance(answer, dict) and "error" in answer


def handshake(client: Peer, device: Peer) -> Any:
    """Run the client's session state machine against the device until it is done or one side
    refuses: None when established, else the refusing side's error."""
    response = None
    while True:
        request = client.call("session", response=response)
        if request is None:
            return None
        if is_error(request):
            return {"client": request}
        response = device.call("handle", data=request)
        if is_error(response):
            return {"device": response}


def exchange(client: Peer, device: Peer, rng: random.Random, count: int) -> None:
    """count records in random directions and lengths; each side decrypts what the other sent."""
    for _ in range(count):
        data = rng.randbytes(rng.choice([0, 1, 15, 16, 17, 64, rng.randrange(600)]))
        if rng.random() < 0.5:
            sent = client.call("encrypt", data=data)
            assert len(sent) == len(data)
            assert sent != data or len(data) < 2
            assert device.call("decrypt", data=sent) == data
        else:
            sent = device.call("encrypt", data=data)
            assert len(sent) == len(data)
            assert client.call("decrypt", data=sent) == data


@pytest.mark.parametrize("pop", ["abcd1234", "", "a much longer proof of possession, 42 bytes"])
def test_handshake_and_records_with_the_clients_security1(
    device: Peer, client: Peer, pop: str
) -> None:
    device.call("new", sec=1, pop=pop)
    client.call("security", sec=1, pop=pop)
    assert handshake(client, device) is None
    assert device.call("state") == {"established": True, "modes": [1]}  # one CTR, on ECB
    exchange(client, device, random.Random(pop), 40)


@pytest.mark.parametrize(
    ("device_pop", "client_pop"),
    [("abcd1234", "abcd1235"), ("abcd1234", ""), ("", "abcd1234"), ("abcd1234", "ABCD1234")],
)
def test_wrong_pop_is_refused_and_the_device_stays_provisionable(
    device: Peer, client: Peer, device_pop: str, client_pop: str
) -> None:
    device.call("new", sec=1, pop=device_pop)
    client.call("security", sec=1, pop=client_pop)
    assert handshake(client, device) == {"device": WRONG_POP}
    assert device.call("state")["established"] is False
    assert device.call("encrypt", data=b"wifi") == NO_SESSION
    assert device.call("decrypt", data=b"wifi") == NO_SESSION
    # The same session object accepts a new handshake with the right pop.
    client.call("security", sec=1, pop=device_pop)
    assert handshake(client, device) is None
    exchange(client, device, random.Random(1), 6)


def serialize(client: Peer, msg: dict[str, Any]) -> bytes:
    data: bytes = client.call("serialize", type="SessionData", msg=msg)
    return data


def refused(message: str, kind: str = "SecurityError") -> dict[str, str]:
    return {"error": kind, "message": message}


@pytest.fixture
def cases(client: Peer) -> list[tuple[bytes, dict[str, str]]]:
    """Session requests a device must refuse, with its answer; built by protobuf."""

    def sec1(payload: dict[str, Any], ver: int = 1) -> bytes:
        return serialize(client, {"sec_ver": ver, "sec1": payload})

    low_order = {"msg": 0, "sc0": {"client_pubkey": {"$hex": "00" * 32}}}
    short_key = {"msg": 0, "sc0": {"client_pubkey": {"$hex": "09" * 31}}}
    return [
        (
            sec1({"msg": 2, "sc1": {"client_verify_data": {"$hex": "00" * 32}}}),
            refused("sec1: command 1 before command 0"),
        ),
        (sec1(low_order), refused("x25519: peer key of low order (shared secret all zeros)")),
        (sec1(short_key), refused("sec1: client key of 31 bytes, wanted 32")),
        (sec1({"msg": 0}), refused("sec1: message type 0 without its payload")),
        (
            sec1({"msg": 0, "sc1": {"client_verify_data": {"$hex": "00" * 32}}}),
            refused("sec1: message type 0 without its payload"),
        ),
        (sec1({"msg": 7, "sc0": {}}), refused("sec1: message type 7 without its payload")),
        (sec1(low_order, ver=0), refused("sec1: wanted a security 1 session message")),
        (serialize(client, {"sec_ver": 1}), refused("sec1: wanted a security 1 session message")),
        (
            serialize(client, {"sec_ver": 2, "sec2": {"msg": 0, "sc0": {}}}),
            refused("sec1: wanted a security 1 session message"),
        ),
        (b"\x10", refused("pb: truncated varint at offset 1", "ProtoError")),
        (b"\xff" * 40, refused("pb: varint longer than 10 bytes at offset 10", "ProtoError")),
    ]


def test_bad_session_requests_are_refused_and_a_new_handshake_works(
    device: Peer, client: Peer, cases: list[tuple[bytes, dict[str, str]]]
) -> None:
    device.call("new", sec=1, pop="pop")
    for request, answer in cases:
        assert device.call("handle", data=request) == answer, request.hex()
        assert device.call("state")["established"] is False
        client.call("security", sec=1, pop="pop")
        assert handshake(client, device) is None  # still provisionable
        # A bad request ends the established session too.
        assert device.call("handle", data=request) == answer
        assert device.call("encrypt", data=b"x") == NO_SESSION


def test_interrupted_handshake_then_a_new_client(device: Peer, client: Peer) -> None:
    # A client that sends command 0 and disappears; the next client starts over and wins.
    device.call("new", sec=1, pop="pop")
    client.call("security", sec=1, pop="pop")
    first = client.call("session", response=None)
    assert not is_error(device.call("handle", data=first))
    client.call("security", sec=1, pop="pop")
    assert handshake(client, device) is None
    exchange(client, device, random.Random(2), 4)
    # And after an established session, a command 0 starts a fresh one.
    client.call("security", sec=1, pop="pop")
    assert handshake(client, device) is None
    exchange(client, device, random.Random(3), 4)


def test_security0_with_the_clients_security0(device: Peer, client: Peer) -> None:
    device.call("new", sec=0)
    client.call("security", sec=0, pop="")
    assert handshake(client, device) is None
    assert device.call("state")["established"] is True
    for data in (b"", b"plain", bytes(300)):
        assert device.call("encrypt", data=data) == data
        assert client.call("encrypt", data=data) == data
    refusal = refused("sec0: wanted a security 0 session message")
    assert device.call("handle", data=serialize(client, {"sec_ver": 1, "sec1": {}})) == refusal


def test_session_keys_come_from_os_urandom(
    interp: Interpreter, prov_lib: Path, client: Peer, tmp_path: Path
) -> None:
    # A stand-in os module hands out known bytes: the device's X25519 key is the first 32 and
    # device_random the next 16, as the reply shows (public key checked with cryptography).
    script = (
        """
class FakeOS:
    def __init__(self):
        self.n = 0
    def urandom(self, n):
        out = bytes((self.n + i) & 255 for i in range(n))
        self.n += n
        return out
sys.modules["os"] = FakeOS()
"""
        + SCRIPT
    )
    peer = device_peer(interp, script, prov_lib, tmp_path)
    try:
        peer.call("new", sec=1, pop="")
        client_pub = raw_public(X25519PrivateKey.generate())
        request = {"sec_ver": 1, "sec1": {"msg": 0, "sc0": {"client_pubkey": client_pub}}}
        reply = peer.call("handle", data=serialize(client, request))
    finally:
        peer.close()
    public = raw_public(X25519PrivateKey.from_private_bytes(bytes(range(32))))
    resp0 = {"status": 0, "device_pubkey": public, "device_random": bytes(range(32, 48))}
    parsed = client.call("parse", type="SessionData", data=reply)
    assert parsed == {"msg": {"sec_ver": 1, "sec1": {"msg": 1, "sr0": resp0}}}


def raw_public(key: X25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
