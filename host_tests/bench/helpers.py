"""What bench tests share: a board's known starting state, boots, credentials, LED patterns."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from rmbench.board import Board, VirtualBoard
from rmbench.boardsim import DEFAULT_WIFI
from rmbench.deploy import deploy
from rmbench.service.harness import RunningService
from rmbench.statusline import StatusLine

# Boots on the Unix port take about a second; a real board claims in tens of seconds.
VIRTUAL_TIMEOUT = 30.0
REAL_TIMEOUT = 300.0


@dataclass
class BenchSetup:
    """The board under test and the service, with the steps most tests take."""

    board: Board
    service: RunningService
    service_url: str  # as the board reaches the service
    wifi: tuple[str | None, str | None]

    @property
    def timeout(self) -> float:
        return VIRTUAL_TIMEOUT if self.board.has("virtual") else REAL_TIMEOUT

    def config(self, **overrides: Any) -> dict[str, Any]:
        """The claim config for this bench: the service, its CA, Wi-Fi, quick retries."""
        ssid, password = self.wifi
        cfg: dict[str, Any] = {
            "service_url": self.service_url,
            "ca": self.service.server_ca_pem,
            "wifi_ssid": ssid or DEFAULT_WIFI[0],
            "wifi_password": password or DEFAULT_WIFI[1],
            "backoff_base_s": 0.2,
            "backoff_cap_s": 1,
            "timeout_s": 5,
            # A virtual board's Wi-Fi answers within a second: no need to wait the default 15 s
            # before saying why a join failed.
            "wifi_timeout_s": 2 if self.board.has("virtual") else None,
        }
        cfg.update(overrides)
        return {k: v for k, v in cfg.items() if v is not None}

    def prepare(
        self,
        config: dict[str, Any] | None = None,
        *,
        register: bool = True,
        forget: bool = True,
    ) -> None:
        """Deploy (unchanged files skipped), forget any identity, register the board."""
        deploy(self.board, config=config if config is not None else self.config())
        if forget:
            self.board.exec("import rmclaim\nrmclaim.forget()")
        if register:
            info = self.board.eval("__import__('rmclaim').device_info(True)")
            if "unique_id" in info:
                self.service.register(info["mac"], bytes.fromhex(info["unique_id"]))

    def boot(self, *, until: tuple[str, str] = ("claimed", "ok")) -> list[StatusLine]:
        """Hard-reset the board and follow its status lines until `until`."""
        since = self.board.reset()
        return self.board.watch_status(since, until=until, timeout=self.timeout)

    def credentials(self) -> dict[str, Any]:
        """The identity stored on the board (rmclaim.load_credentials()), or {} if none."""
        out = self.board.exec(
            "import rmclaim\nc = rmclaim.load_credentials()\n"
            "print(repr(None if c is None else {'node_id': c.node_id, 'cert': c.cert_pem, "
            "'key': c.key_pem}))"
        )
        value = ast.literal_eval(out.strip())
        return dict(value) if value else {}


def steps(lines: list[StatusLine]) -> list[str]:
    return [f"{s.step}:{s.outcome}" for s in lines]


def check_identity(creds: dict[str, Any], node_id: str) -> x509.Certificate:
    """The stored certificate is for the stored key and names `node_id`."""
    pem = creds["cert"]
    first = pem[: pem.index("-----END CERTIFICATE-----") + 25].encode()
    cert = x509.load_pem_x509_certificate(first)
    key = serialization.load_pem_private_key(creds["key"].encode(), password=None)
    assert cert.public_key().public_numbers() == key.public_key().public_numbers()  # type: ignore[union-attr]
    cn = cert.subject.get_attributes_for_oid(x509.oid.NameOID.COMMON_NAME)[0].value
    assert cn == node_id == creds["node_id"]
    return cert


def led_segments(board: VirtualBoard, since_ms: int) -> list[tuple[int, int]]:
    """(level, duration ms) of the status LED from `since_ms` (the last one open-ended: -1)."""
    pin = str(board.profile.led_pin)
    rows: list[tuple[int, int]] = []
    for ms, p, level in board.pin_log():
        # An RGB LED's change of colour is a write but no change of level: merged.
        if p == pin and ms >= since_ms and (not rows or rows[-1][1] != level):
            rows.append((ms, level))
    out = []
    for (ms, level), nxt in zip(rows, [*rows[1:], None], strict=True):
        out.append((level, nxt[0] - ms if nxt else -1))
    return out


def flash_groups(segments: list[tuple[int, int]], gap_ms: int = 600) -> list[int]:
    """Counts of short on-pulses (< 400 ms) between dark gaps of at least `gap_ms`."""
    groups: list[int] = []
    count = 0
    for level, ms in segments:
        if level == 1 and 0 <= ms < 400:
            count += 1
        elif level == 0 and (ms >= gap_ms or ms < 0):
            if count:
                groups.append(count)
            count = 0
    if count:
        groups.append(count)
    return groups
