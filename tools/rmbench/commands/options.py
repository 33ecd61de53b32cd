"""Options several commands share, defined once: state folders and the claiming service."""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rmbench.errors import UsageError
from rmbench.service import SERVER_INFO
from rmbench.service.ca import SERVER_CA_CERT


def add_state_dir(p: argparse.ArgumentParser | Any, help: str, *, required: bool = False) -> None:
    """--state-dir DIR: the folder a command keeps its state in (a service's, the boards')."""
    p.add_argument("--state-dir", type=Path, metavar="DIR", required=required, help=help)


def add_vboard_dir(p: argparse.ArgumentParser | Any) -> None:
    """--state-dir DIR of the commands that find virtual boards (rmbench vboard, status)."""
    add_state_dir(
        p, "folder holding one folder per board (default build/vboards, or $RMBENCH_VBOARD_DIR)"
    )


def add_service_options(p: argparse.ArgumentParser | Any, *, token: str | None) -> None:
    """The claiming service a command talks to: --service-dir (a local `rmbench serve`, which
    gives URL and CA) or --service-url and --ca; --claim-ca; --token (help `token`, None for
    a command that takes no token)."""
    p.add_argument(
        "--service-dir",
        type=Path,
        metavar="DIR",
        help="the local service started with this --state-dir (gives its URL and CA)",
    )
    p.add_argument("--service-url", help="claiming service base URL (https://HOST:PORT)")
    p.add_argument(
        "--ca", type=Path, metavar="FILE", help="PEM of the CA that signs the service's TLS"
    )
    p.add_argument(
        "--claim-ca",
        type=Path,
        metavar="FILE",
        help="PEM of the CA that must sign device certificates (default: the one sent with it)",
    )
    if token is not None:
        p.add_argument("--token", help=token)


@dataclass(frozen=True)
class Service:
    """The claiming service the options name (None where they name nothing)."""

    url: str | None
    ca_file: Path | None
    claim_ca_file: Path | None
    token: str | None

    def ca_pem(self) -> str | None:
        """The service's TLS CA as PEM text."""
        return None if self.ca_file is None else read_text(self.ca_file, "--ca")

    def claim_ca_pem(self) -> str | None:
        """The pinned claim CA as PEM text."""
        return None if self.claim_ca_file is None else read_text(self.claim_ca_file, "--claim-ca")


def local_service_url(state_dir: Path) -> str:
    """The URL a local service (`rmbench serve --state-dir DIR`) is serving at.

    Raises:
        UsageError: the folder holds no started service.
    """
    hint = "start one: rmbench serve --state-dir DIR"
    for name in (SERVER_INFO, SERVER_CA_CERT):
        if not (state_dir / name).is_file():
            raise UsageError(f"no local service is running on {state_dir} (no {name})", hint=hint)
    try:
        return str(json.loads((state_dir / SERVER_INFO).read_text())["url"])
    except (OSError, ValueError, KeyError) as e:
        raise UsageError(f"{state_dir / SERVER_INFO} is unreadable ({e})", hint=hint) from e


def service_from_args(args: argparse.Namespace) -> Service:
    """The service the options name: --service-url and --ca win over --service-dir's."""
    url, ca_file = args.service_url, args.ca
    if args.service_dir is not None:
        url = url or local_service_url(args.service_dir)
        ca_file = ca_file or args.service_dir / SERVER_CA_CERT
    return Service(url, ca_file, args.claim_ca, getattr(args, "token", None))


def read_text(path: Path, what: str) -> str:
    """A text file an option names; UsageError naming the option when it cannot be read."""
    try:
        return path.read_text()
    except OSError as e:
        raise UsageError(f"{what} {path}: {e.strerror or e}") from e
