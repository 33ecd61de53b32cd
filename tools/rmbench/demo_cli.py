"""CLI handler for `rmbench demo` (the story `make demo` tells)."""

from __future__ import annotations

import argparse
import signal
from pathlib import Path

from rmbench.demo import DEFAULT_WORKDIR, run_demo
from rmbench.errors import BenchError
from rmbench.statusline import StatusLine


def args_demo(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--board", default="esp32s3", help="board profile (default esp32s3; esp32: token claim)"
    )
    p.add_argument(
        "--workdir",
        type=Path,
        default=DEFAULT_WORKDIR,
        metavar="DIR",
        help=f"the demo's folder, emptied first (default {DEFAULT_WORKDIR})",
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

    r = run_demo(args.board, workdir=args.workdir, emit=say, on_status=show)
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
    print(f"everything the demo started is stopped; logs in {args.workdir}")
    return 0
