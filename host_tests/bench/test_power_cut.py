"""Power cuts during the first boot's claim: each lands where planned, before the store (or at
a known NVS write), and the next boot always ends with a whole identity.

NVS writes through, as ESP-IDF 5 does: each write is stored when it returns, so a cut lands
between two writes: `--cut-at nvs:N` just before the N-th write, `nvs:N:after` just after it.
"""

from __future__ import annotations

import pytest
from rmbench.board import VirtualBoard
from rmbench.statusline import StatusLine, parse_status

from .helpers import BenchSetup, check_identity, steps

# The NVS writes of a self-claim, in order: the key phase (after the eFuse read, before any
# network call) and the identity phase (after the checks), each closed by its index write.
SELF_WRITES = ("client_key", "random", "rmclaim_lens", "client_cert", "node_id", "rmclaim_lens")
KEY_PHASE = {"client_key", "random", "rmclaim_lens"}
NETWORK_STEPS = ("initiate", "hmac", "verify")


def _lines_between(board: VirtualBoard, since: int, until: int) -> list[StatusLine]:
    # The status lines of the output from mark `since` up to mark `until` (one boot's).
    text = board.output(since)[: until - since]
    return [s for s in map(parse_status, text.splitlines()) if s is not None]


def _recover(bench: BenchSetup, board: VirtualBoard, since: int) -> list[StatusLine]:
    lines = board.watch_status(since, timeout=bench.timeout)
    assert lines[-1].step == "claimed", steps(lines)
    check_identity(bench.credentials(), board.sim.mac)  # the stored cert is for the stored key
    assert board.sim.radio_off_urandom() == []  # keys made with the station on only
    return lines


@pytest.mark.needs("power_cut")
def test_power_cut_before_and_after_each_nvs_write_then_recovery(
    bench: BenchSetup, board: VirtualBoard
) -> None:
    bench.prepare()
    for n in range(1, len(SELF_WRITES) + 1):
        for after in (False, True):
            board.exec("import rmclaim\nrmclaim.forget()")
            since = board.power_cycle(power_cut=f"nvs:{n}:after" if after else f"nvs:{n}")
            board.wait_off(timeout=bench.timeout)
            recovery = board.power_cycle()
            # Where the cut landed: NVS holds exactly the writes before it, and the last
            # status line is the step before the phase that wrote (the key phase follows the
            # eFuse read, the identity phase the checks).
            done = n if after else n - 1
            stored = board.nvs().get("rmaker_creds", {})
            assert set(stored) == set(SELF_WRITES[:done]), (n, after)
            last = _lines_between(board, since, recovery)[-1]
            assert (last.step, last.outcome) == ("efuse" if n <= 3 else "check", "ok"), (n, after)
            lines = _recover(bench, board, recovery)
            final = board.nvs()["rmaker_creds"]
            if done >= 3:  # the key phase was whole: its key is the identity's
                assert final["client_key"] == stored["client_key"]
            if done == len(SELF_WRITES):  # the identity was whole: nothing to do
                assert steps(lines)[-1] == "claimed:ok" and lines[-1].fields["stored"] == "yes"
                assert final == stored
            else:
                assert lines[-1].fields["stored"] == "no"


@pytest.mark.needs("power_cut")
@pytest.mark.parametrize("step", NETWORK_STEPS)
def test_power_cut_after_a_network_step_lands_before_the_store(
    bench: BenchSetup, board: VirtualBoard, step: str
) -> None:
    # The host cuts as soon as `step` reports ok. For the cut to land before the store on any
    # host, the claim is made to stop short of it: the verify that follows initiate/hmac gets a
    # 503, the verify itself a certificate for another key (the check refuses it), and either
    # way the board then waits out a long backoff.
    bench.prepare(bench.config(backoff_base_s=30, backoff_cap_s=60))
    if step == "verify":
        bench.service.inject_fault("wrong_key_cert", path="verify")
    else:
        bench.service.inject_fault("status", path="verify", status=503)
    since = board.reset()
    board.watch_status(since, until=(step, "ok"), timeout=bench.timeout)
    recovery = board.power_cycle()  # pulled at once
    bench.service.clear_faults()  # a fault the cut board never reached must not hit the next
    # Where it landed: after `step`, with the key phase stored and nothing of the identity;
    # the board never reached the store.
    stored = board.nvs().get("rmaker_creds", {})
    assert set(stored) == KEY_PHASE
    cut_boot = steps(_lines_between(board, since, recovery))
    assert f"{step}:ok" in cut_boot
    assert not [s for s in cut_boot if s.split(":")[0] in ("store", "claimed")], cut_boot
    _recover(bench, board, recovery)
    assert board.nvs()["rmaker_creds"]["client_key"] == stored["client_key"]  # key reused
