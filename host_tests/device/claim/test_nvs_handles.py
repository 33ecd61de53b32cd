"""NVS handles: each namespace is opened once per boot, however many claim rounds fail.

esp32.NVS(namespace) calls nvs_open on every construction and MicroPython never calls
nvs_close (ports/esp32/esp32_nvs.c), so every construction takes ESP-IDF RAM for good; the
virtual board logs each one (SimBoard.nvs_opens, per session).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from rmbench import FIRMWARE_DIR
from rmbench.boardsim import DEFAULT_WIFI
from rmbench.micropython import Interpreter
from rmbench.service.harness import RunningService

from .conftest import BoardFactory
from .support import PRELUDE, claim_config, result

# The firmware's boot loop (firmware/rmboot.py main()) against a service that fails every
# round, until max_attempts rounds have failed. Its clock is the board's, but its sleeps
# return at once (a shim in place of rmboot's `time`): the LED patterns between rounds would
# take seconds each, and only the rounds matter here.
BOOT_LOOP = """
import time as _time
import rmboot
class _Clock:
    def __getattr__(self, name):
        return getattr(_time, name)
    def sleep_ms(self, ms):
        pass
    def sleep(self, s):
        pass
rmboot.time = _Clock()
rmboot._CONFIG = ARGS
out({"creds": rmboot.main()})
"""

ROUNDS = 20


@pytest.mark.parametrize("failure", ["unreachable", "refused"])
def test_failed_claim_rounds_open_each_namespace_once(
    mpy: Interpreter, svc: RunningService, new_board: BoardFactory, failure: str
) -> None:
    overrides: dict[str, Any] = {"max_attempts": ROUNDS}
    overrides.update(wifi_ssid=DEFAULT_WIFI[0], wifi_password=DEFAULT_WIFI[1])
    if failure == "unreachable":
        board = new_board("handles-unreachable", "esp32s3")
        overrides["service_url"] = "https://127.0.0.1:1"  # nothing listens there
        cls = "unreachable"
    else:
        board = new_board("handles-refused", "esp32c2")
        overrides["access_token"] = "no-such-token"  # the service answers 401 every time
        cls = "rejected"
    config = board.directory / "rmclaim.json"
    config.write_text(json.dumps(claim_config(svc, **overrides)))
    out = board.run(
        mpy,
        PRELUDE + BOOT_LOOP,
        stdin=json.dumps(str(config)),
        path=[FIRMWARE_DIR],
        heap="1M",
        timeout=300,
    )
    assert result(out) == {"creds": None}
    lines = [line for line in out.splitlines() if line.startswith("rmclaim: step=")]
    waits = [line for line in lines if line.startswith("rmclaim: step=backoff wait ")]
    assert len(waits) == ROUNDS - 1 and f"class={cls} round={ROUNDS - 1}" in waits[-1]
    assert lines[-1] == f"rmclaim: step=claim fail class={cls} rounds={ROUNDS}"
    # Twenty rounds, one boot: the credentials namespace was opened once.
    assert board.nvs_opens() == [{"rmaker_creds": 1}]
    # The key was made once, in the first round (with the station on), and reused after.
    assert board.urandom_calls() == [(32, True), (64, True)]
