"""Fleet claim: flash or deploy, provision and claim many boards in parallel, with a report.

Each board runs its own pipeline in a worker thread (the work is on the boards, the service and
subprocesses, so threads suffice): flash (real ports, when a firmware is given), connect (a new
virtual board when no port is given), deploy, provision, claim (host-assisted, key made on the
board). A failure stops only that board's pipeline and is recorded with its step and reason.
"""

from __future__ import annotations

import csv
import json
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from rmbench import assist, deploy, devicecalls, flash, provision
from rmbench.board import Board, VirtualBoard, open_board
from rmbench.errors import BenchError, UsageError
from rmbench.profiles import BoardProfile

# (board index, step): each board reports the step it starts.
FleetProgress = Callable[[int, str], None]
REPORT_FIELDS = ("board", "port", "mac", "node_id", "result", "seconds", "step", "error")


@dataclass(frozen=True)
class Member:
    """One board of a fleet: a serial port, or None for a virtual board started for the run.
    `token` overrides the fleet's access token for this board."""

    port: str | None = None
    token: str | None = None


@dataclass(frozen=True)
class Plan:
    """What to do to every board."""

    profile: BoardProfile
    target: assist.ServiceTarget
    provisioning: deploy.ClaimConfig | None = None  # /rmclaim.json; None leaves it alone
    firmware: flash.FirmwareImage | None = None  # flashed first on real ports
    claim_ca: str | None = None  # PEM pinning the CA that must sign device certificates


@dataclass(frozen=True)
class Outcome:
    """One board's line of the report."""

    board: str
    port: str
    mac: str
    node_id: str
    result: str  # "claimed", "already claimed" or "failed"
    seconds: float
    step: str  # where it failed ("" when it did not)
    error: str


@dataclass(frozen=True)
class Report:
    """Every board's outcome, in the order the boards were given, and the wall time."""

    outcomes: tuple[Outcome, ...]
    seconds: float

    @property
    def failed(self) -> tuple[Outcome, ...]:
        return tuple(o for o in self.outcomes if o.result == "failed")

    def write(self, path: Path) -> None:
        """Save as CSV, or JSON when the name ends in .json."""
        rows = [asdict(o) | {"seconds": round(o.seconds, 3)} for o in self.outcomes]
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix == ".json":
            doc = {"seconds": round(self.seconds, 3), "boards": rows}
            path.write_text(json.dumps(doc, indent=2) + "\n")
            return
        with path.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=REPORT_FIELDS)
            writer.writeheader()
            writer.writerows(rows)


def _one(
    index: int,
    member: Member,
    plan: Plan,
    roots: tuple[Path | None, Path],
    progress: FleetProgress | None,
) -> Outcome:
    # roots: where to look up virtual boards given by port, and where to start new ones.
    t0 = time.monotonic()
    label, port, mac, step = f"board-{index + 1}", member.port or "", "", "start"

    def at(name: str) -> None:
        nonlocal step
        step = name
        if progress is not None:
            progress(index, name)

    board: Board | None = None
    try:
        if plan.firmware is not None and member.port is not None:
            at("flash")
            result = flash.flash(member.port, plan.profile, plan.firmware)
            mac = result.mac
        at("connect")
        if member.port is None:
            board = VirtualBoard.start(plan.profile, name=label, root=roots[1])
        else:
            board = open_board(port=member.port, board=plan.profile, root=roots[0])
        label, port = board.name, board.port
        provision.wait_for_repl(board)  # a board just flashed is still booting
        at("deploy")
        deploy.deploy(board, config=None)
        at("identify")
        info = devicecalls.device_info(board)
        mac = info.mac
        if plan.provisioning is not None:
            at("provision")
            provision.provision(board, plan.provisioning)
        target = plan.target
        if member.token is not None:
            target = replace(target, token=member.token)
        claimed = assist.claim(
            board,
            target,
            claim_ca=plan.claim_ca,
            info=info,
            progress=lambda s, _d, _t: at(f"claim {s}"),
        )
        result_text = "already claimed" if claimed.already else "claimed"
        return Outcome(
            label, port, claimed.mac, claimed.node_id, result_text, time.monotonic() - t0, "", ""
        )
    except BenchError as e:
        return Outcome(label, port, mac, "", "failed", time.monotonic() - t0, step, e.reason)
    finally:
        if board is not None:
            board.close()


def run(
    members: Sequence[Member],
    plan: Plan,
    *,
    workers: int | None = None,
    root: Path | None = None,
    progress: FleetProgress | None = None,
) -> Report:
    """Claim every board of `members`, in parallel; one board's failure does not stop the others.

    Args:
        members: the boards (ports, or None for virtual boards started and stopped here).
        plan: firmware, provisioning and the claiming service, the same for every board.
        workers: boards worked on at once (default: all of them).
        root: the virtual boards' state directory: where boards given by port are looked up
            (default: rmbench vboard's) and new ones are started (default: a new temporary
            directory, so each run starts from blank boards).
        progress: called with (board index, step) as each board starts a step.

    Returns:
        Each board's outcome, in the order given, and the wall time.

    Raises:
        UsageError: no boards, or a provisioning the boards would refuse (checked once, before
            any board is touched).
    """
    if not members:
        raise UsageError("no boards: give ports or a number of virtual boards")
    if plan.provisioning is not None:
        provision.validate(plan.provisioning, plan.profile)
    t0 = time.monotonic()
    # Compile the library once before the boards deploy at the same time: concurrent deploys
    # would all write the same build/mpy cache files (boards on MicroPython 1.23 and newer use
    # this .mpy version; others compile their own as they deploy).
    deploy.bundle(deploy.KNOWN_MPY[0], config=None)
    with tempfile.TemporaryDirectory(prefix="rmbench-fleet-") as tmp:
        roots = (root, root or Path(tmp))
        with ThreadPoolExecutor(max_workers=workers or len(members)) as pool:
            futures = [
                pool.submit(_one, i, m, plan, roots, progress) for i, m in enumerate(members)
            ]
            outcomes = tuple(f.result() for f in futures)
    return Report(outcomes, time.monotonic() - t0)
