"""rmclaim.p256blind (challenge-response signing) on MicroPython and CPython, against RFC 6979's
vectors and `cryptography`'s deterministic ECDSA; its blinding checked by watching what the
comb and the inversions are given."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed, decode_dss_signature
from rmbench import codegen_p256
from rmbench.micropython import Interpreter

VECTORS = Path(__file__).parents[1] / "vectors"
RunJSON = Callable[..., list[Any]]
N = codegen_p256.N

SIGN = """
import sys, json
from rmclaim import p256blind
for line in sys.stdin:
    v = json.loads(line)
    d = int(v["d"], 16)
    r, s = p256blind.sign(d, bytes.fromhex(v["digest"]))
    der = p256blind.sign_der(d, bytes.fromhex(v["digest"]))
    print(json.dumps(["%x" % r, "%x" % s, der.hex()]))
"""


def rfc6979_k(d: int, digest: bytes) -> int:
    """The first RFC 6979 nonce for P-256/SHA-256, written from the RFC (section 3.2)."""
    x = d.to_bytes(32, "big")
    h1 = (int.from_bytes(digest, "big") % N).to_bytes(32, "big")
    v = b"\x01" * 32
    k = b"\x00" * 32
    k = hmac.new(k, v + b"\x00" + x + h1, hashlib.sha256).digest()
    v = hmac.new(k, v, hashlib.sha256).digest()
    k = hmac.new(k, v + b"\x01" + x + h1, hashlib.sha256).digest()
    v = hmac.new(k, v, hashlib.sha256).digest()
    while True:
        v = hmac.new(k, v, hashlib.sha256).digest()
        t = int.from_bytes(v, "big")
        if 0 < t < N:
            return t
        k = hmac.new(k, v + b"\x00", hashlib.sha256).digest()
        v = hmac.new(k, v, hashlib.sha256).digest()


def test_rfc6979_vectors(interp: Interpreter, run_json: RunJSON) -> None:
    vectors = json.loads((VECTORS / "rfc6979_p256_sha256.json").read_text())
    d = vectors["private_key"]
    items = [
        {"d": d, "digest": hashlib.sha256(c["message"].encode()).hexdigest()}
        for c in vectors["cases"]
    ]
    got = run_json(interp, SIGN, items)
    for (r, s, _), case in zip(got, vectors["cases"], strict=True):
        assert (int(r, 16), int(s, 16)) == (int(case["r"], 16), int(case["s"], 16))


def test_signatures_are_cryptographys_deterministic_ones(
    interp: Interpreter, run_json: RunJSON
) -> None:
    keys = [1, 2, N - 1, (N - 1) // 2] + [secrets.randbelow(N - 1) + 1 for _ in range(36)]
    digests = [hashlib.sha256(secrets.token_bytes(i * 5)).digest() for i in range(len(keys))]
    items = [{"d": f"{d:x}", "digest": e.hex()} for d, e in zip(keys, digests, strict=True)]
    got = run_json(interp, SIGN, items)
    for (r, s, der), d, digest in zip(got, keys, digests, strict=True):
        key = ec.derive_private_key(d, ec.SECP256R1())
        algo = ec.ECDSA(Prehashed(hashes.SHA256()), deterministic_signing=True)
        want = key.sign(digest, algo)
        assert (int(r, 16), int(s, 16)) == decode_dss_signature(want)
        # sign_der: the same DER bytes (a leading 0 where the top bit is set, none else).
        assert bytes.fromhex(der) == want
        key.public_key().verify(bytes.fromhex(der), digest, algo)


# Every scalar the comb multiplies G by, and every value inverted, for two signatures of the
# same digest, with p256's internals wrapped.
WATCH = """
import sys, json
from rmclaim import p256, p256blind
SEEN = {"mul": [], "inv": []}
mul_g, inv = p256._mul_g, p256._inv
def watch_mul(k):
    SEEN["mul"].append("%x" % k)
    return mul_g(k)
def watch_inv(a, m):
    SEEN["inv"].append("%x" % (a % m))
    return inv(a, m)
p256._mul_g = watch_mul
p256._inv = watch_inv
v = json.loads(sys.stdin.readline())
d = int(v["d"], 16)
digest = bytes.fromhex(v["digest"])
out = []
for _ in range(2):
    SEEN["mul"], SEEN["inv"] = [], []
    r, s = p256blind.sign(d, digest)
    out.append({"sig": ["%x" % r, "%x" % s], "mul": SEEN["mul"], "inv": SEEN["inv"]})
print(json.dumps(out))
"""


def test_the_comb_and_inversions_never_see_the_nonce_or_the_key(
    interp: Interpreter, run_json: RunJSON
) -> None:
    d = secrets.randbelow(N - 1) + 1
    digest = hashlib.sha256(b"challenge").digest()
    k = rfc6979_k(d, digest)
    (runs,) = run_json(interp, WATCH, [{"d": f"{d:x}", "digest": digest.hex()}])
    first, second = runs
    assert first["sig"] == second["sig"]  # deterministic output ...
    for run in runs:
        muls = [int(v, 16) for v in run["mul"]]
        assert len(muls) == 2 and sum(muls) % N == k  # ... k*G as two shares of k
        assert k not in muls and d not in muls
        inverted = {int(v, 16) for v in run["inv"]}
        assert k not in inverted and d not in inverted
    assert set(first["mul"]).isdisjoint(second["mul"])  # ... from fresh shares every time
    assert set(first["inv"]).isdisjoint(second["inv"])
