"""Power cuts at every step and just before and after every NVS write of a claim and of forget():
the next boot always ends claimed, with a key that matches the certificate.

NVS writes through, as ESP-IDF 5 does (each write is on flash when it returns, commit() does
nothing), so a cut can land between any two writes: RMBENCH_POWER_CUT=nvs:N cuts just before
the N-th write (it never happens), nvs:N:after just after it (it is stored).
"""

from __future__ import annotations

import json
import shutil
import struct
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from rmbench.boardsim import SimBoard, create_board, open_board
from rmbench.micropython import Interpreter
from rmbench.service.harness import RunningService

from .support import PRELUDE, claim_config, result, run_device

# A store that writes rmclaim_lens before the blobs it lists (the commit record first): the
# order a mutation of store.py would give (issue 13). It holds back each blob until the index
# comes, then writes the index, then the blobs.
INDEX_FIRST = """
import esp32, rmclaim
class IndexFirst:
    def __init__(self, nvs):
        self.nvs = nvs
        self.held = []
    def get_blob(self, key, buf):
        return self.nvs.get_blob(key, buf)
    def erase_key(self, key):
        return self.nvs.erase_key(key)
    def set_blob(self, key, value):
        if key != "rmclaim_lens":
            self.held.append((key, bytes(value)))
            return
        self.nvs.set_blob(key, value)
        for k, v in self.held:
            self.nvs.set_blob(k, v)
        self.held = []
if ARGS["index_first"]:
    rmclaim._nvs["rmaker_creds"] = IndexFirst(esp32.NVS("rmaker_creds"))
"""

# Cut the power (the interpreter is killed at once) right after a step reports "ok", or,
# through RMBENCH_POWER_CUT, just before or after an NVS write of a claim or of forget().
CUT = (
    INDEX_FIRST
    + """
import _boardsim
def on(step, outcome, info):
    if [step, outcome] == ARGS["cut"]:
        _boardsim.power_cut()
try:
    if ARGS["forget"]:
        rmclaim.forget()
    else:
        rmclaim.ensure_claimed(ARGS["config"], on)
    out({"survived": True})
except Exception as e:
    out(err(e))
"""
)

RESUME = (
    INDEX_FIRST
    + """
import os
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
)

# The NVS writes of a claim, in order: the key phase (before any network call), then the
# identity phase (after the checks), each closed by its index write; the local service's reply
# to a token claim's verify also carries mqtt_host and mqtt_cred_host. forget() erases the
# index first, then each stored blob.
SELF_WRITES = ("client_key", "random", "rmclaim_lens", "client_cert", "node_id", "rmclaim_lens")
TOKEN_WRITES = (*SELF_WRITES[:5], "mqtt_host", "mqtt_cred_host", "rmclaim_lens")
FORGET_SELF = ("rmclaim_lens", "client_key", "client_cert", "node_id", "random")
FORGET_TOKEN = (*FORGET_SELF[:4], "mqtt_host", "mqtt_cred_host", "random")
SELF_STEPS = ["identity", "key", "csr", "initiate", "hmac", "verify", "check", "store"]
TOKEN_STEPS = ["key", "initiate", "csr", "verify", "check"]
KEYS = ("client_key", "client_cert", "node_id", "mqtt_host", "mqtt_cred_host", "random")


@dataclass
class Plan:
    name: str
    token: bool
    step: str | None = None  # cut after this step reports ok
    spec: str | None = None  # RMBENCH_POWER_CUT
    forget: bool = False  # cut forget() on a claimed board instead of a claim
    index_first: bool = False  # the store variant that writes the index first


@dataclass
class Cut:
    plan: Plan
    board: SimBoard
    before: dict[str, Any]  # NVS before the cut run
    after_cut: dict[str, Any]  # NVS right after the cut
    outcome: dict[str, Any]  # what the cut run printed, if it got that far


def _plans(token: bool, writes: int, prefix: str = "", **kw: Any) -> list[Plan]:
    kind = "token" if token else "self"
    out = []
    for n in range(1, writes + 1):
        for when in ("before", "after"):
            spec = f"nvs:{n}" if when == "before" else f"nvs:{n}:after"
            out.append(Plan(f"{prefix}{kind}-{when}-{n}", token, spec=spec, **kw))
    return out


def _claimed_template(
    mpy: Interpreter, svc: RunningService, root: Path, token: bool, cfg: dict[str, Any]
) -> SimBoard:
    board = create_board(
        root / f"template-{token}", "esp32c2" if token else "esp32s3", name=f"t{token}"
    )
    if not token:
        svc.register(board.mac, board.unique_id)
    run_device(mpy, "import rmclaim\nrmclaim.ensure_claimed(ARGS)\nout(1)", cfg, board=board)
    return board


def _run_cut(mpy: Interpreter, plan: Plan, board: SimBoard, cfg: dict[str, Any]) -> dict[str, Any]:
    args = {
        "config": cfg,
        "cut": [plan.step, "ok"] if plan.step else None,
        "forget": plan.forget,
        "index_first": plan.index_first,
    }
    out = board.run(
        mpy,
        PRELUDE + CUT,
        stdin=json.dumps(args),
        env={"RMBENCH_POWER_CUT": plan.spec or ""},
        heap="1M",
        check=False,
        timeout=60,
    )
    return result(out) if "RESULT:" in out else {"cut": True}


def run_cuts(
    mpy: Interpreter, svc: RunningService, root: Path, plans: list[Plan], token_user: str
) -> dict[str, Cut]:
    """Each plan on its own board, then one next boot of each (the same store variant)."""
    self_cfg = claim_config(svc, max_attempts=1)
    token_cfg = claim_config(svc, max_attempts=1, access_token=token_user)
    templates: dict[bool, SimBoard] = {}
    boards: dict[str, SimBoard] = {}
    for plan in plans:
        directory = root / plan.name
        if plan.forget:
            if plan.token not in templates:
                cfg = token_cfg if plan.token else self_cfg
                templates[plan.token] = _claimed_template(mpy, svc, root, plan.token, cfg)
            shutil.copytree(templates[plan.token].directory, directory)
            boards[plan.name] = open_board(directory)
        else:
            board = create_board(directory, "esp32c2" if plan.token else "esp32s3", name=plan.name)
            if not plan.token:
                svc.register(board.mac, board.unique_id)
            boards[plan.name] = board

    def go(plan: Plan) -> Cut:
        board = boards[plan.name]
        before = board.nvs()
        outcome = _run_cut(mpy, plan, board, token_cfg if plan.token else self_cfg)
        return Cut(plan, board, before, board.nvs(), outcome)

    with ThreadPoolExecutor(4) as pool:
        done = {c.plan.name: c for c in pool.map(go, plans)}
    for token in (False, True):
        for index_first in (False, True):
            group = [
                c
                for c in done.values()
                if c.plan.token == token and c.plan.index_first == index_first
            ]
            if not group:
                continue
            args = {
                "boards": [[c.plan.name, str(c.board.directory)] for c in group],
                "config": token_cfg if token else self_cfg,
                "index_first": index_first,
            }
            res = run_device(mpy, RESUME, args, board=group[0].board, timeout=300)
            for name, r in res.items():
                done[name].outcome["resume"] = r
    return done


SELF_PLANS = [Plan(f"self-after-{s}", False, step=s) for s in SELF_STEPS] + _plans(False, 6)
TOKEN_PLANS = [Plan(f"token-after-{s}", True, step=s) for s in TOKEN_STEPS] + _plans(True, 8)
FORGET_PLANS = _plans(False, 5, "forget-", forget=True) + _plans(True, 7, "forget-", forget=True)
# One past the last write: no cut lands, the claim (or forget) runs through: the counts above
# are exact.
PAST_PLANS = [
    Plan("self-past", False, spec="nvs:7"),
    Plan("token-past", True, spec="nvs:9"),
    Plan("forget-self-past", False, spec="nvs:6", forget=True),
    Plan("forget-token-past", True, spec="nvs:8", forget=True),
]
ALL = SELF_PLANS + TOKEN_PLANS + FORGET_PLANS


@pytest.fixture(scope="module")
def cuts(
    svc: RunningService, mpy: Interpreter, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Cut]]:
    svc.add_user("tok-cut", quota=200)
    yield run_cuts(mpy, svc, tmp_path_factory.mktemp("cut-boards"), ALL + PAST_PLANS, "tok-cut")


def _writes(plan: Plan) -> tuple[str, ...]:
    if plan.forget:
        return FORGET_TOKEN if plan.token else FORGET_SELF
    return TOKEN_WRITES if plan.token else SELF_WRITES


def _listed(ns: dict[str, Any]) -> dict[str, int]:
    # The blobs rmclaim_lens lists, with their recorded lengths.
    raw = ns.get("rmclaim_lens")
    if raw is None:
        return {}
    assert isinstance(raw, bytes) and len(raw) == 13 and raw[0] == 1, raw
    return {k: n for k, n in zip(KEYS, struct.unpack("<6H", raw[1:]), strict=True) if n}


def _expected_keys(plan: Plan, done: int, before: dict[str, Any]) -> set[str]:
    # The keys present after the first `done` writes: sets for a claim, erases for forget().
    writes = set(_writes(plan)[:done])
    return set(before) - writes if plan.forget else set(before) | writes


def index_problem(ns: dict[str, Any]) -> str | None:
    """What is wrong with NVS right after a cut: the index lists a blob that is not there (or
    not at its recorded length), or a certificate without its key and node id."""
    listed = _listed(ns)
    for key, n in listed.items():
        if not isinstance(ns.get(key), bytes) or len(ns[key]) != n:
            return f"rmclaim_lens lists {key} ({n} bytes), NVS holds {ns.get(key)!r:.40}"
    if "client_cert" in listed and not {"client_key", "node_id"} <= set(listed):
        return f"a certificate listed without its key and node id: {sorted(listed)}"
    return None


@pytest.mark.parametrize("plan", ALL, ids=lambda p: p.name)
def test_the_cut_landed_where_planned(cuts: dict[str, Cut], plan: Plan) -> None:
    # The cut run died (it did not finish or fail), and NVS holds exactly the writes before
    # the cut point: nothing more, nothing less.
    cut = cuts[plan.name]
    assert "survived" not in cut.outcome and "kind" not in cut.outcome, cut.outcome
    before = cut.before.get("rmaker_creds", {})
    after = cut.after_cut.get("rmaker_creds", {})
    if plan.spec is not None:
        n = int(plan.spec.split(":")[1])
        done = n if plan.spec.endswith(":after") else n - 1
        assert set(after) == _expected_keys(plan, done, before)
        for key in set(after) - set(_writes(plan)[:done]):
            assert after[key] == before[key]  # untouched by the writes made
    else:
        # After a step: nothing before the key step, the key phase up to the store, all after.
        assert plan.step is not None
        steps = TOKEN_STEPS if plan.token else SELF_STEPS
        i = steps.index(plan.step)
        if i < steps.index("key"):
            assert after == {}
        elif plan.step == "store":
            assert set(after) == set(_writes(plan))
        else:
            assert set(after) == {"client_key", "random", "rmclaim_lens"}


@pytest.mark.parametrize("plan", ALL, ids=lambda p: p.name)
def test_nvs_never_lists_what_it_does_not_hold(cuts: dict[str, Cut], plan: Plan) -> None:
    # Right after the cut, every blob the index lists is there with its recorded length; a
    # listed certificate always comes with its key and node id.
    assert index_problem(cuts[plan.name].after_cut.get("rmaker_creds", {})) is None


@pytest.mark.parametrize("plan", ALL, ids=lambda p: p.name)
def test_next_boot_ends_claimed_with_matching_key(
    cuts: dict[str, Cut], svc: RunningService, plan: Plan
) -> None:
    from .test_claim import assert_claimed

    cut = cuts[plan.name]
    r = cut.outcome["resume"]
    assert r.get("ok"), r
    if plan.token:
        assert len(r["node_id"]) == 22
    else:
        assert r["node_id"] == cut.board.mac
    assert_claimed(cut.board, svc, r["node_id"])
    ns = cut.board.nvs()["rmaker_creds"]
    # Nothing unlisted is left behind: every blob is one the index lists.
    assert set(ns) == set(_listed(ns)) | {"rmclaim_lens"}
    before = _listed(cut.after_cut.get("rmaker_creds", {}))
    cut_ns = cut.after_cut.get("rmaker_creds", {})
    if "client_key" in before:
        # A key listed before the cut is the key of the final identity: never replaced.
        assert ns["client_key"] == cut_ns["client_key"]
        assert ns["random"] == cut_ns["random"]
    if "client_cert" in before:
        # Claimed when the power went: the next boot did nothing.
        assert r["events"] == ["claimed:ok"]
        assert ns == cut_ns
    # Key material is made with a radio on only (os.urandom is a PRNG otherwise).
    assert cut.board.radio_off_urandom() == []


@pytest.mark.parametrize("plan", PAST_PLANS, ids=lambda p: p.name)
def test_the_write_counts_are_exact(cuts: dict[str, Cut], plan: Plan) -> None:
    # One write past the last: nothing is cut, the claim or forget() runs through.
    cut = cuts[plan.name]
    assert cut.outcome.get("survived"), cut.outcome
    ns = cut.after_cut.get("rmaker_creds", {})
    if plan.forget:
        assert ns == {}
    else:
        assert set(ns) == set(_writes(plan))


def test_the_index_written_first_is_caught(
    svc: RunningService, mpy: Interpreter, tmp_path: Path
) -> None:
    # Issue 13: with rmclaim_lens written before the blobs it lists, a cut between the index
    # and a blob leaves an index that lists what is not there, and some next boot fails (or
    # ends with an identity whose parts do not match): the cut-at-every-write check catches it.
    plans = _plans(False, 6, "mutant-", index_first=True)
    done = run_cuts(mpy, svc, tmp_path, plans, "unused")
    caught = {}
    for name, cut in done.items():
        resume = cut.outcome["resume"]
        problem = index_problem(cut.after_cut.get("rmaker_creds", {}))
        if problem or not resume.get("ok"):
            caught[name] = problem or resume.get("error")
    assert caught, "the cut-at-every-write check let a store that writes the index first pass"
    # Cut right after the identity phase's index write (the 4th write): the index lists a
    # certificate that is not there, and the next boot cannot read the identity back.
    assert "mutant-self-after-4" in caught
    resume = done["mutant-self-after-4"].outcome["resume"]
    assert resume["kind"] == "StoreError" and " is damaged (recorded " in resume["error"]
