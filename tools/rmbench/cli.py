"""rmbench: the bench CLI. One command table; handlers parse, call an operation, render."""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import NoReturn

from rmbench import __version__
from rmbench.commands import demo
from rmbench.commands import deploy as dep
from rmbench.commands import factory as fac
from rmbench.commands import service as svc
from rmbench.commands import vboard as vb
from rmbench.errors import BenchError, UsageError
from rmbench.profiles import all_profiles

Handler = Callable[[argparse.Namespace], int]


@dataclass(frozen=True)
class Command:
    """A leaf command: its help line, a function that adds its options, and its handler."""

    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    handler: Handler


@dataclass(frozen=True)
class Group:
    """A command with subcommands (`rmbench user add`, `rmbench vboard start`)."""

    help: str
    commands: dict[str, Command | Group] = field(default_factory=dict)


# --- boards -------------------------------------------------------------------------------------


def _args_boards(p: argparse.ArgumentParser) -> None:
    del p


def do_boards(args: argparse.Namespace) -> int:
    del args
    for profile in all_profiles().values():
        mode = "self-claim" if profile.claim_mode == "self" else f"{profile.claim_mode} claim"
        offset = f"offset 0x{profile.flash_offset:x}"
        print(f"{profile.name:9} {profile.micropython_board:18} {offset}  {mode}")
    return 0


# The command table: the single source of commands and of their help.
COMMANDS: dict[str, Command | Group] = {
    "boards": Command("list the supported board profiles", _args_boards, do_boards),
    "serve": Command("run the local claiming service (HTTPS)", svc.args_serve, svc.do_serve),
    "user": Group(
        "users of the local claiming service",
        {
            "add": Command("add or update a user", svc.args_user_add, svc.do_user_add),
            "nodes": Command("list a user's mapped nodes", svc.args_user_nodes, svc.do_user_nodes),
        },
    ),
    "register": Command("register a board for self-claiming", svc.args_register, svc.do_register),
    "fault": Command("inject faults into a running service", svc.args_fault, svc.do_fault),
    "deploy": Command(
        "copy the library (compiled), firmware and claim config to a board",
        dep.args_deploy,
        dep.do_deploy,
    ),
    "demo": Command(
        "a virtual board claims itself against the local service", demo.args_demo, demo.do_demo
    ),
    "vboard": Group(
        "virtual boards: the MicroPython Unix port behind a pty, driven like a board",
        {
            "start": Command("start one; prints its serial port", vb.args_start, vb.do_start),
            "stop": Command("stop boards (their files and NVS stay)", vb.args_stop, vb.do_stop),
            "list": Command("list boards and their ports", vb.args_list, vb.do_list),
            "power-cycle": Command(
                "cut the power and restore it", vb.args_power_cycle, vb.do_power_cycle
            ),
        },
    ),
    "flash": Command("flash MicroPython, keeping an identity", fac.args_flash, fac.do_flash),
    "nvs-image": Command(
        "NVS image with a host-made identity (factory)", fac.args_nvs_image, fac.do_nvs_image
    ),
    "provision": Command("write a validated /rmclaim.json", fac.args_provision, fac.do_provision),
    "claim": Command("host-assisted claim (key made on the board)", fac.args_claim, fac.do_claim),
    "status": Command("identity of one board or all", fac.args_status, fac.do_status),
    "fleet": Group(
        "many boards in parallel",
        {"claim": Command("claim them, with a report", fac.args_fleet_claim, fac.do_fleet_claim)},
    ),
}


class _Parser(argparse.ArgumentParser):
    """argparse with rmbench's exit status for usage errors (1; failures are 2)."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(1, f"{self.prog}: error: {message}\n")


def _build(parser: argparse.ArgumentParser, table: dict[str, Command | Group], path: str) -> None:
    sub = parser.add_subparsers(dest=f"cmd_{path or 'root'}", metavar="COMMAND", required=True)
    for name, entry in table.items():
        child = sub.add_parser(name, help=entry.help, description=entry.help)
        full = f"{path} {name}".strip()
        if isinstance(entry, Group):
            _build(child, entry.commands, full)
        else:
            entry.add_arguments(child)
            child.set_defaults(_handler=entry.handler, _command=full)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="rmbench", description=__doc__)
    parser.add_argument("--version", action="version", version=f"rmbench {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on failure")
    _build(parser, COMMANDS, "")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: exit 0 on success, 1 on a usage error, 2 on a failure."""
    parser = build_parser()
    args = parser.parse_args(argv)
    command: str = args._command
    handler: Handler = args._handler
    try:
        return handler(args)
    except BenchError as e:
        sys.stdout.flush()
        where = e.location()
        line = f"rmbench: {command}: " + (f"{where}: " if where else "") + e.reason
        print(line, file=sys.stderr)
        if e.hint:
            print(f"rmbench: hint: {e.hint}", file=sys.stderr)
        if args.debug:
            traceback.print_exc()
        return e.exit_code
    except KeyboardInterrupt:
        print(f"rmbench: {command}: interrupted", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())


__all__ = ["COMMANDS", "Command", "Group", "UsageError", "build_parser", "main"]
