"""CLI handlers for the bench and factory commands: flash, nvs-image (parse, call, render)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rmbench import flash
from rmbench.errors import UsageError
from rmbench.profiles import get_profile

_BEFORE = ("default-reset", "usb-reset", "no-reset", "no-reset-no-sync")
_AFTER = ("hard-reset", "soft-reset", "no-reset", "no-reset-stub", "watchdog-reset")


def _read_input(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise UsageError(f"{what} {path}: {e.strerror or e}") from e


@contextmanager
def _progress_display() -> Iterator[flash.ProgressFn | None]:
    # A progress bar on stderr when it is a terminal; nothing otherwise (logs, pipes, tests).
    if not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn

    with Progress(
        TextColumn("{task.description:12}"),
        BarColumn(),
        DownloadColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as bar:
        task = bar.add_task("", total=None)

        def update(step: str, done: int, total: int) -> None:
            bar.update(task, description=step, completed=done, total=total or None)

        yield update


# --- flash --------------------------------------------------------------------------------------


def args_flash(p: argparse.ArgumentParser) -> None:
    p.add_argument("--port", required=True, help="serial port (or pyserial URL) of the board")
    p.add_argument("--board", required=True, help="board profile, e.g. esp32s3 (rmbench boards)")
    p.add_argument(
        "--firmware",
        required=True,
        type=Path,
        metavar="FILE",
        help="MicroPython image: the combined download (BOARD-DATE-vX.Y.Z.bin) or the app alone",
    )
    p.add_argument(
        "--erase",
        action="store_true",
        help="erase the whole flash first: the claimed identity (NVS) and files are lost",
    )
    p.add_argument("--baud", type=int, default=flash.DEFAULT_BAUD, help="baud rate for writing")
    p.add_argument("--before", choices=_BEFORE, default="default-reset", help="reset into ROM")
    p.add_argument("--after", choices=_AFTER, default="hard-reset", help="reset when done")
    p.add_argument(
        "--no-deploy", action="store_true", help="only flash (skip deploying the library)"
    )


def do_flash(args: argparse.Namespace) -> int:
    profile = get_profile(args.board)
    try:
        image = flash.inspect_image(_read_input(args.firmware, "firmware"), profile)
    except UsageError as e:
        raise e.with_context(board=profile.name, port=args.port, step="check image") from e
    with _progress_display() as progress:
        result = flash.flash(
            args.port,
            profile,
            image,
            erase=args.erase,
            baud=args.baud,
            before=args.before,
            after=args.after,
            progress=progress,
        )
    nvs_line = {
        "kept": "NVS kept",
        "blank": "NVS was blank",
        "erased": "flash erased first",
        "untouched": "NVS untouched (app only)",
    }[result.nvs_outcome]
    if result.identity is not None:
        nvs_line += f" ({result.identity.describe()})"
    print(
        f"{result.board}@{result.port}: wrote {result.size} bytes at 0x{result.address:x} "
        f"to {result.chip} {result.mac} in {result.seconds:.1f} s; {nvs_line}"
    )
    if not args.no_deploy:
        print(f"next: rmbench deploy --port {args.port} --board {profile.name}")
    return 0
