"""CLI handler for `rmbench demo` (the story `make demo` tells)."""

from __future__ import annotations

import argparse
import signal
from collections.abc import Callable
from pathlib import Path

from rmbench.demo import DEFAULT_WORKDIR, run_demo
from rmbench.demo_field import DEFAULT_WORKDIR as FIELD_WORKDIR
from rmbench.demo_field import run_field_demo
from rmbench.errors import BenchError, UsageError
from rmbench.statusline import StatusLine


def args_demo(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--board", default="esp32s3", help="board profile (default esp32s3; esp32: token claim)"
    )
    p.add_argument(
        "--workdir",
        type=Path,
        default=None,
        metavar="DIR",
        help=f"the demo's folder, emptied first (default {DEFAULT_WORKDIR}, or "
        f"{FIELD_WORKDIR} with --field)",
    )
    p.add_argument(
        "--field",
        action="store_true",
        help="the field story instead: a board with no Wi-Fi provisioned over its soft-AP by "
        "esp-rainmaker-cli's own client, then claimed",
    )
    p.add_argument(
        "--claimed-first",
        action="store_true",
        help="with --field: the board is claimed at the bench first, and the CLI's provision "
        "command maps it to a user by challenge-response",
    )


def _stop_on_sigterm(signum: int, frame: object) -> None:
    # A terminated demo unwinds like an interrupted one: everything it started is stopped.
    raise SystemExit(128 + signum)


def do_demo(args: argparse.Namespace) -> int:
    signal.signal(signal.SIGTERM, _stop_on_sigterm)

    def say(line: str) -> None:
        print(f"demo: {line}", flush=True)

    def show(line: StatusLine) -> None:
        print(f"  board> {line.line}", flush=True)

    if args.field:
        return _field(args, say, show)
    if args.claimed_first:
        raise UsageError("--claimed-first goes with --field")
    workdir = args.workdir or DEFAULT_WORKDIR
    r = run_demo(args.board, workdir=workdir, emit=say, on_status=show)
    way = "self-claimed (eFuse challenge-response)" if r.mode == "self" else "claimed with a token"
    print()
    print(f"{r.board} {r.mac} {way} on first boot:")
    print(f"  node id      {r.node_id}")
    print(f"  subject      {r.subject}")
    print(f"  issuer       {r.issuer}")
    print(f"  expires      {r.not_after:%Y-%m-%d %H:%M:%S} UTC")
    print(f"  time taken   {r.claim_seconds:.2f} s from reset to stored credentials")
    if not r.second_boot_stored or {"initiate", "verify"} & set(r.second_boot_steps):
        raise BenchError(
            "the second boot claimed again: " + " ".join(r.second_boot_steps), step="reboot"
        )
    print(f"  mqtt         connected to {r.mqtt_url} as {r.node_id} with that certificate;")
    print(f"               node config published ({r.config_bytes} bytes)")
    nodes = ", ".join(r.user_nodes) or "none"
    print(f"  mapping      user {r.user_id}: {r.mapping_status}; the user's nodes: {nodes}")
    if "mapping" in r.second_boot_steps or r.mapping_requests != 1:
        raise BenchError(f"the mapping request went out {r.mapping_requests} times", step="reboot")
    print("  reboot       identity read from NVS, no claim: " + " ".join(r.second_boot_steps))
    print("               (the mapping request, acknowledged on the first boot, not sent again)")
    print(f"everything the demo started is stopped; logs in {workdir}")
    return 0


def _field(
    args: argparse.Namespace, say: Callable[[str], None], show: Callable[[StatusLine], None]
) -> int:
    workdir = args.workdir or FIELD_WORKDIR
    r = run_field_demo(
        args.board, claimed_first=args.claimed_first, workdir=workdir, emit=say, on_status=show
    )
    print()
    print(f"{r.board} {r.mac} provisioned in the field by esp-rainmaker-cli:")
    print(f"  soft-AP      {r.soft_ap} (192.168.4.1:80 here at {r.address}), pop {r.pop}")
    for line in r.cli_lines:
        print(f"  cli>         {line}")
    print(f"  joined       CmdApplyConfig to stored credentials in {r.apply_ms} ms")
    print(f"  node id      {r.node_id}")
    if r.mapping == "challenge_response":
        print(f"  mapped       to user {r.user_id} by challenge-response (no MQTT needed)")
    else:
        print(f"  user mapping user {r.user_id} and its secret key kept for the MQTT step")
    print(f"  boot steps   {' '.join(r.steps)}")
    print(f"everything the demo started is stopped; logs in {workdir}")
    return 0
