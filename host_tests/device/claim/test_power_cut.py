"""Power cuts at every step and NVS write of a claim: the next boot always ends claimed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pytest
from rmbench.boardsim import SimBoard, create_board
from rmbench.micropython import Interpreter
from rmbench.service.harness import RunningService

from .support import PRELUDE, claim_config, result, run_device

# Cut the power (the interpreter is killed at once) right after a step reports "ok", or,
# through RMBENCH_POWER_CUT=nvs:N, instead of the N-th NVS mutation (set, erase, commit).
CUT = """
import _boardsim, rmclaim
def on(step, outcome, info):
    if [step, outcome] == ARGS["cut"]:
        _boardsim.power_cut()
try:
    rmclaim.ensure_claimed(ARGS["config"], on)
    out({"survived": True})
except Exception as e:
    out(err(e))
"""

RESUME = """
import os, rmclaim
res = {}
for name, board in ARGS["boards"]:
    os.putenv("RMBENCH_BOARD_DIR", board)
    ev = []
    try:
        c = rmclaim.ensure_claimed(ARGS["config"], lambda s, o, i: ev.append(s + ":" + o))
        res[name] = {"ok": True, "node_id": c.node_id, "events": ev}
    except Exception as e:
        res[name] = err(e)
        res[name]["events"] = ev
out(res)
"""

# A full self-claim makes 8 NVS mutations (key phase: client_key, random, index, commit;
# identity phase: client_cert, node_id, index, commit); a token claim 9 (plus mqtt_host).
SELF_STEPS = ["identity", "key", "csr", "initiate", "hmac", "verify", "check", "store"]
TOKEN_STEPS = ["key", "initiate", "csr", "verify", "check"]
SELF_NVS = 8
TOKEN_NVS = 9


@dataclass
class Cut:
    name: str
    board: SimBoard
    token: bool
    after_cut: dict[str, Any]  # NVS right after the cut
    outcome: dict[str, Any]  # what the cut run printed, if it got that far


def _run_cut(
    mpy: Interpreter, board: SimBoard, cfg: dict[str, Any], cut: list[str] | None, nvs: int | None
) -> dict[str, Any]:
    env = {"RMBENCH_POWER_CUT": f"nvs:{nvs}" if nvs else ""}
    out = board.run(
        mpy,
        PRELUDE + CUT,
        stdin=json.dumps({"config": cfg, "cut": cut}),
        env=env,
        heap="1M",
        check=False,
        timeout=60,
    )
    return result(out) if "RESULT:" in out else {"cut": True}


@pytest.fixture(scope="module")
def cuts(
    svc: RunningService, mpy: Interpreter, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Cut]]:
    root = tmp_path_factory.mktemp("cut-boards")
    svc.add_user("tok-cut", quota=50)
    plans: list[tuple[str, bool, list[str] | None, int | None]] = []
    plans += [(f"self-after-{s}", False, [s, "ok"], None) for s in SELF_STEPS]
    plans += [(f"self-nvs-{n}", False, None, n) for n in range(1, SELF_NVS + 1)]
    plans += [(f"token-after-{s}", True, [s, "ok"], None) for s in TOKEN_STEPS]
    plans += [(f"token-nvs-{n}", True, None, n) for n in range(1, TOKEN_NVS + 1)]
    boards: dict[str, SimBoard] = {}
    for name, token, _, _ in plans:
        board = create_board(root / name, "esp32s3" if not token else "esp32c2", name=name)
        if not token:
            svc.register(board.mac, board.unique_id)
        boards[name] = board
    self_cfg = claim_config(svc, max_attempts=1)
    token_cfg = claim_config(svc, max_attempts=1, access_token="tok-cut")

    def go(plan: tuple[str, bool, list[str] | None, int | None]) -> Cut:
        name, token, step, nvs = plan
        board = boards[name]
        outcome = _run_cut(mpy, board, token_cfg if token else self_cfg, step, nvs)
        return Cut(name, board, token, board.nvs(), outcome)

    with ThreadPoolExecutor(4) as pool:
        done = {c.name: c for c in pool.map(go, plans)}
    for token, cfg in ((False, self_cfg), (True, token_cfg)):
        group = [[c.name, str(c.board.directory)] for c in done.values() if c.token == token]
        first = next(c.board for c in done.values() if c.token == token)
        res = run_device(mpy, RESUME, {"boards": group, "config": cfg}, board=first)
        for name, r in res.items():
            done[name].outcome["resume"] = r
    yield done


def _names(token: bool) -> list[str]:
    steps, nvs, kind = (
        (TOKEN_STEPS, TOKEN_NVS, "token") if token else (SELF_STEPS, SELF_NVS, "self")
    )
    return [f"{kind}-after-{s}" for s in steps] + [f"{kind}-nvs-{n}" for n in range(1, nvs + 1)]


ALL = _names(False) + _names(True)


@pytest.mark.parametrize("name", ALL)
def test_the_cut_happened(cuts: dict[str, Cut], name: str) -> None:
    # The cut run must really have died where planned, not finished the claim.
    cut = cuts[name]
    assert "survived" not in cut.outcome and "kind" not in cut.outcome, cut.outcome
    nvs = cut.after_cut.get("rmaker_creds", {})
    assert "client_cert" not in nvs or name.endswith("after-store")


@pytest.mark.parametrize("name", ALL)
def test_next_boot_ends_claimed_with_matching_key(
    cuts: dict[str, Cut], svc: RunningService, name: str
) -> None:
    from .test_claim import assert_claimed

    cut = cuts[name]
    r = cut.outcome["resume"]
    assert r.get("ok"), r
    if cut.token:
        assert len(r["node_id"]) == 22
    else:
        assert r["node_id"] == cut.board.mac
    assert_claimed(cut.board, svc, r["node_id"])
    before = cut.after_cut.get("rmaker_creds", {})
    after = cut.board.nvs()["rmaker_creds"]
    if "client_key" in before:
        # A key committed before the cut is the key of the final identity: never replaced.
        assert after["client_key"] == before["client_key"]
        assert after["random"] == before["random"]
    if "client_cert" in before:
        # Claimed before the cut (after the store step): the next boot did nothing.
        assert r["events"] == ["claimed:ok"]
        assert after == before
