"""CLI handlers for `rmbench vboard start|stop|list|power-cycle`."""

from __future__ import annotations

import argparse
import re
import sys

from rmbench import vboard
from rmbench.boardsim import DEFAULT_WIFI
from rmbench.commands.options import add_vboard_dir
from rmbench.errors import UsageError
from rmbench.profiles import get_profile
from rmbench.releases import DEFAULT_RELEASE, get_release, release_names

# --cut-at: just before the N-th NVS write (nvs:N, nvs:N:before) or just after it (nvs:N:after).
CUT_AT = re.compile(r"nvs:[1-9][0-9]*(:before|:after)?")


# --- start --------------------------------------------------------------------------------------


def args_start(p: argparse.ArgumentParser) -> None:
    p.add_argument("--board", required=True, help="board profile, e.g. esp32s3 (rmbench boards)")
    p.add_argument("--name", help="board name (default <board>-N); keys its identity and files")
    p.add_argument(
        "--firmware",
        default=DEFAULT_RELEASE,
        metavar="VERSION",
        help=f"the MicroPython release it runs: {', '.join(release_names())} "
        f"(default {DEFAULT_RELEASE}; 1.22, unsupported, to try refusals)",
    )
    p.add_argument("--heap", help="GC heap size, e.g. 110K (default: the profile's)")
    p.add_argument("--mac", help="base MAC, 12 hex digits (default: derived from the name)")
    p.add_argument("--unique-id", help="eFuse unique id, 32 hex digits (default: from the name)")
    p.add_argument("--wifi-ssid", default=DEFAULT_WIFI[0], help="the bench Wi-Fi it can join")
    p.add_argument("--wifi-password", default=DEFAULT_WIFI[1], help="its password")
    add_vboard_dir(p)


def do_start(args: argparse.Namespace) -> int:
    unique_id = None
    if args.unique_id:
        try:
            unique_id = bytes.fromhex(args.unique_id)
        except ValueError as e:
            raise UsageError(f"--unique-id must be hex: {args.unique_id!r}") from e
    info = vboard.start(
        get_profile(args.board),
        name=args.name,
        root=args.state_dir,
        heap=args.heap,
        firmware=get_release(args.firmware),
        mac=args.mac,
        unique_id=unique_id,
        wifi=(args.wifi_ssid, args.wifi_password),
    )
    print(info.pty)
    print(f"softap={info.softap}")
    print(
        f"{info.name}: virtual {info.board} (MicroPython v{get_release(info.firmware).release}, "
        f"MAC {info.mac}) on {info.pty}; its soft-AP's 192.168.4.1:80 is {info.softap}; "
        f"files in {info.fs_dir}; stop with: rmbench vboard stop {info.name}",
        file=sys.stderr,
    )
    return 0


# --- stop ---------------------------------------------------------------------------------------


def args_stop(p: argparse.ArgumentParser) -> None:
    p.add_argument("names", nargs="*", metavar="NAME", help="boards to stop")
    p.add_argument("--all", action="store_true", help="stop every running board")
    add_vboard_dir(p)


def do_stop(args: argparse.Namespace) -> int:
    if not args.names and not args.all:
        raise UsageError("name the boards to stop, or give --all")
    boards = (
        [b for b in vboard.list_boards(root=args.state_dir) if b.running]
        if args.all
        else [vboard.find(n, root=args.state_dir) for n in args.names]
    )
    for info in boards:
        was = "stopped" if info.running else "was not running"
        vboard.stop(info)
        print(f"{info.name}: {was}")
    return 0


# --- list ---------------------------------------------------------------------------------------


def args_list(p: argparse.ArgumentParser) -> None:
    add_vboard_dir(p)


def do_list(args: argparse.Namespace) -> int:
    boards = vboard.list_boards(root=args.state_dir)
    if not boards:
        print(f"no virtual boards in {vboard.state_root(args.state_dir)}")
        return 0
    print(
        f"{'NAME':16} {'BOARD':9} {'FIRMWARE':9} {'STATE':8} {'PORT':12} {'MAC':12} "
        f"{'BOOTS':5} SOFTAP"
    )
    for b in boards:
        softap = f"softap={b.softap}" if b.softap and b.running else "-"
        print(
            f"{b.name:16} {b.board:9} {b.firmware:9} {b.state:8} {b.pty or '-':12} "
            f"{b.mac:12} {b.boots:<5} {softap}"
        )
    return 0


# --- power-cycle --------------------------------------------------------------------------------


def args_power_cycle(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", metavar="NAME", help="the board")
    p.add_argument(
        "--off-ms", type=int, default=100, help="how long the power stays off (default 100)"
    )
    p.add_argument(
        "--cut-at",
        metavar="nvs:N[:after]",
        help="make the next boot cut its own power just before its N-th NVS write (nvs:N: the "
        "write does not happen) or just after it (nvs:N:after: the write is stored)",
    )
    add_vboard_dir(p)


def do_power_cycle(args: argparse.Namespace) -> int:
    if args.cut_at and not CUT_AT.fullmatch(args.cut_at):
        raise UsageError(
            f"--cut-at wants nvs:N, nvs:N:before or nvs:N:after (N = 1, 2, ...), "
            f"got {args.cut_at!r}"
        )
    info = vboard.find(args.name, root=args.state_dir)
    info = vboard.power_cycle(info, power_cut=args.cut_at, off_ms=args.off_ms)
    print(f"{info.name}: power cycled (boot {info.boots}) on {info.pty}")
    return 0
