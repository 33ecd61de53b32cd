"""The firmware's claim on a board driven through mpremote: first boot, reboot, forget, token."""

from __future__ import annotations

import pytest
from rmbench.board import Board, VirtualBoard

from .helpers import BenchSetup, check_identity, flash_groups, led_segments, steps

SELF_CLAIM = [
    "config:ok",
    "wifi:ok",
    "time:ok",
    "identity:ok",
    "efuse:ok",
    "key:ok",
    "csr:ok",
    "initiate:ok",
    "hmac:ok",
    "verify:ok",
    "check:ok",
    "store:ok",
    "claimed:ok",
]


@pytest.mark.needs("efuse_unique_id")
def test_first_boot_self_claims_and_a_reboot_does_not_claim_again(
    bench: BenchSetup, board: Board
) -> None:
    bench.prepare()
    first = bench.boot()
    assert steps(first) == SELF_CLAIM
    claimed = first[-1]
    mac = board.eval("__import__('rmclaim').device_info()['mac']")
    assert claimed.fields["node_id"] == mac  # a self-claimed node id is the MAC
    assert claimed.fields["stored"] == "no"
    assert claimed.fields["rounds"] == "1"
    cert = check_identity(bench.credentials(), mac)
    if isinstance(board, VirtualBoard):
        assert board.sim.radio_off_urandom() == []  # the key was made with the station on
    issuer = bench.service.claim_ca_pem
    assert cert.issuer.rfc4514_string() in issuer or "claim CA" in cert.issuer.rfc4514_string()

    again = bench.boot()
    assert steps(again) == ["config:ok", "wifi:ok", "time:ok", "claimed:ok"]
    assert again[-1].fields["stored"] == "yes"
    assert again[-1].fields["node_id"] == mac
    assert bench.credentials()["cert"] == bench.credentials()["cert"]


@pytest.mark.needs("efuse_unique_id")
def test_forget_then_reclaim_keeps_the_node_id_with_a_new_key(bench: BenchSetup) -> None:
    bench.prepare()
    bench.boot()
    before = bench.credentials()
    bench.board.exec("import rmclaim\nrmclaim.forget()")
    assert bench.credentials() == {}
    lines = bench.boot()
    assert "initiate:ok" in steps(lines)
    after = bench.credentials()
    assert after["node_id"] == before["node_id"]
    assert after["key"] != before["key"]
    check_identity(after, before["node_id"])


@pytest.mark.parametrize("board", ["esp32"], indirect=True)
def test_token_claim_on_a_board_that_cannot_self_claim(bench: BenchSetup) -> None:
    token = "bench-token-esp32"
    bench.service.add_user(token, quota=10)
    bench.prepare(bench.config(access_token=token), register=False)
    lines = bench.boot()
    assert "efuse:ok" not in steps(lines)  # ESP32 has no eFuse id to answer a challenge with
    assert "hmac:ok" not in steps(lines)
    node_id = lines[-1].fields["node_id"]
    assert len(node_id) == 22  # the service's token node ids
    check_identity(bench.credentials(), node_id)
    if isinstance(bench.board, VirtualBoard):
        assert bench.board.sim.radio_off_urandom() == []  # the key was made with the station on
    assert bench.boot()[-1].fields["stored"] == "yes"


@pytest.mark.needs("virtual")
def test_led_connecting_claiming_claimed(bench: BenchSetup, board: VirtualBoard) -> None:
    bench.prepare()
    t0 = max((ms for ms, _, _ in board.pin_log()), default=0) + 1
    bench.boot()
    segments = led_segments(board, t0)
    # Boot: LED off; on while Wi-Fi associates (the first half of a slow blink) and steady on
    # while claiming; then 200 ms dark, exactly three short flashes, and off for good.
    assert segments[0][0] == 0
    claiming, dark, *flashes, final = segments[-8:]
    assert claiming[0] == 1 and claiming[1] >= 20
    assert dark[0] == 0 and 150 <= dark[1] <= 400
    assert [level for level, _ in flashes] == [1, 0, 1, 0, 1]  # the last dark one is `final`
    assert all(80 <= ms <= 250 for _, ms in flashes)
    assert final == (0, -1)
    assert flash_groups(segments[-7:]) == [3]
    # The S3 DevKit's LED is an RGB one: connecting blue, claiming amber, claimed green.
    led = board.profile.led
    if led is not None and led.kind == "rgb":
        lit = [c for ms, c in board.sim.led_colors(led.pin) if ms >= t0 and c != (0, 0, 0)]
        order = [c for i, c in enumerate(lit) if i == 0 or lit[i - 1] != c]
        assert order == [(0, 0, 40), (40, 24, 0), (0, 40, 0)]


APP = b"""
def main(creds):
    print("app: running as", creds.node_id)
"""


def test_app_py_runs_after_the_claim_with_the_credentials(bench: BenchSetup, board: Board) -> None:
    bench.prepare()
    board.fs_write("/app.py", APP)
    try:
        since = board.reset()
        lines = board.watch_status(since, until=("app", "run"), timeout=bench.timeout)
        node_id = next(s for s in lines if s.step == "claimed").fields["node_id"]
        board.expect(rf"^app: running as {node_id}\r?$", timeout=bench.timeout, since=since)
    finally:
        board.fs_remove("/app.py")
