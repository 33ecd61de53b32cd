"""The field demo (`make demo-field`): a virtual board with no Wi-Fi, provisioned by the CLI.

A board shipped with the service's address and CA but no Wi-Fi opens its soft-AP and waits;
esp-rainmaker-cli's own provisioning client (in build/rainmaker-cli-venv, made on first use)
connects to it as it would to 192.168.4.1:80 and gives it the bench Wi-Fi; the board joins and
claims itself. Two stories:
- a fresh board (default): the client's provision_device gives it a user id and a secret key
  (cloud_user_assoc), which the board keeps for the MQTT step (its mapping message), then the
  Wi-Fi; the board self-claims;
- a board claimed first (`claimed_first`, at the bench over the bench Wi-Fi), then shipped
  without Wi-Fi: the `esp-rainmaker-cli provision` command, logged in to the local service as a
  user, maps it by challenge-response (the board signs the service's challenge with its
  claimed key; no MQTT), then gives it the Wi-Fi. The CLI speaks to its cloud over HTTPS only
  against its bundled root CA, so here the service (and the board's claim) is plain HTTP on
  loopback.
Everything it starts is stopped at the end.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rmbench import BUILD_DIR
from rmbench.board import VirtualBoard
from rmbench.boardsim import DEFAULT_WIFI
from rmbench.deploy import ClaimConfig, deploy
from rmbench.errors import BenchError
from rmbench.profiles import get_profile
from rmbench.statusline import StatusLine

DEFAULT_WORKDIR = BUILD_DIR / "demo-field"
_TIMEOUT_S = 180.0


@dataclass(frozen=True)
class FieldDemoResult:
    """What the field demo showed."""

    board: str
    mac: str
    soft_ap: str  # the soft-AP's SSID
    address: str  # where its 192.168.4.1:80 is on this machine
    pop: str
    node_id: str
    claimed_first: bool
    mapping: str  # "challenge_response" (mapped) or "secret_key" (kept for the MQTT step)
    user_id: str
    cli_lines: tuple[str, ...]  # what the CLI printed that tells the story
    apply_ms: int  # the board's CmdApplyConfig to stored credentials
    steps: tuple[str, ...]


def _driver(python: Path, address: str, env: dict[str, str] | None, **args: Any) -> Any:
    from rmbench.rainmaker_cli import FIELD_DRIVER

    proc = subprocess.run(
        [str(python), str(FIELD_DRIVER), json.dumps({"address": address, **args})],
        input="\n",  # the provision command's "connect to the hotspot, press Enter"
        capture_output=True,
        text=True,
        timeout=_TIMEOUT_S,
        env=env,
        check=False,
    )
    if proc.returncode != 0:
        raise BenchError(f"the CLI's client failed: {proc.stderr[-2000:]}", step="provision")
    return json.loads(proc.stdout.strip().splitlines()[-1])


_TOLD = (
    "Auto-detected Security Scheme",
    "Establishing session",
    "challenge-response",
    "Sending user information",
    "Sending Wi-Fi credentials",
    "Applying Wi-Fi config",
    "WiFi state: Connected",
    "Wi-Fi Provisioning Successful",
    "added to your account",
)


def run_field_demo(
    board: str = "esp32s3",
    *,
    claimed_first: bool = False,
    workdir: Path = DEFAULT_WORKDIR,
    emit: Callable[[str], None] | None = None,
    on_status: Callable[[StatusLine], None] | None = None,
) -> FieldDemoResult:
    """Run the field demo on a fresh virtual board of profile `board` (one that self-claims).

    Raises:
        BenchError: a step failed (the board's output is in workdir/console.log).
    """
    from rmbench.rainmaker_cli import ensure_cli, jwt, write_profile
    from rmbench.service.harness import running_service

    say = emit or (lambda _line: None)
    profile = get_profile(board)
    if not (profile.self_claim and profile.wifi):
        raise BenchError(f"the field demo needs a board that self-claims; {board} does not")
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    say("esp-rainmaker-cli in build/rainmaker-cli-venv (made the first time: minutes)")
    python = ensure_cli().with_name("python")
    say("starting the local claiming service" + (" (plain HTTP)" if claimed_first else ""))
    with running_service(workdir / "service", insecure_http=claimed_first) as svc:
        user_id = "demo-user"
        env = None
        if claimed_first:
            token = jwt({"exp": int(time.time()) + 3600, "custom:user_id": user_id})
            svc.add_user(token, quota=5, user_id=user_id)
            config_dir = workdir / "cli-config"
            write_profile(config_dir, svc.base_url, token)
            env = {"RM_USER_CONFIG_DIR": str(config_dir), "HOME": str(workdir)}
            say(f"  user {user_id}, logged in to it in {config_dir}")
        vb = VirtualBoard.start(
            profile,
            name=f"field-{profile.name}",
            root=workdir / "vboards",
            log=workdir / "console.log",
        )
        try:
            address = vb.info.softap
            say(f"a virtual {profile.name}, MAC {vb.sim.mac}; its 192.168.4.1:80 is {address}")
            if claimed_first:
                base = ClaimConfig(
                    service_url=svc.base_url,
                    allow_insecure_http=True,
                    backoff_base_s=1,
                    backoff_cap_s=10,
                )
            else:
                base = ClaimConfig(
                    service_url=svc.base_url, ca=svc.server_ca_pem, backoff_base_s=1
                )
            deploy(vb, config=None)  # the library, to read the eFuse id for the service
            info = vb.eval("__import__('rmclaim').device_info(True)")
            svc.register(info["mac"], bytes.fromhex(info["unique_id"]))
            if claimed_first:
                say("at the bench: claimed over the bench Wi-Fi, then shipped without it")
                wifi = {"wifi_ssid": DEFAULT_WIFI[0], "wifi_password": DEFAULT_WIFI[1]}
                deploy(vb, config={**base.as_dict(), **wifi})
                since = vb.reset()
                claimed = vb.watch_status(since, timeout=_TIMEOUT_S, on_line=on_status)[-1]
                say(f"  claimed as node {claimed.fields['node_id']}")
            say("deploying a config with the service but no Wi-Fi; resetting")
            deploy(vb, config=base)
            since = vb.reset()
            wait = vb.expect_status("provisioning", "wait", since=since, timeout=_TIMEOUT_S)
            if on_status is not None:
                for line in vb.status_lines(since):
                    on_status(line)
            ssid, pop = wait.fields["ssid"], wait.fields["pop"]
            say(f"the board's soft-AP {ssid} is open, pop {pop} (what its label would say)")
            if claimed_first:
                say("esp-rainmaker-cli provision --transport softap --pop " + pop)
                got = _driver(
                    python,
                    address,
                    env,
                    scenario="command",
                    pop=pop,
                    ssid=DEFAULT_WIFI[0],
                    passphrase=DEFAULT_WIFI[1],
                )
            else:
                say("esp-rainmaker-cli's provision_device, with a user id and a secret key")
                got = _driver(
                    python,
                    address,
                    None,
                    scenario="device",
                    pop=pop,
                    user_id=user_id,
                    secret_key=str(uuid.uuid4()),
                    ssid=DEFAULT_WIFI[0],
                    passphrase=DEFAULT_WIFI[1],
                )
            told = tuple(
                line.strip()
                for line in got["log"].splitlines()
                if any(key in line for key in _TOLD)
            )
            seen = vb.status_lines(since)
            lines = vb.watch_status(since, timeout=_TIMEOUT_S)
            if on_status is not None:
                for line in lines[len(seen) :]:
                    on_status(line)
            ok = next(s for s in lines if (s.step, s.outcome) == ("provisioning", "ok"))
            node_id = lines[-1].fields["node_id"]
            if claimed_first:
                if svc.user_nodes(token) != [node_id]:
                    raise BenchError(f"node {node_id} is not mapped to {user_id}", step="map")
                mapping = "challenge_response"
            else:
                kept = vb.exec("from rmprov import saved\nprint(saved.mapping()[0])").strip()
                if kept != user_id:
                    raise BenchError(f"the board kept user {kept!r}", step="user mapping")
                mapping = "secret_key"
            return FieldDemoResult(
                board=profile.name,
                mac=vb.sim.mac,
                soft_ap=ssid,
                address=address,
                pop=pop,
                node_id=node_id,
                claimed_first=claimed_first,
                mapping=mapping,
                user_id=user_id,
                cli_lines=told,
                apply_ms=int(ok.fields["apply_ms"]),
                steps=tuple(f"{s.step}:{s.outcome}" for s in lines),
            )
        finally:
            say("stopping the board and the service")
            vb.close()
