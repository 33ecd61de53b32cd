"""CLI handlers for the local claiming service: serve, user add, user nodes, register, fault."""

from __future__ import annotations

import argparse
import datetime
import json
from pathlib import Path

from rmbench.commands.options import add_state_dir, local_service_url
from rmbench.errors import UsageError
from rmbench.service import accounts, ca, client
from rmbench.service.faults import KINDS, PATHS
from rmbench.service.logic import (
    DEFAULT_CHALLENGE_TTL,
    DEFAULT_MAPPING_TTL,
    DEFAULT_MQTT_CRED_HOST,
    DEFAULT_MQTT_HOST,
    Settings,
)
from rmbench.service.store import DEFAULT_QUOTA


def _state_dir(p: argparse.ArgumentParser, required: bool = True) -> None:
    add_state_dir(p, "the service's folder: CAs, keys, database", required=required)


# --- serve --------------------------------------------------------------------------------------


def args_serve(p: argparse.ArgumentParser) -> None:
    _state_dir(p)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=0, help="port; 0 (default) picks a free one")
    p.add_argument(
        "--name",
        action="append",
        default=[],
        metavar="HOST_OR_IP",
        help="another name the server certificate covers (repeatable; the first is used in "
        "the URL)",
    )
    p.add_argument(
        "--insecure-http",
        action="store_true",
        help="serve plain HTTP (for clients that pin their own CA); loopback addresses only",
    )
    p.add_argument(
        "--faults",
        action="store_true",
        help="enable the loopback-only fault injection endpoint (rmbench fault)",
    )
    p.add_argument(
        "--mqtt-host",
        default=DEFAULT_MQTT_HOST,
        help=f"what GET /mqtt_host and send_mqtt_host return (default {DEFAULT_MQTT_HOST})",
    )
    p.add_argument(
        "--mqtt-cred-host",
        default=DEFAULT_MQTT_CRED_HOST,
        help="the mqtt_cred_host returned with mqtt_host ('' for none)",
    )
    p.add_argument(
        "--challenge-ttl",
        type=float,
        default=DEFAULT_CHALLENGE_TTL,
        metavar="SECONDS",
        help=f"self-claim challenge lifetime (default {DEFAULT_CHALLENGE_TTL:g})",
    )
    p.add_argument(
        "--mapping-ttl",
        type=float,
        default=DEFAULT_MAPPING_TTL,
        metavar="SECONDS",
        help="how long a secret-key mapping request and a node's mapping message wait for "
        f"each other (default {DEFAULT_MAPPING_TTL:g})",
    )
    p.add_argument(
        "--log-level",
        default="warning",
        choices=("critical", "error", "warning", "info", "debug"),
        help="server log detail on stderr (info adds one line per request)",
    )


def do_serve(args: argparse.Namespace) -> int:
    from rmbench.service.server import ServeOptions, serve  # uvicorn is slow to import

    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port must be 0..65535, got {args.port}")
    if args.challenge_ttl <= 0:
        raise UsageError(f"--challenge-ttl must be positive, got {args.challenge_ttl:g}")
    if args.mapping_ttl <= 0:
        raise UsageError(f"--mapping-ttl must be positive, got {args.mapping_ttl:g}")
    options = ServeOptions(
        state_dir=args.state_dir,
        host=args.host,
        port=args.port,
        names=tuple(args.name),
        insecure_http=args.insecure_http,
        faults=args.faults,
        settings=Settings(
            challenge_ttl=args.challenge_ttl,
            mapping_ttl=args.mapping_ttl,
            mqtt_host=args.mqtt_host,
            mqtt_cred_host=args.mqtt_cred_host or None,
        ),
        log_level=args.log_level,
    )
    # The base URL alone on stdout is the ready signal scripts and the harness wait for.
    serve(options, ready=lambda url: print(url, flush=True))
    return 0


# --- user add -----------------------------------------------------------------------------------


def args_user_add(p: argparse.ArgumentParser) -> None:
    _state_dir(p)
    p.add_argument("--token", required=True, help="the access token the user's clients send")
    p.add_argument(
        "--quota",
        type=int,
        default=DEFAULT_QUOTA,
        help=f"how many nodes the user may claim (default {DEFAULT_QUOTA})",
    )
    p.add_argument("--user-id", default=None, help="user id (default: a new random one)")


def do_user_add(args: argparse.Namespace) -> int:
    user_id = accounts.add_user(args.state_dir, args.token, args.quota, args.user_id)
    print(user_id)
    return 0


# --- user nodes ---------------------------------------------------------------------------------


def args_user_nodes(p: argparse.ArgumentParser) -> None:
    _state_dir(p)
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--token", help="the user's access token")
    who.add_argument("--user-id", help="or the user id")


def do_user_nodes(args: argparse.Namespace) -> int:
    # One line per node: its id first, then how and when it was mapped (UTC).
    for node in accounts.user_nodes(args.state_dir, token=args.token, user_id=args.user_id):
        when = datetime.datetime.fromtimestamp(node.mapped, datetime.UTC)
        print(f"{node.node_id} via={node.how} mapped={when:%Y-%m-%dT%H:%M:%SZ}")
    return 0


# --- register -----------------------------------------------------------------------------------


def args_register(p: argparse.ArgumentParser) -> None:
    _state_dir(p)
    p.add_argument("--mac", help="the board's base MAC, e.g. 7CDFA100033B or 7C:DF:A1:00:03:3B")
    p.add_argument(
        "--unique-id",
        metavar="HEX32",
        help="the board's eFuse OPTIONAL_UNIQUE_ID, 32 hex digits",
    )
    p.add_argument(
        "--port",
        help="instead, read both from the board on this port (device library deployed)",
    )
    p.add_argument("--board", help="the profile of the board on --port, e.g. esp32s3")


def board_identity(args: argparse.Namespace) -> tuple[str, bytes]:
    """The (MAC, unique id) to register, from whichever source the options name:
    --mac/--unique-id, or the board on --port (read by its own device library)."""
    if args.port is not None:
        if args.mac is not None or args.unique_id is not None:
            raise UsageError("give --port, or --mac and --unique-id, not both")
        from rmbench.register import registration_from_port

        return registration_from_port(args.port, args.board)
    if args.mac is None or args.unique_id is None:
        raise UsageError("give both --mac and --unique-id")
    return accounts.normalize_mac(args.mac), accounts.parse_unique_id(args.unique_id)


def do_register(args: argparse.Namespace) -> int:
    mac, unique_id = board_identity(args)
    reg = accounts.register_device(args.state_dir, mac, unique_id)
    note = " (replaced an earlier unique id)" if reg.replaced else ""
    print(f"registered {reg.mac}{note}")
    return 0


# --- fault --------------------------------------------------------------------------------------


def args_fault(p: argparse.ArgumentParser) -> None:
    _state_dir(p, required=False)
    p.add_argument("--url", help="server base URL (default: the one running on --state-dir)")
    p.add_argument("--ca", type=Path, help=f"server CA file (default: DIR/{ca.SERVER_CA_CERT})")
    p.add_argument("kind", choices=(*KINDS, "clear", "list"), help="fault kind, or clear/list")
    p.add_argument("--count", type=int, default=1, help="how many requests it applies to")
    p.add_argument("--path", choices=tuple(PATHS.values()), help="only requests to this path")
    p.add_argument("--seconds", type=float, help="delay: how long")
    p.add_argument("--status", type=int, help="status: 500, 502, 503 or 504 (default 503)")
    p.add_argument("--retry-after", type=int, help="status: Retry-After seconds")


def _fault_target(args: argparse.Namespace) -> tuple[str, Path | None]:
    state_dir: Path | None = args.state_dir
    url: str | None = args.url
    if url is None:
        if state_dir is None:
            raise UsageError("give --state-dir of a running server, or --url")
        url = local_service_url(state_dir)
    ca_file: Path | None = args.ca
    if ca_file is None and state_dir is not None:
        ca_file = state_dir / ca.SERVER_CA_CERT
    return url, ca_file


def do_fault(args: argparse.Namespace) -> int:
    url, ca_file = _fault_target(args)
    if args.kind == "clear":
        print(f"cleared {client.clear_faults(url, ca_file)} pending fault(s)")
        return 0
    if args.kind == "list":
        for fault in client.list_faults(url, ca_file):
            print(json.dumps(fault))
        return 0
    params: dict[str, object] = {}
    if args.seconds is not None:
        params["seconds"] = args.seconds
    if args.status is not None:
        params["status"] = args.status
    if args.retry_after is not None:
        params["retry_after"] = args.retry_after
    queued = client.add_fault(url, ca_file, args.kind, args.count, args.path, **params)
    print(f"queued {json.dumps(queued)}")
    return 0
