"""rmprov.aesctr against `cryptography`'s AES-CTR: random keys, counters, data and split points,
one keystream across calls; and proof that only cryptolib's ECB mode is ever asked for.

Stock ESP32 firmware's cryptolib has ECB and CBC but no CTR. Every run here but one goes
through a `cryptolib` stand-in (support.PRELUDE) that offers AES in mode 1 (ECB) only, with no
IV and no decrypt, and records each mode asked for: on MicroPython it wraps the built-in ECB,
on CPython `cryptography`'s. The remaining run uses MicroPython's built-in cryptolib as is.
"""

from __future__ import annotations

import itertools
import random
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from rmbench.micropython import Interpreter

from .support import run_json

SCRIPT = """
if ARGS_ECB_ONLY:
    install_ecb_only()
from rmprov.aesctr import CTR
for line in sys.stdin:
    case = unhex(json.loads(line))
    MODES[:] = []
    try:
        ctr = CTR(case["key"], case["counter"])
        out = [ctr.crypt(case["data"][a:b]) for a, b in case["splits"]]
        answer({"out": out, "modes": MODES})
    except Exception as e:
        answer(failure(e))
"""


def script(ecb_only: bool) -> str:
    return f"ARGS_ECB_ONLY = {ecb_only}\n" + SCRIPT


def splits(rng: random.Random, n: int) -> list[tuple[int, int]]:
    """[(a, b), ...] cutting range(n) into consecutive pieces (some empty), at random points."""
    cuts = sorted(rng.randrange(n + 1) for _ in range(rng.randrange(6)))
    points = [0, *cuts, n]
    return list(itertools.pairwise(points))


def crypto_ctr(key: bytes, counter: bytes, pieces: list[bytes]) -> list[bytes]:
    enc = Cipher(algorithms.AES(key), modes.CTR(counter)).encryptor()
    return [enc.update(p) for p in pieces]


def cases(seed: int, count: int) -> tuple[list[dict[str, Any]], list[list[bytes]]]:
    rng = random.Random(seed)
    items: list[dict[str, Any]] = []
    expected: list[list[bytes]] = []
    for i in range(count):
        key = rng.randbytes(32 if i % 4 else 16)
        counter = rng.randbytes(16)
        if i % 7 == 0:  # a counter about to wrap around 2^128
            counter = (2**128 - rng.randrange(1, 4)).to_bytes(16, "big")
        n = rng.choice([0, 1, 15, 16, 17, 32, 33, 127, 128, 129, 300, rng.randrange(2000)])
        data = rng.randbytes(n)
        cut = splits(rng, n)
        items.append({"key": key, "counter": counter, "data": data, "splits": cut})
        expected.append(crypto_ctr(key, counter, [data[a:b] for a, b in cut]))
    return items, expected


def test_matches_cryptography_through_an_ecb_only_cryptolib(
    interp: Interpreter, prov_lib: Path
) -> None:
    items, expected = cases(38, 120)
    got = run_json(interp, script(True), items, prov_lib)
    assert [g["out"] for g in got] == expected
    # The stand-in was used, and asked for ECB (mode 1) only, once per CTR object.
    assert [g["modes"] for g in got] == [[1]] * len(items)


def test_matches_cryptography_with_the_builtin_cryptolib(mpy: Interpreter, prov_lib: Path) -> None:
    items, expected = cases(39, 60)
    got = run_json(mpy, script(False), items, prov_lib)
    assert [g["out"] for g in got] == expected
    assert all(g["modes"] == [] for g in got)  # the real module: nothing recorded


def test_one_stream_for_both_directions(interp: Interpreter, prov_lib: Path) -> None:
    # Security 1's use: requests and replies of both sides are consecutive stretches of one
    # keystream, so decrypting stretch by stretch equals one long CTR encryption.
    rng = random.Random(1)
    key, counter = rng.randbytes(32), rng.randbytes(16)
    lengths = [32, 32, 5, 40, 0, 17, 300, 1]
    data = rng.randbytes(sum(lengths))
    points = [0]
    for n in lengths:
        points.append(points[-1] + n)
    item = {
        "key": key,
        "counter": counter,
        "data": data,
        "splits": list(itertools.pairwise(points)),
    }
    (got,) = run_json(interp, script(True), [item], prov_lib)
    whole = Cipher(algorithms.AES(key), modes.CTR(counter)).encryptor().update(data)
    assert b"".join(got["out"]) == whole


@pytest.mark.parametrize(
    ("key_len", "counter_len", "message"),
    [
        (32, 15, "aesctr: wanted a 16-byte counter block, got 15"),
        (32, 0, "aesctr: wanted a 16-byte counter block, got 0"),
    ],
)
def test_bad_counter_is_refused(
    interp: Interpreter, prov_lib: Path, key_len: int, counter_len: int, message: str
) -> None:
    item = {"key": bytes(key_len), "counter": bytes(counter_len), "data": b"", "splits": []}
    (got,) = run_json(interp, script(True), [item], prov_lib)
    assert got == {"error": "ValueError", "message": message}
