"""CLI handler for `rmbench deploy`, and the /rmclaim.json options of commands that write it."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from rmbench.board import open_board
from rmbench.commands.options import add_service_options, read_text, service_from_args
from rmbench.deploy import ClaimConfig, DeployProgress, deploy
from rmbench.errors import UsageError
from rmbench.profiles import get_profile, led_spec


def _text(path: Path | None, what: str) -> str | None:
    return None if path is None else read_text(path, what)


def add_config_arguments(p: argparse.ArgumentParser) -> None:
    """The /rmclaim.json options (shared with other commands that write the config)."""
    g = p.add_argument_group("claim config (/rmclaim.json)")
    g.add_argument("--config", type=Path, metavar="FILE", help="start from this JSON file")
    add_service_options(g, token="a user's access token, for token claims")
    g.add_argument("--mode", choices=("self", "token", "auto"), help="claim mode (default auto)")
    g.add_argument(
        "--wifi-ssid",
        help="Wi-Fi network the board joins (without it, the board provisions itself in the "
        "field: soft-AP and esp-rainmaker-cli provision or the phone app)",
    )
    g.add_argument("--wifi-password", help="its password")
    g.add_argument("--prov-pop", metavar="POP", help="field provisioning's proof of possession")
    g.add_argument(
        "--prov-sec",
        type=int,
        choices=(0, 1),
        help="field provisioning's security: 1 (default), 0 on a bench (no pop, no encryption)",
    )
    g.add_argument(
        "--prov-timeout", type=float, metavar="S", help="how long the soft-AP stays open (s)"
    )
    g.add_argument("--prov-name", metavar="SSID", help="the soft-AP's SSID (default PROV_xxxxxx)")
    g.add_argument("--insecure-http", action="store_true", help="allow http:// (bench only)")
    g.add_argument("--max-attempts", type=int, help="claim rounds before giving up (0: never)")
    g.add_argument("--backoff-base", type=float, metavar="S", help="first retry delay (s)")
    g.add_argument("--backoff-cap", type=float, metavar="S", help="longest retry delay (s)")
    g.add_argument("--timeout", type=float, metavar="S", help="per-request timeout (s)")
    g.add_argument("--matter", action="store_true", help="claim a Matter certificate")
    g.add_argument(
        "--wifi-timeout", type=float, metavar="S", help="how long a Wi-Fi join may take (s)"
    )
    g.add_argument(
        "--status-led",
        metavar="LED",
        help="the status LED: rgb:PIN (WS2812), gpio:PIN, none, or a board revision of the "
        "profile such as devkitc-1-v1.1 (default: the board's DevKit LED)",
    )
    g.add_argument(
        "--mqtt-ca",
        type=Path,
        metavar="FILE",
        help="PEM of the CA of the MQTT broker's certificate (AmazonRootCA1.pem for RainMaker's "
        "AWS IoT broker); without it the board opens no MQTT connection",
    )
    g.add_argument("--mqtt-host", help="MQTT broker host (default: the one the claim stored)")
    g.add_argument("--mqtt-port", type=int, metavar="N", help="MQTT broker port (default 8883)")


def config_from_args(args: argparse.Namespace) -> ClaimConfig:
    """The ClaimConfig the config options describe (options override --config/--service-dir)."""
    base: dict[str, Any] = {}
    if args.config is not None:
        try:
            base = json.loads(_text(args.config, "--config") or "{}")
        except ValueError as e:
            raise UsageError(f"--config {args.config}: not JSON: {e}") from e
        if not isinstance(base, dict):
            raise UsageError(f"--config {args.config}: wanted a JSON object")
    service = service_from_args(args)
    given = {
        "service_url": service.url,
        "ca": service.ca_pem(),
        "claim_ca": service.claim_ca_pem(),
        "mode": args.mode,
        "access_token": service.token,
        "wifi_ssid": args.wifi_ssid,
        "wifi_password": args.wifi_password,
        "allow_insecure_http": True if args.insecure_http else None,
        "max_attempts": args.max_attempts,
        "backoff_base_s": args.backoff_base,
        "backoff_cap_s": args.backoff_cap,
        "timeout_s": args.timeout,
        "matter": True if args.matter else None,
        "wifi_timeout_s": args.wifi_timeout,
        "prov_pop": args.prov_pop,
        "prov_sec": args.prov_sec,
        "prov_timeout_s": args.prov_timeout,
        "prov_name": args.prov_name,
        "status_led": None
        if args.status_led is None
        else led_spec(get_profile(args.board), args.status_led),
        "mqtt_ca": _text(args.mqtt_ca, "--mqtt-ca"),
        "mqtt_host": args.mqtt_host,
        "mqtt_port": args.mqtt_port,
    }
    base.update({k: v for k, v in given.items() if v is not None})
    if "service_url" not in base:
        raise UsageError(
            "no service URL", hint="give --service-url URL --ca FILE, or --service-dir DIR"
        )
    try:
        return ClaimConfig(**base)
    except TypeError as e:
        raise UsageError(f"config: {e}") from e


def args_deploy(p: argparse.ArgumentParser) -> None:
    p.add_argument("--port", required=True, help="serial port of the board (or /dev/pts/N)")
    p.add_argument("--board", required=True, help="board profile, e.g. esp32s3 (rmbench boards)")
    p.add_argument("--keep-config", action="store_true", help="leave the board's /rmclaim.json")
    p.add_argument("--force", action="store_true", help="write files even when unchanged")
    p.add_argument("--reset", action="store_true", help="hard-reset the board afterwards")
    add_config_arguments(p)


def do_deploy(args: argparse.Namespace) -> int:
    config = None if args.keep_config else config_from_args(args)
    if config is not None:
        from rmbench import provision

        try:
            provision.validate(config, get_profile(args.board))  # before the board is opened
        except UsageError as e:
            raise e.with_context(board=args.board, port=args.port, step="validate") from e

    def show(p: DeployProgress) -> None:
        if p.step in ("write", "remove"):
            print(f"  {p.step:6} {p.path}", file=sys.stderr)

    board = open_board(port=args.port, board=args.board)
    try:
        result = deploy(board, config=config, force=args.force, progress=show)
        if args.reset:
            board.reset()
    finally:
        board.close()
    print(
        f"deployed to {board.name} on {result.port} (.mpy v{result.mpy_version}): "
        f"{result.written} written, {result.unchanged} unchanged, {result.removed} removed "
        f"in {result.seconds:.1f} s" + ("; reset" if args.reset else "")
    )
    return 0
