"""One retry policy (rmclaim.backoff) for the claim's attempts and the firmware's boot rounds."""

from __future__ import annotations

from rmbench import FIRMWARE_DIR
from rmbench.micropython import Interpreter

from .conftest import BoardFactory
from .support import run_device

DELAYS = """
from rmclaim import backoff
out([backoff.delay_s(*args) for args in ARGS])
"""


def test_delay_policy(interp: Interpreter) -> None:
    # (base, cap, attempt, retry_after, patient, fraction) -> seconds
    cases = [
        ((2, 300, 1, None, False, 0.5), 1.0),  # full jitter in [0, base]
        ((2, 300, 4, None, False, 0.25), 4.0),  # base * 2^3 = 16, a quarter of it
        ((2, 300, 12, None, False, 0.5), 150.0),  # the ceiling stops at the cap
        ((2, 300, 99, None, False, 0.999), 299.7),  # attempts far past the cap
        ((2, 300, 1, None, True, 0.0), 150.0),  # patient: between half the cap and the cap
        ((2, 300, 1, None, True, 0.5), 225.0),
        ((2, 300, 1, 20, False, 0.5), 20),  # never sooner than Retry-After
        ((2, 300, 8, 20, False, 0.5), 128.0),  # a longer jitter is kept
        ((2, 300, 1, 99999, False, 0.5), 3600),  # a Retry-After past an hour is an hour
    ]
    got = run_device(interp, DELAYS, [list(args) for args, _ in cases])
    for (args, want), value in zip(cases, got, strict=True):
        assert abs(value - want) < 1e-6, (args, value, want)


# For each failure: the least and the most of 30 waits after each of rounds 1 to 7.
ROUNDS = """
import rmboot
res = []
for cls, retryable, retry_after in ARGS["failures"]:
    f = rmboot.Failure("claim", cls, "x", retry_after, retryable=retryable)
    rounds = []
    for n in range(1, 8):
        waits = [rmboot.backoff_s(ARGS["cfg"], n, f) for _ in range(30)]
        rounds.append([min(waits), max(waits)])
    res.append(rounds)
out(res)
"""


def test_the_firmware_rounds_wait_as_the_library_says(
    mpy: Interpreter, new_board: BoardFactory
) -> None:
    # rmboot.backoff_s is rmclaim.backoff's policy: a retryable failure within the exponential
    # ceiling; quota, and a failure retrying cannot fix (retryable False: a config error, a
    # refused token), between half the cap and the cap; never before Retry-After.
    board = new_board("backoff", "esp32s3")
    cfg = {"backoff_base_s": 1, "backoff_cap_s": 40}
    failures = [
        ["unreachable", True, None],
        ["quota", True, None],
        ["rejected", False, None],
        ["unreachable", True, 30],
    ]
    res = run_device(
        mpy, ROUNDS, {"cfg": cfg, "failures": failures}, board=board, path=[FIRMWARE_DIR]
    )
    retry, quota, refused, later = res
    for attempt, (least, most) in enumerate(retry, 1):
        assert 0 <= least <= most <= min(40, 2 ** (attempt - 1)), (attempt, least, most)
    assert retry[-1][1] > 20  # the ceiling grows
    assert all(least >= 20 and most <= 40 for least, most in quota + refused)
    assert all(least >= 30 for least, _ in later)
    # No config yet (a broken /rmclaim.json): the defaults, 2 s doubling to 300 s.
    [none] = run_device(
        mpy,
        ROUNDS,
        {"cfg": None, "failures": [["config", False, None]]},
        board=board,
        path=[FIRMWARE_DIR],
    )
    assert all(least >= 150 and most <= 300 for least, most in none)
