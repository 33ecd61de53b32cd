"""rmclaim.p256 on MicroPython (64 KB heap) and CPython, checked against RFC 6979, Wycheproof
and `cryptography`; the comb table file against `cryptography` and its generator."""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    Prehashed,
    decode_dss_signature,
    encode_dss_signature,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rmbench import codegen_p256
from rmbench.micropython import Interpreter

VECTORS = Path(__file__).parents[1] / "vectors"
RunJSON = Callable[..., list[Any]]  # the run_json fixture (conftest.py)
N = codegen_p256.N
P = codegen_p256.P


def public_numbers(d: int) -> tuple[int, int]:
    numbers = ec.derive_private_key(d, ec.SECP256R1()).public_key().public_numbers()
    return numbers.x, numbers.y


def crypto_verify(x: int, y: int, digest: bytes, r: int, s: int) -> bool:
    key = ec.EllipticCurvePublicNumbers(x, y, ec.SECP256R1()).public_key()
    try:
        key.verify(encode_dss_signature(r, s), digest, ec.ECDSA(Prehashed(hashes.SHA256())))
    except InvalidSignature:
        return False
    return True


RFC6979_SCRIPT = """
import sys, json, hashlib
from rmclaim import p256
v = json.loads(sys.stdin.readline())
d = int(v["private_key"], 16)
x, y = p256.public_key(d)
sigs = []
for case in v["cases"]:
    digest = hashlib.sha256(case["message"].encode()).digest()
    sigs.append(["%x" % n for n in p256.sign(d, digest)])
print(json.dumps({"x": "%x" % x, "y": "%x" % y, "sigs": sigs, "stats": p256.STATS,
                  "file": p256.__file__, "table": p256._TABLE}))
"""


def check_rfc6979(result: dict[str, Any], vectors: dict[str, Any]) -> None:
    assert int(result["x"], 16) == int(vectors["public_x"], 16)
    assert int(result["y"], 16) == int(vectors["public_y"], 16)
    for (r, s), case in zip(result["sigs"], vectors["cases"], strict=True):
        assert (int(r, 16), int(s, 16)) == (int(case["r"], 16), int(case["s"], 16))


def test_rfc6979_vectors(interp: Interpreter, run_json: RunJSON) -> None:
    vectors = json.loads((VECTORS / "rfc6979_p256_sha256.json").read_text())
    (result,) = run_json(interp, RFC6979_SCRIPT, [vectors])
    check_rfc6979(result, vectors)
    if interp.name == "micropython":
        # As deployed: .mpy modules with the table as a plain file beside them, used for all
        # three k*G (the key, two nonces): 15 comb doublings each, not ~255 as without it.
        assert result["file"].endswith("/rmclaim/p256.mpy")
        assert result["table"] == result["file"][:-8] + "p256g.bin"
        assert result["stats"][1] == 3 * 15


RANDOM_SCRIPT = """
import sys, json
from rmclaim import p256
for line in sys.stdin:
    case = json.loads(line)
    d = int(case["d"], 16)
    digest = bytes.fromhex(case["digest"])
    x, y = p256.public_key(d)
    r, s = p256.sign(d, digest)
    checks = []
    for pub, dg, sig in case["verify"]:
        pub = (int(pub[0], 16), int(pub[1], 16))
        checks.append(p256.verify(pub, bytes.fromhex(dg), (int(sig[0], 16), int(sig[1], 16))))
    print(json.dumps(["%x" % x, "%x" % y, "%x" % r, "%x" % s, checks]))
"""


def random_cases(keys: list[int], messages: list[bytes]) -> tuple[list[Any], list[list[bool]]]:
    """Device inputs for keys/messages, and the verify results `cryptography` expects."""
    cases: list[Any] = []
    expected: list[list[bool]] = []
    for d, message in zip(keys, messages, strict=True):
        digest = hashlib.sha256(message).digest()
        key = ec.derive_private_key(d, ec.SECP256R1())
        r, s = decode_dss_signature(key.sign(digest, ec.ECDSA(Prehashed(hashes.SHA256()))))
        x, y = public_numbers(d)
        other = hashlib.sha256(message + b"!").digest()
        ox, oy = public_numbers(d % (N - 1) + 1)
        checks = [
            ((x, y), digest, (r, s), True),
            ((x, y), other, (r, s), False),
            ((x, y), digest, (r ^ 1, s), crypto_verify(x, y, digest, r ^ 1, s)),
            ((x, y), digest, (r, (s + 1) % N or 1), False),
            ((ox, oy), digest, (r, s), False),
            ((x, y), digest, (r, N - s), True),  # ECDSA accepts both s and n - s
        ]
        cases.append(
            {
                "d": f"{d:x}",
                "digest": digest.hex(),
                "verify": [
                    [[f"{px:x}", f"{py:x}"], dg.hex(), [f"{sr:x}", f"{ss:x}"]]
                    for (px, py), dg, (sr, ss), _ in checks
                ],
            }
        )
        expected.append([want for *_, want in checks])
    return cases, expected


def check_random(result: Any, keys: list[int], messages: list[bytes], expected: Any) -> None:
    for (x, y, r, s, checks), d, message, want in zip(
        result, keys, messages, expected, strict=True
    ):
        digest = hashlib.sha256(message).digest()
        assert (int(x, 16), int(y, 16)) == public_numbers(d)
        key = ec.derive_private_key(d, ec.SECP256R1())
        # RFC 6979 nonces: the very signature cryptography makes in deterministic mode.
        ref = key.sign(digest, ec.ECDSA(Prehashed(hashes.SHA256()), deterministic_signing=True))
        assert (int(r, 16), int(s, 16)) == decode_dss_signature(ref)
        assert crypto_verify(*public_numbers(d), digest, int(r, 16), int(s, 16))
        assert checks == want


EDGE_KEYS = [1, 2, 3, N - 1, N - 2, (N - 1) // 2, 1 << 255, (1 << 224) - 1, 0xFFFFFFFF, 1 << 32]


def test_keys_and_signatures_match_cryptography(interp: Interpreter, run_json: RunJSON) -> None:
    keys = EDGE_KEYS + [secrets.randbelow(N - 1) + 1 for _ in range(20)]
    messages = [secrets.token_bytes(i % 7 * 13) for i in range(len(keys))]
    cases, expected = random_cases(keys, messages)
    check_random(run_json(interp, RANDOM_SCRIPT, cases), keys, messages, expected)


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(st.integers(min_value=1, max_value=N - 1), st.binary(max_size=64)),
        min_size=8,
        max_size=8,
    )
)
def test_property_sign_verify_batched(
    mpy: Interpreter, run_json: RunJSON, pairs: list[tuple[int, bytes]]
) -> None:
    keys = [d for d, _ in pairs]
    messages = [m for _, m in pairs]
    cases, expected = random_cases(keys, messages)
    check_random(run_json(mpy, RANDOM_SCRIPT, cases), keys, messages, expected)


BAD_INPUT_SCRIPT = """
import sys, json
from rmclaim import p256
G = p256.public_key(1)
dg = b"\\x11" * 32
r, s = p256.sign(5, dg)
Q = p256.public_key(5)
N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
P = 0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF
cases = [
    ("good", Q, dg, (r, s)),
    ("r=0", Q, dg, (0, s)), ("s=0", Q, dg, (r, 0)), ("r=n", Q, dg, (r + N, s)),
    ("s=n", Q, dg, (r, N)), ("r<0", Q, dg, (r - N, s)), ("s+n", Q, dg, (r, s + N)),
    ("off curve", (Q[0], Q[1] ^ 1), dg, (r, s)), ("origin", (0, 0), dg, (r, s)),
    ("x=p", (Q[0] + P, Q[1]), dg, (r, s)), ("infinity", None, dg, (r, s)),
    ("short pub", (Q[0],), dg, (r, s)), ("str pub", ("1", "2"), dg, (r, s)),
    ("float", (Q[0], float(1)), dg, (r, s)), ("str sig", Q, dg, ("1", "2")),
    ("none sig", Q, dg, None), ("none digest", Q, None, (r, s)), ("int digest", Q, 5, (r, s)),
    ("G as key", G, dg, (r, s)),
]
out = {}
for name, pub, digest, sig in cases:
    try:
        out[name] = p256.verify(pub, digest, sig)
    except Exception as e:
        out[name] = "raised %s" % type(e).__name__
errors = {}
for name, d, digest in (("d=0", 0, dg), ("d=n", N, dg), ("d<0", -1, dg), ("short", 1, b"x")):
    try:
        p256.sign(d, digest)
        errors[name] = "no error"
    except ValueError:
        errors[name] = "ValueError"
for name, d in (("pub d=0", 0), ("pub d=n", N), ("pub str", "1")):
    try:
        p256.public_key(d)
        errors[name] = "no error"
    except ValueError:
        errors[name] = "ValueError"
print(json.dumps([out, errors]))
"""


def test_verify_is_false_for_bad_input_and_never_raises(
    interp: Interpreter, run_json: RunJSON
) -> None:
    ((out, errors),) = run_json(interp, BAD_INPUT_SCRIPT, [])
    assert out.pop("good") is True
    assert out == dict.fromkeys(out, False)
    assert len(out) == 18
    assert errors == dict.fromkeys(errors, "ValueError") and len(errors) == 7


WYCHEPROOF_SCRIPT = """
import sys, json, hashlib
from rmclaim import p256
from rmclaim.asn1 import decode_ecdsa_signature
for line in sys.stdin:
    group = json.loads(line)
    out = {}
    point = bytes.fromhex(group["uncompressed"])
    pub = (int.from_bytes(point[1:33], "big"), int.from_bytes(point[33:], "big"))
    for t in group["tests"]:
        digest = hashlib.sha256(bytes.fromhex(t["msg"])).digest()
        try:
            sig = decode_ecdsa_signature(bytes.fromhex(t["sig"]))
        except ValueError:
            out[t["tcId"]] = "invalid"
            continue
        out[t["tcId"]] = "valid" if p256.verify(pub, digest, sig) else "invalid"
    print(json.dumps(out))
"""


def test_wycheproof_subset(interp: Interpreter, run_json: RunJSON) -> None:
    vectors = json.loads((VECTORS / "wycheproof_ecdsa_p256_sha256_subset.json").read_text())
    expected = {str(t["tcId"]): t["result"] for g in vectors["testGroups"] for t in g["tests"]}
    assert len(expected) == 25
    # The subset was copied by hand: cryptography's verdicts confirm each vector as stored.
    for group in vectors["testGroups"]:
        point = bytes.fromhex(group["uncompressed"])
        key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
        for t in group["tests"]:
            try:
                key.verify(
                    bytes.fromhex(t["sig"]), bytes.fromhex(t["msg"]), ec.ECDSA(hashes.SHA256())
                )
                verdict = "valid"
            except InvalidSignature:
                verdict = "invalid"
            assert verdict == t["result"], t["tcId"]
    got: dict[str, str] = {}
    for part in run_json(interp, WYCHEPROOF_SCRIPT, vectors["testGroups"]):
        got.update(part)
    assert got == expected


STRICT_DER_SCRIPT = """
import sys, json, hashlib
from rmclaim import p256
from rmclaim.asn1 import decode_ecdsa_signature
for line in sys.stdin:
    group = json.loads(line)
    out = {}
    point = bytes.fromhex(group["uncompressed"])
    pub = (int.from_bytes(point[1:33], "big"), int.from_bytes(point[33:], "big"))
    for t in group["tests"]:
        digest = hashlib.sha256(bytes.fromhex(t["msg"])).digest()
        # p256.verify on the integers cryptography decoded, then our own DER decoder.
        direct = p256.verify(pub, digest, (int(t["r"], 16), int(t["s"], 16)))
        try:
            r, s = decode_ecdsa_signature(bytes.fromhex(t["sig"]))
            decoded = ["%x" % r, "%x" % s]
        except ValueError:
            decoded = None
        out[t["tcId"]] = [direct, decoded]
    print(json.dumps(out))
"""


def test_wycheproof_strict_der_signatures(interp: Interpreter, run_json: RunJSON) -> None:
    # Every Wycheproof vector whose signature is well-formed DER, so that a verdict of
    # "invalid" is p256.verify's to give, not the DER decoder's: modified r or s, r or s = 0,
    # n, n - 1, p, r + n, points at infinity, x = 0, ...
    vectors = json.loads((VECTORS / "wycheproof_ecdsa_p256_sha256_strict_der.json").read_text())
    groups, expected, in_range_invalid = [], {}, 0
    for group in vectors["testGroups"]:
        point = bytes.fromhex(group["uncompressed"])
        key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
        tests = []
        for t in group["tests"]:
            sig = bytes.fromhex(t["sig"])
            # As stored: strict DER, and the verdict cryptography gives.
            r, s = decode_dss_signature(sig)
            assert encode_dss_signature(r, s) == sig, t["tcId"]
            try:
                key.verify(sig, bytes.fromhex(t["msg"]), ec.ECDSA(hashes.SHA256()))
                verdict = "valid"
            except InvalidSignature:
                verdict = "invalid"
            assert verdict == t["result"], t["tcId"]
            expected[str(t["tcId"])] = (t["result"] == "valid", r, s)
            in_range_invalid += verdict == "invalid" and 0 < r < N and 0 < s < N
            tests.append({**t, "r": format(r, "x"), "s": format(s, "x")})
        groups.append({"uncompressed": group["uncompressed"], "tests": tests})
    assert (len(expected), sum(not v for v, _, _ in expected.values())) == (265, 91)
    # So many pass the range checks: a verify that returned True after them would fail here.
    assert in_range_invalid == 23
    got: dict[str, list[Any]] = {}
    # 2M: tcId 106 and 148 carry a 4129-byte r or s, a 25 KB line of JSON to parse (read by
    # growing a buffer: at 1M a 32-bit heap can be too fragmented for its last doubling).
    for part in run_json(interp, STRICT_DER_SCRIPT, groups, heap="2M"):
        got.update(part)
    assert got.keys() == expected.keys()
    for tc_id, (valid, r, s) in expected.items():
        direct, decoded = got[tc_id]
        assert direct is valid, f"tcId {tc_id}: p256.verify gave {direct}"
        # Our decoder reads the same integers, or refuses an invalid signature outright.
        if decoded is not None or valid:
            assert decoded == [format(r, "x"), format(s, "x")], tc_id


def test_fallback_without_table_file(mpy: Interpreter, run_json: RunJSON) -> None:
    script = (
        RANDOM_SCRIPT.replace(
            "from rmclaim import p256", "from rmclaim import p256\np256._TABLE = '/nonexistent'"
        )
        + "print(json.dumps(p256.STATS))\n"
    )
    keys = [1, N - 1, secrets.randbelow(N - 1) + 1]
    messages = [b"a", b"b", b"c"]
    cases, expected = random_cases(keys, messages)
    *result, stats = run_json(mpy, script, cases)
    check_random(result, keys, messages, expected)
    assert stats[1] > 3 * 2 * 200  # every k*G took the doubling path (about 255 each)


GENERATE_SCRIPT = """
import sys, json
from rmclaim import p256
keys = [p256.generate_private_key() for _ in range(50)]
class FakeOS:
    # urandom returns n, then 0, then 2^256 - 1, then 7: only the last is in [1, n-1].
    def __init__(self):
        n = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
        self.values = [(7).to_bytes(32, "big"), b"\\xff" * 32, bytes(32), n.to_bytes(32, "big")]
    def urandom(self, n):
        assert n == 32
        return self.values.pop()
real = p256.os
p256.os = FakeOS()
picked = p256.generate_private_key()
p256.os = real
print(json.dumps(["%x" % d for d in keys] + [picked]))
"""


def test_generate_private_key(interp: Interpreter, run_json: RunJSON) -> None:
    (out,) = run_json(interp, GENERATE_SCRIPT, [])
    keys = [int(h, 16) for h in out[:-1]]
    assert all(0 < d < N for d in keys)
    assert len(set(keys)) == 50
    assert max(keys).bit_length() > 250  # uniform over [1, n-1], not small numbers
    # The rejection sampler skipped n, 0 and 2^256 - 1 (popped from the end) and took 7.
    assert out[-1] == 7


def test_committed_table_is_fresh_and_matches_cryptography() -> None:
    table = codegen_p256.TABLE_PATH.read_bytes()
    assert table == codegen_p256.build_table()
    assert len(table) == codegen_p256.TABLES * codegen_p256.ENTRIES * 64
    for g in range(codegen_p256.TABLES):
        for b in range(1, codegen_p256.ENTRIES + 1):
            offset = (codegen_p256.ENTRIES * g + b - 1) * 64
            x = int.from_bytes(table[offset : offset + 32], "big")
            y = int.from_bytes(table[offset + 32 : offset + 64], "big")
            assert (x, y) == public_numbers(codegen_p256.entry_scalar(g, b))


def test_codegen_check_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "p256g.bin"
    assert codegen_p256.main(["--output", str(target)]) == 0
    assert codegen_p256.main(["--check", "--output", str(target)]) == 0
    target.write_bytes(target.read_bytes()[:-1] + b"\x00")
    assert codegen_p256.main(["--check", "--output", str(target)]) == 1
    assert "differs from a fresh computation" in capsys.readouterr().out
