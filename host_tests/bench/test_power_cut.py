"""Power cuts during the first boot's claim: the next boot always ends with a whole identity."""

from __future__ import annotations

import pytest
from rmbench.board import VirtualBoard

from .helpers import BenchSetup, check_identity, steps

# A self-claim writes NVS 8 times: the key phase (client_key, random, the phase record,
# commit) before any network call, the identity phase (client_cert, node_id, record, commit)
# after the checks. A cut instead of each one, then a cut by the host right after each network
# step reports ok: every step of the claim is interrupted once.
NVS_WRITES = 8
NETWORK_STEPS = ("initiate", "hmac", "verify", "check")


def _recover(bench: BenchSetup, board: VirtualBoard, since: int) -> None:
    lines = board.watch_status(since, timeout=bench.timeout)
    assert lines[-1].step == "claimed", steps(lines)
    mac = board.sim.mac
    check_identity(bench.credentials(), mac)  # the stored cert is for the stored key


@pytest.mark.needs("power_cut")
def test_power_cut_at_each_nvs_write_then_recovery(bench: BenchSetup, board: VirtualBoard) -> None:
    bench.prepare()
    cut_steps = []
    for n in range(1, NVS_WRITES + 1):
        board.exec("import rmclaim\nrmclaim.forget()")
        since = board.power_cycle(power_cut=f"nvs:{n}")
        board.wait_off(timeout=bench.timeout)
        cut_steps.append(board.status_lines(since)[-1].step)
        committed = board.nvs().get("rmaker_creds", {})
        # Committed NVS holds a whole phase or none: never a certificate without its key.
        assert ("client_cert" in committed) <= ("client_key" in committed)
        assert "client_cert" not in committed  # the identity commit is the 8th write
        _recover(bench, board, board.power_cycle())
    # The last line before each cut: the key phase comes after the eFuse read (before any
    # network step), the identity phase after the checks.
    assert cut_steps == ["efuse"] * 4 + ["check"] * 4


@pytest.mark.needs("power_cut")
@pytest.mark.parametrize("step", NETWORK_STEPS)
def test_power_cut_after_a_network_step_then_recovery(
    bench: BenchSetup, board: VirtualBoard, step: str
) -> None:
    bench.prepare()
    since = board.reset()
    board.watch_status(since, until=(step, "ok"), timeout=bench.timeout)
    recovery = board.power_cycle()  # pulled at once: the board is somewhere past `step`
    _recover(bench, board, recovery)
