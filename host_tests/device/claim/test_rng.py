"""Keys only from a seeded RNG: every private key (and the random bytes stored with it) is made
with a radio on, and a board with no radio to turn on refuses to make one.

os.urandom is esp_random(), which ESP-IDF documents as pseudo-random unless an RF subsystem
(Wi-Fi, Bluetooth, 802.15.4) is enabled; the virtual board models that harshly (a fixed-seed
sequence, the same on every board) and logs every call with the radio state
(SimBoard.urandom_calls). These boards start with every radio off, as a board does after a
soft reset into the raw REPL.
"""

from __future__ import annotations

from cryptography.hazmat.primitives import serialization
from rmbench.micropython import Interpreter
from rmbench.service.harness import RunningService

from .conftest import BoardFactory
from .support import claim_config, run_device

CALL = """
import rmclaim, sys
res = {}
try:
    if ARGS["what"] == "claim":
        res["ok"] = rmclaim.ensure_claimed(ARGS["config"]).node_id
    else:
        if ARGS.get("sta_on"):
            import network
            network.WLAN(network.WLAN.IF_STA).active(True)
        res["ok"] = rmclaim.prepare_csr("NODE-X")
except Exception as e:
    res = err(e)
# The radios as the call left them (their state is the board's: _boardsim keeps it; a
# WLAN interface's state list starts with its active flag).
import _boardsim
sta = _boardsim.radios.get("wlan", {}).get(0)
res["radios"] = [bool(sta and sta[0]), bool(_boardsim.radios.get("ble"))]
out(res)
"""

# Key material: the 32-byte private key draw, then the 64 random bytes.
KEY_DRAWS = [(32, True), (64, True)]


def test_self_and_token_claims_make_their_keys_with_the_station_on(
    mpy: Interpreter, svc: RunningService, new_board: BoardFactory
) -> None:
    s3, c3 = new_board("rng-self", "esp32s3"), new_board("rng-token", "esp32c3")
    svc.register(s3.mac, s3.unique_id)
    svc.add_user("tok-rng", quota=2)
    for board, cfg in ((s3, claim_config(svc)), (c3, claim_config(svc, access_token="tok-rng"))):
        res = run_device(mpy, CALL, {"what": "claim", "config": cfg}, board=board)
        assert "ok" in res, res
        assert board.urandom_calls() == KEY_DRAWS
        assert res["radios"] == [False, False]  # the station was off before: off again


def test_host_assisted_csr_turns_the_station_on_and_off_again(
    mpy: Interpreter, new_board: BoardFactory
) -> None:
    # rmclaim.prepare_csr runs right after a soft reset into the raw REPL (rmbench claim):
    # nothing has made the station active.
    board = new_board("rng-assist", "esp32")
    res = run_device(mpy, CALL, {"what": "csr"}, board=board)
    assert res["ok"].startswith("-----BEGIN CERTIFICATE REQUEST-----\n"), res
    assert board.urandom_calls() == KEY_DRAWS
    assert res["radios"] == [False, False]
    key = board.nvs()["rmaker_creds"]["client_key"]
    assert isinstance(key, bytes)
    serialization.load_pem_private_key(key, None)
    # A station someone else made active is left on; the stored key is reused (no new draw).
    other = new_board("rng-assist-on", "esp32")
    res = run_device(mpy, CALL, {"what": "csr", "sta_on": True}, board=other)
    assert "ok" in res and res["radios"] == [True, False]
    assert other.urandom_calls() == KEY_DRAWS


def test_a_board_without_wlan_uses_bluetooth(mpy: Interpreter, new_board: BoardFactory) -> None:
    # MicroPython's ESP32-H2 build (preview) has no network.WLAN but has bluetooth (NimBLE).
    h2 = new_board("rng-h2", "esp32h2")
    res = run_device(mpy, CALL, {"what": "csr"}, board=h2)
    assert "ok" in res, res
    assert h2.urandom_calls() == KEY_DRAWS
    assert res["radios"] == [False, False]  # BLE off again


def test_no_radio_no_key(mpy: Interpreter, new_board: BoardFactory) -> None:
    # A build with neither WLAN nor bluetooth: os.urandom could only give the PRNG's bytes, so
    # no key is made, nothing is drawn and nothing is stored.
    board = new_board("rng-none", "esp32c3", wifi=None, wlan=False, bluetooth=False)
    res = run_device(mpy, CALL, {"what": "csr"}, board=board)
    assert res["kind"] == "UnsupportedChip"
    assert res["error"] == (
        "key: no radio can be turned on (no network.WLAN, no bluetooth), so os.urandom is only "
        "a PRNG: refusing to make a key; use a firmware with Wi-Fi or Bluetooth, or a host-made "
        "key (rmbench nvs-image --host-key)"
    )
    assert board.urandom_calls() == []
    assert board.nvs() == {}
