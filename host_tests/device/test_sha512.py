"""rmclaim.sha512 on both of its paths (pure Python, and hashlib's sha512), on MicroPython and
CPython, against CPython's hashlib and hmac around every block boundary.

MicroPython's hashlib has no sha512 (like stock ESP32 firmware), so there the pure-Python path
runs by default. For the hashlib path on MicroPython the script installs a `hashlib` stand-in
whose sha512 objects only look their input up in digests that CPython's hashlib computed on
the host (keyed by the input's SHA-256): no SHA-512 code runs on the device, so the check
covers our dispatch and HMAC construction against CPython's without trusting our own SHA-512,
and an input that differs from what RFC 2104 prescribes fails the lookup. On CPython the
forced path is the other way round: a `hashlib` without sha512 makes the fallback run.
"""

from __future__ import annotations

import hashlib
import hmac
import random
from collections.abc import Callable
from typing import Any

import pytest
from rmbench.micropython import Interpreter

RunJSON = Callable[..., list[Any]]  # the run_json fixture (conftest.py)

LENGTHS = [0, 1, 111, 112, 127, 128, 129, 255, 1000]

PREAMBLE = {
    # MicroPython forced: sha512 answered from CPython's digests, nothing computed here.
    "lookup": """
import hashlib
table = {}
calls = [0]
class Sha512:
    def __init__(self, data=b""):
        self.data = bytes(data)
    def update(self, data):
        self.data += bytes(data)
    def digest(self):
        calls[0] += 1
        return bytes.fromhex(table.pop(hashlib.sha256(self.data).digest().hex()))
class Shim:
    pass
shim = Shim()
shim.sha256 = hashlib.sha256
shim.sha512 = Sha512
sys.modules["hashlib"] = shim
""",
    # CPython forced: a hashlib without sha512.
    "without": """
import hashlib
class Shim:
    pass
shim = Shim()
shim.sha256 = hashlib.sha256
sys.modules["hashlib"] = shim
table = {}
calls = [0]
""",
    "native": """
table = {}
calls = [0]
""",
}

SCRIPT = """
from rmclaim import sha512 as S
for line in sys.stdin:
    case = json.loads(line)
    table.update(case.get("digests", {}))
    key = bytes.fromhex(case["key"])
    msg = bytes.fromhex(case["msg"])
    if case["op"] == "hmac":
        out = S.hmac_sha512(key, msg)
    else:
        out = S.sha512(msg)
    print(json.dumps([out.hex(), S._builtin is not None, calls[0]]))
"""


def hmac_inputs(key: bytes, msg: bytes) -> list[bytes]:
    """Every input RFC 2104's HMAC-SHA512 hashes for (key, msg), computed on the host."""
    inputs = []
    if len(key) > 128:
        inputs.append(key)
        key = hashlib.sha512(key).digest()
    block = key.ljust(128, b"\0")
    inner = bytes(b ^ 0x36 for b in block) + msg
    outer = bytes(b ^ 0x5C for b in block) + hashlib.sha512(inner).digest()
    return [*inputs, inner, outer]


def cases(with_digests: bool) -> tuple[list[dict[str, Any]], list[str]]:
    rng = random.Random(512)
    items: list[dict[str, Any]] = []
    expected: list[str] = []
    for length in [*LENGTHS, 113, 239, 240, 256]:
        msg = rng.randbytes(length)
        item: dict[str, Any] = {"op": "hash", "key": "", "msg": msg.hex()}
        if with_digests:
            item["digests"] = {hashlib.sha256(msg).hexdigest(): hashlib.sha512(msg).hexdigest()}
        items.append(item)
        expected.append(hashlib.sha512(msg).hexdigest())
    for key_length in LENGTHS:
        for msg_length in LENGTHS:
            key = rng.randbytes(key_length)
            msg = rng.randbytes(msg_length)
            item = {"op": "hmac", "key": key.hex(), "msg": msg.hex()}
            if with_digests:
                item["digests"] = {
                    hashlib.sha256(data).hexdigest(): hashlib.sha512(data).hexdigest()
                    for data in hmac_inputs(key, msg)
                }
            items.append(item)
            expected.append(hmac.new(key, msg, "sha512").hexdigest())
    return items, expected


@pytest.mark.parametrize("path", ["native", "forced"])
def test_sha512_and_hmac_match_cpython(interp: Interpreter, run_json: RunJSON, path: str) -> None:
    on_mpy = interp.name == "micropython"
    preamble = "native" if path == "native" else "lookup" if on_mpy else "without"
    items, expected = cases(preamble == "lookup")
    results = run_json(interp, "import sys, json\n" + PREAMBLE[preamble] + SCRIPT, items)
    assert [digest for digest, _, _ in results] == expected
    uses_hashlib = {r[1] for r in results}
    # MicroPython has no hashlib.sha512, CPython has: "native" means fallback on one only.
    assert uses_hashlib == {(path == "native") != on_mpy}
    if preamble == "lookup":
        # Every hash went to the stand-in: 1 per plain hash, 2 or 3 per HMAC.
        want = 13 + sum(2 + (k > 128) for k in LENGTHS for _ in LENGTHS)
        assert results[-1][2] == want
