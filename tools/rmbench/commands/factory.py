"""CLI handlers for the bench and factory commands (parse, call the operation, render): flash,
nvs-image, provision, claim, status, fleet; `register --port` reads through rmbench.register."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path

from rmbench import ProgressFn, flash
from rmbench.assist import ServiceTarget
from rmbench.board import Board, open_board
from rmbench.boardsim import DEFAULT_WIFI
from rmbench.commands.deploy import add_config_arguments, config_from_args
from rmbench.commands.options import add_service_options, add_vboard_dir, service_from_args
from rmbench.deploy import ClaimConfig
from rmbench.errors import BenchError, UsageError
from rmbench.files import write_atomic
from rmbench.profiles import BoardProfile, get_profile

_BEFORE = ("default-reset", "usb-reset", "no-reset", "no-reset-no-sync")
_AFTER = ("hard-reset", "soft-reset", "no-reset", "no-reset-stub", "watchdog-reset")


def _read_input(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise UsageError(f"{what} {path}: {e.strerror or e}") from e


@contextmanager
def _progress_display() -> Iterator[ProgressFn | None]:
    # A progress bar on stderr when it is a terminal; nothing otherwise (logs, pipes, tests).
    if not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TaskID, TextColumn

    with Progress(
        TextColumn("{task.description:12}"),
        BarColumn(),
        DownloadColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as bar:
        shown: dict[str, TaskID] = {}  # one bar per step (one without a size is indefinite)

        def update(step: str, done: int, total: int) -> None:
            if step not in shown:
                for old in shown.values():
                    bar.remove_task(old)
                shown.clear()
                shown[step] = bar.add_task(step, total=total or None)
            bar.update(shown[step], completed=done, total=total or None)

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
        "--no-deploy", action="store_true", help="only flash (no deploy, no claim config)"
    )
    add_config_arguments(p)  # with these, /rmclaim.json is written after the deploy


def _given_config(args: argparse.Namespace, profile: BoardProfile) -> ClaimConfig | None:
    # The claim config the options give, validated for this board, or None when none is given.
    from rmbench import provision

    if args.config is None and args.service_dir is None and args.service_url is None:
        return None
    config = config_from_args(args)
    try:
        provision.validate(config, profile)
    except UsageError as e:
        raise e.with_context(board=profile.name, port=args.port, step="validate") from e
    return config


def do_flash(args: argparse.Namespace) -> int:
    profile = get_profile(args.board)
    # Everything is checked before the board is touched: a bad config loses nothing.
    config = None if args.no_deploy else _given_config(args, profile)
    if not args.no_deploy and args.after not in ("hard-reset", "watchdog-reset"):
        raise UsageError(
            f"--after {args.after} leaves the board in its bootloader, so nothing can be "
            "deployed: use --no-deploy, or let it reset (--after hard-reset)"
        )
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
    if args.no_deploy:
        return 0
    from rmbench import provision

    with _opened(args.port, args.board) as b:
        deployed, provisioned = provision.deploy_and_provision(b, config)
    print(
        f"{deployed.board}@{deployed.port}: deployed (.mpy v{deployed.mpy_version}): "
        f"{deployed.written} written, {deployed.unchanged} unchanged"
        + (f"; wrote {provisioned.path}" if provisioned else "; /rmclaim.json left as it was")
    )
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
    add_service_options(claim, token="the user's access token")
    claim.add_argument("--mac", help="the board's base MAC (12 hex digits)")
    p.add_argument("--mqtt-host", help="MQTT endpoint to store (default: what the service sent)")
    p.add_argument("--mqtt-cred-host", help="MQTT credentials endpoint to store")


def do_nvs_image(args: argparse.Namespace) -> int:
    from rmbench import nvsimage

    profile = get_profile(args.board)
    from_files = args.cert is not None or args.key is not None
    from_service = args.service_url is not None or args.service_dir is not None
    if from_files == from_service:
        raise UsageError(
            "give either --cert and --key, or --service-url (or --service-dir) with --token and "
            "--mac (not both)"
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
        target, _claim_ca = _service_target(args)
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
    try:
        write_atomic(path, data, private=True)
    except OSError as e:
        raise UsageError(f"{path}: {e.strerror or e}") from e


# --- provision, claim, status -------------------------------------------------------------------


@contextmanager
def _opened(port: str, board: str) -> Iterator[Board]:
    b = open_board(port=port, board=board)
    try:
        yield b
    finally:
        b.close()


def _board_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--port", required=True, help="serial port of the board (or /dev/pts/N)")
    p.add_argument("--board", required=True, help="board profile, e.g. esp32s3 (rmbench boards)")


def args_provision(p: argparse.ArgumentParser) -> None:
    _board_arguments(p)
    add_config_arguments(p)


def do_provision(args: argparse.Namespace) -> int:
    from rmbench import provision

    config = config_from_args(args)
    profile = get_profile(args.board)
    try:
        provision.validate(config, profile)  # before the board is even opened
    except UsageError as e:
        raise e.with_context(board=profile.name, port=args.port, step="validate") from e
    with _opened(args.port, args.board) as b:
        result = provision.provision(b, config)
    print(
        f"{result.board}@{result.port}: wrote {result.path} ({', '.join(result.keys)}) "
        f"in {result.seconds:.1f} s"
    )
    return 0


def _service_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("the claiming service")
    add_service_options(g, token="the user's access token (required)")


def _service_target(args: argparse.Namespace) -> tuple[ServiceTarget, str | None]:
    # The service, the user, and the pinned claim CA (PEM) the options name.
    service = service_from_args(args)
    if service.url is None:
        raise UsageError(
            "no service URL", hint="give --service-url URL --ca FILE, or --service-dir DIR"
        )
    return ServiceTarget(service.url, service.ca_file, service.token or ""), service.claim_ca_pem()


def args_claim(p: argparse.ArgumentParser) -> None:
    _board_arguments(p)
    _service_arguments(p)


def do_claim(args: argparse.Namespace) -> int:
    from rmbench import assist

    target, claim_ca = _service_target(args)
    with _opened(args.port, args.board) as b:
        result = assist.claim(b, target, claim_ca=claim_ca)
    if result.already:
        print(f"{result.board}@{result.port}: already claimed as {result.node_id}; nothing done")
        return 0
    print(
        f"{result.board}@{result.port}: claimed as {result.node_id} (MAC {result.mac}) in "
        f"{result.seconds:.1f} s; MQTT host {result.mqtt_host or '(firmware default)'}"
    )
    return 0


def args_status(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--port",
        action="append",
        default=[],
        help="a board's serial port (repeat for several; default: every running virtual board)",
    )
    p.add_argument("--board", help="board profile of the boards on --port (e.g. esp32s3)")
    add_vboard_dir(p)


def do_status(args: argparse.Namespace) -> int:
    from rmbench import status, vboard
    from rmbench.board import VirtualBoard

    boards: list[Callable[[], Board]] = []
    if args.port:
        if args.board is None:
            raise UsageError("--board is needed with --port (the profile of those boards)")
        boards = [partial(open_board, port=port, board=args.board) for port in args.port]
    else:
        running = [b for b in vboard.list_boards(root=args.state_dir) if b.running]
        boards = [partial(VirtualBoard, info) for info in running]
        if not boards:
            raise UsageError(
                "no running virtual boards; give --port (and --board) for real boards"
            )
    failures = 0
    for make in boards:
        b = make()
        try:
            print(status.describe(status.status(b)))
        except BenchError as e:
            failures += 1
            print(f"{b.name}@{b.port}: status failed: {e.step or ''}: {e.reason}", file=sys.stderr)
        finally:
            b.close()
    return 2 if failures else 0


# --- fleet --------------------------------------------------------------------------------------


def args_fleet_claim(p: argparse.ArgumentParser) -> None:
    p.add_argument("--board", required=True, help="board profile of every board, e.g. esp32s3")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--port", action="append", help="a board's serial port (repeat)")
    which.add_argument("--vboards", type=int, metavar="N", help="start N virtual boards")
    p.add_argument(
        "--firmware",
        type=Path,
        metavar="FILE",
        help="flash this MicroPython image first (real ports; NVS is kept as rmbench flash does)",
    )
    p.add_argument(
        "--wifi-ssid",
        help=f"Wi-Fi the boards join (default for virtual boards: {DEFAULT_WIFI[0]})",
    )
    p.add_argument("--wifi-password", help="its password")
    p.add_argument(
        "--report",
        type=Path,
        default=Path("build/fleet-report.csv"),
        metavar="FILE",
        help="CSV report, or JSON if FILE ends in .json (default build/fleet-report.csv)",
    )
    p.add_argument("--workers", type=int, help="boards at once (default: all)")
    p.add_argument("--vboard-dir", type=Path, metavar="DIR", help="virtual boards' state folder")
    _service_arguments(p)


def do_fleet_claim(args: argparse.Namespace) -> int:
    from rmbench import fleet

    profile = get_profile(args.board)
    target, claim_ca = _service_target(args)
    ssid, password = args.wifi_ssid, args.wifi_password
    if args.vboards is not None and ssid is None:
        ssid, password = DEFAULT_WIFI
    config = ClaimConfig(
        target.base_url,
        ca=_read_input(target.ca_file, "--ca").decode() if target.ca_file else None,
        wifi_ssid=ssid if profile.wifi else None,
        wifi_password=password if profile.wifi else None,
    )
    firmware = None
    if args.firmware is not None:
        if args.vboards is not None:
            raise UsageError("--firmware flashes real boards; virtual boards need none")
        firmware = flash.inspect_image(_read_input(args.firmware, "firmware"), profile)
    if args.vboards is not None:
        if args.vboards < 1:
            raise UsageError(f"--vboards must be 1 or more, got {args.vboards}")
        members = [fleet.Member() for _ in range(args.vboards)]
    else:
        members = [fleet.Member(port) for port in args.port]
    plan = fleet.Plan(profile, target, config, firmware, claim_ca)
    with _fleet_display(len(members)) as progress:
        report = fleet.run(
            members, plan, workers=args.workers, root=args.vboard_dir, progress=progress
        )
    for o in report.outcomes:
        if o.result == "failed":
            print(f"{o.board}@{o.port}: failed at {o.step}: {o.error}")
        else:
            print(
                f"{o.board}@{o.port}: {o.result} as {o.node_id} (MAC {o.mac}, {o.seconds:.1f} s)"
            )
    report.write(args.report)
    ok = len(report.outcomes) - len(report.failed)
    print(
        f"fleet: {ok} of {len(report.outcomes)} claimed in {report.seconds:.1f} s; "
        f"report: {args.report}"
    )
    return 2 if report.failed else 0


@contextmanager
def _fleet_display(count: int) -> Iterator[Callable[[int, str], None] | None]:
    # One line per board with its current step, on stderr when it is a terminal.
    if not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn

    with Progress(
        SpinnerColumn(), TextColumn("{task.description}"), console=Console(stderr=True)
    ) as bar:
        tasks = [bar.add_task(f"board-{i + 1}: waiting", total=None) for i in range(count)]

        def update(index: int, step: str) -> None:
            bar.update(tasks[index], description=f"board-{index + 1}: {step}")

        yield update
