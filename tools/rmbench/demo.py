"""The demo (`make demo`): a virtual board claims itself on first boot against the local service.

Starts the local claiming service and a virtual board, registers the board (self-claim: its
eFuse unique id, read from the board; otherwise a user with an access token), deploys the
firmware, resets the board and follows its status lines until it is claimed, reads its
certificate back, reboots it to show that a claimed board does not claim again, and stops
everything it started.
"""

from __future__ import annotations

import datetime
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rmbench import BUILD_DIR
from rmbench.board import VirtualBoard
from rmbench.boardsim import DEFAULT_WIFI
from rmbench.deploy import ClaimConfig, deploy
from rmbench.errors import DeviceError
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
    from rmbench.service.harness import running_service

    say = emit or (lambda _line: None)
    profile = get_profile(board)
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    mode = "self" if profile.self_claim and profile.wifi else "token"
    say("starting the local claiming service")
    with running_service(workdir / "service") as svc:
        say(f"  {svc.base_url} (CA {svc.server_ca_file})")
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
                svc.add_user(DEMO_TOKEN, quota=5)
                say(
                    f"{profile.name} cannot self-claim: added a user whose access token "
                    "the board claims with"
                )
            say("resetting the board: first boot")
            seen: dict[str, float] = {}

            def note(line: StatusLine) -> None:
                seen.setdefault(line.step, time.monotonic())
                if on_status is not None:
                    on_status(line)

            t0 = time.monotonic()
            since = vb.reset()
            first = vb.watch_status(since, timeout=_CLAIM_TIMEOUT_S, on_line=note)
            seconds = seen.get("store", seen["claimed"]) - t0
            claimed = first[-1]
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
            say("rebooting: a claimed board must not claim again")
            since = vb.reset()
            second = vb.watch_status(since, timeout=60, on_line=on_status)
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
                second_boot_stored=second[-1].fields.get("stored") == "yes",
                second_boot_steps=tuple(s.step for s in second),
            )
        finally:
            say("stopping the board and the service")
            vb.close()
