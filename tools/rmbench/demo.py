"""The demo (`make demo`): a virtual board claims itself on first boot against the local service,
then connects to the bench MQTT broker with its new certificate and maps its user.

Starts the local claiming service, the bench MQTT broker and a virtual board, registers the
board (self-claim: its eFuse unique id, read from the board; otherwise the user's access token),
deploys the firmware, stores a user id and secret key where field onboarding leaves them,
resets the board and follows its status lines until it is claimed, connected, its node config
published and its mapping request acknowledged; the user's side of the mapping (PUT
user/nodes/mapping, as esp-rainmaker-cli sends it) is confirmed by that request. It reads the
certificate back, reboots the board to show that a claimed board neither claims nor maps again,
and stops everything it started.
"""

from __future__ import annotations

import datetime
import json
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rmbench import BUILD_DIR
from rmbench.board import VirtualBoard
from rmbench.boardsim import DEFAULT_WIFI
from rmbench.deploy import ClaimConfig, deploy
from rmbench.errors import DeviceError, ServiceError
from rmbench.profiles import get_profile
from rmbench.statusline import StatusLine

DEFAULT_WORKDIR = BUILD_DIR / "demo"
DEMO_TOKEN = "demo-user-token"
_CLAIM_TIMEOUT_S = 180.0


@dataclass(frozen=True)
class DemoResult:
    """What the demo showed."""

    board: str
    port: str
    mac: str
    mode: str  # "self" | "token"
    node_id: str
    subject: str
    issuer: str
    not_after: datetime.datetime
    claim_seconds: float  # reset to the credentials stored ("store" line), host clock
    board_ms: int  # the board's own count, main.py start to claimed
    claim_steps: tuple[str, ...]  # the steps the first boot went through
    second_boot_stored: bool  # the reboot found the identity in NVS
    second_boot_steps: tuple[str, ...]
    mqtt_url: str  # the broker the board connected to
    config_bytes: int  # the node config it published
    user_id: str  # the user the node is mapped to
    mapping_status: str  # the user's mapping request, as the service reports it
    user_nodes: tuple[str, ...]  # GET user/nodes for that user
    mapping_requests: int  # mapping requests the broker received from the node (both boots)


def _certificate(pem: str) -> tuple[str, str, datetime.datetime]:
    from cryptography import x509

    first = pem[: pem.index("-----END CERTIFICATE-----") + len("-----END CERTIFICATE-----")]
    cert = x509.load_pem_x509_certificate(first.encode())
    return cert.subject.rfc4514_string(), cert.issuer.rfc4514_string(), cert.not_valid_after_utc


def run_demo(
    board: str = "esp32s3",
    *,
    workdir: Path = DEFAULT_WORKDIR,
    emit: Callable[[str], None] | None = None,
    on_status: Callable[[StatusLine], None] | None = None,
) -> DemoResult:
    """Run the demo on a fresh virtual board of profile `board`.

    Args:
        board: a board profile; self-claim capable boards self-claim, the others use a token.
        workdir: the demo's folder (emptied first): service state, board state, console log.
        emit: called with each narrative line ("starting the service...").
        on_status: called with each status line the board prints, as it arrives.
    Returns:
        DemoResult: the identity the board got and how the two boots went.
    Raises:
        BenchError: a step failed (the board's output is in workdir/console.log).
    """
    from rmbench.broker.harness import running_broker
    from rmbench.service.harness import running_service

    say = emit or (lambda _line: None)
    profile = get_profile(board)
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    mode = "self" if profile.self_claim and profile.wifi else "token"
    say("starting the local claiming service")
    with (
        running_service(workdir / "service") as svc,
        running_broker(workdir / "broker", svc.state_dir) as broker,
    ):
        say(f"  {svc.base_url} (CA {svc.server_ca_file})")
        say(f"started the bench MQTT broker: {broker.url} (client certificates from the claim CA)")
        say(f"starting a virtual {profile.name} ({profile.description})")
        vb = VirtualBoard.start(
            profile,
            name=f"demo-{profile.name}",
            root=workdir / "vboards",
            log=workdir / "console.log",
        )
        try:
            say(f"  serial port {vb.port}, MAC {vb.sim.mac}")
            config = ClaimConfig(
                service_url=svc.base_url,
                ca=svc.server_ca_pem,
                wifi_ssid=DEFAULT_WIFI[0],
                wifi_password=DEFAULT_WIFI[1],
                access_token=DEMO_TOKEN if mode == "token" else None,
                backoff_base_s=1,
                backoff_cap_s=10,
                mqtt_ca=broker.server_ca_pem,
                mqtt_host="localhost",
                mqtt_port=broker.port,
            )
            say("deploying lib/ (compiled), firmware/ and /rmclaim.json with mpremote")
            result = deploy(vb, config=config)
            say(
                f"  .mpy v{result.mpy_version}: {result.written} files written "
                f"in {result.seconds:.1f} s"
            )
            if mode == "self":
                info = vb.eval("__import__('rmclaim').device_info(True)")
                svc.register(info["mac"], bytes.fromhex(info["unique_id"]))
                say(f"registered {info['mac']} with its eFuse unique id {info['unique_id']}")
            else:
                say(
                    f"{profile.name} cannot self-claim: the demo user's access token is what "
                    "the board claims with"
                )
            user_id = svc.add_user(DEMO_TOKEN, quota=5)
            secret = str(uuid.uuid4())
            vb.exec(
                "import rmclaim\nn = rmclaim.nvs('rmclaim_map')\n"
                f"n.set_blob('user_id', {user_id!r})\nn.set_blob('secret_key', {secret!r})"
            )
            say(
                f"stored user id {user_id} and a secret key in the board's NVS (rmclaim_map), "
                "as field onboarding leaves them"
            )
            say("resetting the board: first boot")
            seen: dict[str, float] = {}

            def note(line: StatusLine) -> None:
                seen.setdefault(line.step, time.monotonic())
                if on_status is not None:
                    on_status(line)

            t0 = time.monotonic()
            since = vb.reset()
            first = vb.watch_status(
                since, until=("mapping", "ok"), timeout=_CLAIM_TIMEOUT_S, on_line=note
            )
            seconds = seen.get("store", seen["claimed"]) - t0
            claimed = next(s for s in first if s.step == "claimed")
            published = next(s for s in first if s.step == "nodeconfig")
            node = claimed.fields.get("node_id", "")
            say(f"the user asks to map {node} with the secret key (PUT user/nodes/mapping)")
            request_id = _user_api(
                svc.base_url,
                svc.server_ca_file,
                "PUT",
                "/v1/user/nodes/mapping",
                {"node_id": node, "secret_key": secret, "operation": "add"},
            )["request_id"]
            status = _user_api(
                svc.base_url,
                svc.server_ca_file,
                "GET",
                f"/v1/user/nodes/mapping?request_id={request_id}",
            )["request_status"]
            nodes = _user_api(svc.base_url, svc.server_ca_file, "GET", "/v1/user/nodes")
            out = vb.exec(
                "import rmclaim\nc = rmclaim.load_credentials()\nprint(c.node_id)\n"
                "print(c.cert_pem)"
            )
            node_id, _, cert_pem = out.partition("\n")
            if node_id.strip() != claimed.fields.get("node_id"):
                raise DeviceError(
                    f"stored node id {node_id.strip()!r} is not the claimed "
                    f"{claimed.fields.get('node_id')!r}",
                    board=vb.name,
                    step="read credentials",
                )
            subject, issuer, not_after = _certificate(cert_pem)
            say("rebooting: a claimed board must not claim again, nor map again")
            since = vb.reset()
            second = vb.watch_status(
                since, until=("nodeconfig", "ok"), timeout=60, on_line=on_status
            )
            time.sleep(0.5)  # a mapping request would follow at once
            later = vb.status_lines(since)[len(second) :]
            for line in later:
                if on_status is not None:
                    on_status(line)
            second += later
            return DemoResult(
                board=profile.name,
                port=vb.port,
                mac=vb.sim.mac,
                mode=mode,
                node_id=node_id.strip(),
                subject=subject,
                issuer=issuer,
                not_after=not_after,
                claim_seconds=seconds,
                board_ms=claimed.ms or 0,
                claim_steps=tuple(s.step for s in first),
                second_boot_stored=any(
                    s.step == "claimed" and s.fields.get("stored") == "yes" for s in second
                ),
                second_boot_steps=tuple(s.step for s in second),
                mqtt_url=broker.url,
                config_bytes=int(published.fields.get("bytes", 0)),
                user_id=user_id,
                mapping_status=str(status),
                user_nodes=tuple(str(n) for n in _listed(nodes["nodes"])),
                mapping_requests=len(broker.published(topic=f"node/{node}/user/mapping")),
            )
        finally:
            say("stopping the board, the broker and the service")
            vb.close()


def _user_api(
    base_url: str, ca_file: Path, method: str, path: str, body: object = None
) -> dict[str, object]:
    """A call of the service's user API as the demo user (esp-rainmaker-cli's calls)."""
    from rmbench.service import client

    data = None if body is None else json.dumps(body).encode()
    headers = {"Authorization": DEMO_TOKEN}
    r = client.request(base_url, method, path, ca_file=ca_file, body=data, headers=headers)
    if r.status != 200:
        raise ServiceError(f"{method} {path}: {r.status} {r.body[:200]!r}", step="mapping")
    reply: dict[str, object] = r.json()
    return reply


def _listed(value: object) -> list[object]:
    if not isinstance(value, list):
        raise ServiceError(f"GET /v1/user/nodes: nodes is not a list: {value!r}", step="mapping")
    return value
