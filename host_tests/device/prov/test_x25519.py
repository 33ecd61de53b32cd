"""rmprov.x25519 on MicroPython (64 KB heap) and CPython, against RFC 7748's vectors and
`cryptography`'s X25519 on random inputs; low-order keys refused; no branch on the scalar."""

from __future__ import annotations

import json
import random
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from rmbench import LIB_DIR
from rmbench.micropython import HOSTSHIMS_DIR, Interpreter

from .support import run_json

VECTORS = json.loads((Path(__file__).parents[2] / "vectors" / "rfc7748_x25519.json").read_text())
P = 2**255 - 19
RAW = serialization.Encoding.Raw, serialization.PublicFormat.Raw

# u-coordinates (as 32 little-endian bytes) whose X25519 result is all zeros for every
# scalar: 0, 1, the two points of order 8, p - 1, and the non-canonical p and p + 1. The test
# checks each against `cryptography` rather than trusting this list.
LOW_ORDER = [
    "0000000000000000000000000000000000000000000000000000000000000000",
    "0100000000000000000000000000000000000000000000000000000000000000",
    "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
    "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
]

SCRIPT = """
from rmprov import x25519
def function(k, u):
    return x25519.x25519(k, u)
def iterate(k, n):
    u = k
    for _ in range(n):
        k, u = x25519.x25519(k, u), k
    return k
def public(k):
    return x25519.public_key(k)
def shared(k, peer):
    return x25519.shared_secret(k, peer)
ops = {"function": function, "iterate": iterate, "public": public, "shared": shared}
for line in sys.stdin:
    req = unhex(json.loads(line))
    try:
        answer(ops[req.pop("op")](**req))
    except Exception as e:
        answer(failure(e))
"""


def crypto_x25519(k: bytes, u: bytes) -> bytes | None:
    """cryptography's X25519 of (k, u); None where it refuses (an all-zero result)."""
    try:
        return X25519PrivateKey.from_private_bytes(k).exchange(
            X25519PublicKey.from_public_bytes(u)
        )
    except ValueError:
        return None


def crypto_public(k: bytes) -> bytes:
    return X25519PrivateKey.from_private_bytes(k).public_key().public_bytes(*RAW)


def test_rfc7748_vectors(interp: Interpreter, prov_lib: Path) -> None:
    items: list[dict[str, Any]] = [
        {"op": "function", "k": bytes.fromhex(v["scalar"]), "u": bytes.fromhex(v["u"])}
        for v in VECTORS["function"]
    ]
    start = bytes.fromhex(VECTORS["iterated"]["start"])
    rounds = sorted(VECTORS["iterated"]["after"], key=int)
    items += [{"op": "iterate", "k": start, "n": int(n)} for n in rounds]
    dh = {k: bytes.fromhex(v) for k, v in VECTORS["dh"].items()}
    items += [
        {"op": "public", "k": dh["alice_private"]},
        {"op": "public", "k": dh["bob_private"]},
        {"op": "shared", "k": dh["alice_private"], "peer": dh["bob_public"]},
        {"op": "shared", "k": dh["bob_private"], "peer": dh["alice_public"]},
    ]
    got = run_json(interp, SCRIPT, items, prov_lib)
    expected = [bytes.fromhex(v["output"]) for v in VECTORS["function"]]
    expected += [bytes.fromhex(VECTORS["iterated"]["after"][n]) for n in rounds]
    expected += [dh["alice_public"], dh["bob_public"], dh["shared"], dh["shared"]]
    assert got == expected


def random_u(rng: random.Random) -> bytes:
    """A u-coordinate: mostly uniform 256-bit strings (top bit set half the time, which
    X25519 ignores), sometimes a non-canonical value p..2^255-1, or 2^255 - 1."""
    choice = rng.random()
    if choice < 0.1:
        value = P + rng.randrange(2**255 - P)
    elif choice < 0.15:
        value = 2**255 - 1 + (rng.getrandbits(1) << 255)
    else:
        value = rng.getrandbits(256)
    return value.to_bytes(32, "little")


def test_random_inputs_match_cryptography(interp: Interpreter, prov_lib: Path) -> None:
    rng = random.Random(7748)
    count = 150 if interp.name == "micropython" else 60
    keys = [rng.randbytes(32) for _ in range(count)]
    us = [random_u(rng) for _ in range(count)]
    items: list[dict[str, Any]] = []
    expected: list[Any] = []
    for k, u in zip(keys, us, strict=True):
        want = crypto_x25519(k, u)
        assert want is not None  # random u: never a low-order point
        items += [{"op": "function", "k": k, "u": u}, {"op": "shared", "k": k, "peer": u}]
        expected += [want, want]
        items.append({"op": "public", "k": k})
        expected.append(crypto_public(k))
    assert run_json(interp, SCRIPT, items, prov_lib) == expected


@pytest.mark.parametrize("u_hex", LOW_ORDER)
def test_low_order_keys_give_zeros_and_are_refused(
    interp: Interpreter, prov_lib: Path, u_hex: str
) -> None:
    rng = random.Random(u_hex)
    u = bytes.fromhex(u_hex)
    top = bytearray(u)
    top[31] |= 0x80  # the same point with the ignored top bit set
    items: list[dict[str, Any]] = []
    for peer in (u, bytes(top)):
        k = rng.randbytes(32)
        assert crypto_x25519(k, peer) is None  # cryptography refuses it too
        items += [{"op": "function", "k": k, "u": peer}, {"op": "shared", "k": k, "peer": peer}]
    got = run_json(interp, SCRIPT, items, prov_lib)
    refused = {
        "error": "SecurityError",
        "message": "x25519: peer key of low order (shared secret all zeros)",
    }
    assert got == [bytes(32), refused, bytes(32), refused]


def test_bad_lengths_are_refused(interp: Interpreter, prov_lib: Path) -> None:
    items = [
        {"op": "shared", "k": bytes(32), "peer": bytes(31)},
        {"op": "shared", "k": bytes(32), "peer": bytes(33)},
        {"op": "function", "k": bytes(16), "u": bytes(32)},
        {"op": "public", "k": b""},
    ]
    assert run_json(interp, SCRIPT, items, prov_lib) == [
        {"error": "SecurityError", "message": "x25519: wanted a 32-byte public key, got 31 bytes"},
        {"error": "SecurityError", "message": "x25519: wanted a 32-byte public key, got 33 bytes"},
        {"error": "ValueError", "message": "x25519: wanted 32-byte scalar and u, got 16 and 32"},
        {"error": "ValueError", "message": "x25519: wanted 32-byte scalar and u, got 0 and 32"},
    ]


def test_private_keys_come_from_os_urandom(interp: Interpreter, prov_lib: Path) -> None:
    # generate_private_key is os.urandom(32): a stand-in os module shows the call.
    script = """
import os
calls = []
real = os.urandom
class FakeOS:
    def urandom(self, n):
        calls.append(n)
        return bytes(range(n))
sys.modules["os"] = FakeOS()
from rmprov import x25519
answer([x25519.generate_private_key(), calls])
"""
    assert run_json(interp, script, [], prov_lib) == [[bytes(range(32)), [32]]]


def line_trace(scalar: bytes, u: bytes) -> list[int]:
    """The line numbers of x25519.py that CPython executes for x25519(scalar, u), in order."""
    sys.path[:0] = [str(LIB_DIR), str(HOSTSHIMS_DIR)]
    try:
        from rmprov import x25519  # type: ignore[import-not-found]
    finally:
        del sys.path[:2]
    lines: list[int] = []
    target = x25519.__file__

    def tracer(frame: Any, event: str, arg: Any) -> Callable[..., Any] | None:
        if frame.f_code.co_filename == target and event == "line":
            lines.append(frame.f_lineno)
        return tracer

    sys.settrace(tracer)
    try:
        x25519.x25519(scalar, u)
    finally:
        sys.settrace(None)
    return lines


def test_same_lines_run_for_every_scalar() -> None:
    # The ladder's sequence of operations does not depend on the scalar (or on u): CPython's
    # line tracer sees the same lines in the same order for scalars of all ones, all zeros
    # (both clamped), random ones, and different u. This is a property of the code, so it is
    # checked on CPython, where tracing exists.
    rng = random.Random(25519)
    cases = [(b"\xff" * 32, bytes([9]) + bytes(31)), (bytes(32), rng.randbytes(32))]
    cases += [(rng.randbytes(32), rng.randbytes(32)) for _ in range(3)]
    cases.append((rng.randbytes(32), bytes(32)))  # u = 0: z = 0 at the end
    traces = [line_trace(k, u) for k, u in cases]
    assert len(traces[0]) > 255 * 20
    assert all(t == traces[0] for t in traces[1:])
