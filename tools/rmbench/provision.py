"""Provisioning: the claim config (/rmclaim.json) a board reads on boot, validated before writing.

The config is a deploy.ClaimConfig (the options of `rmbench deploy`). The rules are the device
library's own: `rmclaim.config.load` runs on the MicroPython Unix port over the config before
anything is written, so a config the board would refuse never reaches it. The host adds what the
board cannot know: the Wi-Fi limits of the radio and whether this board can self-claim.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from typing import Any

from rmbench.board import Board
from rmbench.deploy import CONFIG_PATH, ClaimConfig, DeployResult, config_json, deploy
from rmbench.errors import BenchError, BoardError, UsageError
from rmbench.profiles import BoardProfile

_VALIDATE = """
import json, sys
from rmclaim import config
from rmclaim.errors import ConfigError
try:
    config.load(json.loads(sys.stdin.read()))
    print(json.dumps({"ok": True}))
except ConfigError as e:
    print(json.dumps({"error": str(e)}))
"""


def _check_wifi(p: ClaimConfig, profile: BoardProfile) -> None:
    # No Wi-Fi in the config: a board with Wi-Fi provisions itself in the field (lib/rmprov).
    if p.wifi_ssid is None and p.wifi_password is None:
        return
    if p.wifi_ssid is None:
        raise UsageError("a Wi-Fi password without an SSID: set the Wi-Fi SSID too")
    if not profile.wifi:
        raise UsageError(f"board {profile.name} has no Wi-Fi; leave out the Wi-Fi settings")
    ssid = p.wifi_ssid or ""
    if not 1 <= len(ssid.encode()) <= 32:
        raise UsageError(f"Wi-Fi SSID must be 1 to 32 bytes, got {len(ssid.encode())}")
    password = p.wifi_password or ""
    hex64 = len(password) == 64 and all(c in "0123456789abcdefABCDEF" for c in password)
    if password and not hex64 and not (8 <= len(password) <= 63 and password.isascii()):
        raise UsageError(
            "Wi-Fi password must be empty (open network), 8 to 63 ASCII characters, "
            f"or 64 hex digits; got {len(password)} characters"
        )


def validate(p: ClaimConfig, profile: BoardProfile) -> dict[str, Any]:
    """Check a claim config for a board and return its /rmclaim.json object.

    Raises:
        UsageError: with the device library's own message (it names the key), or the host's
            for Wi-Fi limits and claim modes this board cannot use.
    """
    from rmbench.micropython import micropython

    if p.mode == "self" and not profile.self_claim:
        raise UsageError(
            f"board {profile.name} cannot self-claim; use mode token (with an access token) "
            "or host-assisted claiming (rmbench claim)"
        )
    _check_wifi(p, profile)
    config = p.as_dict()
    out = micropython().run(_VALIDATE, stdin=json.dumps(config), heap="256K")
    verdict = json.loads(out.strip().splitlines()[-1])
    if "error" in verdict:
        raise UsageError(str(verdict["error"]))
    return config


@dataclass(frozen=True)
class ProvisionResult:
    """What `provision` wrote."""

    board: str
    port: str
    path: str
    keys: tuple[str, ...]  # the config keys written (the values may be secrets)
    seconds: float


_REPLACE = """
import os
try:
    os.rename(%(tmp)r, %(path)r)
except OSError:
    os.remove(%(path)r)
    os.rename(%(tmp)r, %(path)r)
"""


def provision(board: Board, p: ClaimConfig) -> ProvisionResult:
    """Validate a claim config for this board, then write it as /rmclaim.json.

    The file is written next to the old one and renamed over it, then read back by hash, so a
    board never holds half a config. Nothing is written when validation fails.

    Raises:
        UsageError: the config is refused (the message names the key and the fix).
        BoardError, DeviceError: the board could not be written.
    """
    t0 = time.monotonic()
    try:
        config = validate(p, board.profile)
    except UsageError as e:
        raise e.with_context(board=board.name, port=board.port, step="validate") from e
    data = config_json(config)
    tmp = CONFIG_PATH + ".tmp"
    try:
        board.fs_write(tmp, data)
        board.exec(_REPLACE % {"tmp": tmp, "path": CONFIG_PATH})
        if board.fs_sha256(CONFIG_PATH) != hashlib.sha256(data).digest():
            raise BoardError(f"{CONFIG_PATH} reads back different from what was written")
    except BenchError as e:
        raise e.with_context(board=board.name, port=board.port, step="write config") from e
    return ProvisionResult(
        board.name, board.port, CONFIG_PATH, tuple(sorted(config)), time.monotonic() - t0
    )


def wait_for_repl(board: Board, timeout: float = 30.0) -> None:
    """Wait until the board answers in its raw REPL (after a flash it boots, and on its first
    boot MicroPython formats its filesystem first).

    Raises:
        BoardError: no answer within `timeout` (the last error is quoted).
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            board.eval("1")
            return
        except BoardError as e:
            board.close()
            if time.monotonic() > deadline:
                raise BoardError(
                    f"no MicroPython REPL after {timeout:g} s: {e.reason}",
                    board=board.name,
                    port=board.port,
                    step="wait for REPL",
                ) from e
            time.sleep(0.5)


def deploy_and_provision(
    board: Board, config: ClaimConfig | None
) -> tuple[DeployResult, ProvisionResult | None]:
    """What follows a flash: wait for the REPL, deploy the library and firmware, then write the
    claim config (validated) when one is given.

    Raises:
        UsageError: the config is refused.
        BoardError, DeviceError: the board could not be reached or written.
    """
    wait_for_repl(board)
    deployed = deploy(board, config=None)
    provisioned = provision(board, config) if config is not None else None
    return deployed, provisioned
