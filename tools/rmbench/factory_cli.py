"""CLI handlers for the bench and factory commands: flash, nvs-image (parse, call, render)."""

from __future__ import annotations

import argparse
import os
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
        raise e.with_context(board=profile.name, port=args.port) from e
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


# --- nvs-image ----------------------------------------------------------------------------------


def args_nvs_image(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, type=Path, metavar="FILE", help="image file to write")
    p.add_argument("--board", required=True, help="board profile (gives the partition size)")
    p.add_argument(
        "--host-key",
        action="store_true",
        help="accept that the private key is made (or kept) on this host; required",
    )
    files = p.add_argument_group("from an existing certificate and key")
    files.add_argument("--cert", type=Path, metavar="FILE", help="certificate PEM (node.crt)")
    files.add_argument("--key", type=Path, metavar="FILE", help="its EC P-256 key PEM (node.key)")
    files.add_argument("--node-id", help="node id (default: the certificate's CN)")
    claim = p.add_argument_group("or claim now with a user's token (the key is made here)")
    claim.add_argument("--service-url", help="claiming service base URL, e.g. https://HOST:PORT")
    claim.add_argument("--ca", type=Path, metavar="FILE", help="CA of the service's TLS cert")
    claim.add_argument("--token", help="the user's access token")
    claim.add_argument("--mac", help="the board's base MAC (12 hex digits)")
    p.add_argument("--mqtt-host", help="MQTT endpoint to store (default: what the service sent)")
    p.add_argument("--mqtt-cred-host", help="MQTT credentials endpoint to store")


def do_nvs_image(args: argparse.Namespace) -> int:
    from rmbench import assist, nvsimage

    profile = get_profile(args.board)
    from_files = args.cert is not None or args.key is not None
    from_service = args.service_url is not None
    if from_files == from_service:
        raise UsageError(
            "give either --cert and --key, or --service-url with --token and --mac (not both)"
        )
    if not args.host_key:
        raise UsageError(nvsimage.HOST_KEY_NOTICE)
    if from_files:
        if args.cert is None or args.key is None:
            raise UsageError("--cert and --key go together")
        identity = nvsimage.identity_from_files(
            args.cert,
            args.key,
            node_id=args.node_id,
            mqtt_host=args.mqtt_host,
            mqtt_cred_host=args.mqtt_cred_host,
        )
    else:
        if not args.mac:
            raise UsageError("--mac is needed to claim (the board's base MAC)")
        target = assist.ServiceTarget(args.service_url, args.ca, args.token or "")
        identity = nvsimage.identity_from_service(
            target, args.mac, profile, mqtt_host=args.mqtt_host
        )
    image = nvsimage.build_image(identity, profile)
    _write_private(args.out, image.data)
    expires = image.certificate.not_valid_after_utc.date().isoformat()
    print(
        f"{args.out}: NVS partition for {profile.name} ({len(image.data)} bytes, at "
        f"0x{image.offset:x}): node {image.node_id}, certificate valid until {expires}, "
        f"MQTT host {image.mqtt_host or '(none: the firmware default)'}"
    )
    print(
        f"write it with: esptool --port PORT write-flash 0x{image.offset:x} {args.out} "
        "(it replaces everything in the board's NVS)"
    )
    return 0


def _write_private(path: Path, data: bytes) -> None:
    # The image holds a private key: readable by the owner only, and never half-written.
    tmp = path.with_name(path.name + ".tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except OSError as e:
        raise UsageError(f"{path}: {e.strerror or e}") from e
