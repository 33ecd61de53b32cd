"""Field provisioning on a virtual board, driven by esp-rainmaker-cli's own client
(tools/rmbench/cli_field.py in the CLI's venv) through the board's soft-AP address: a fresh
board provisioned and then self-claiming, failures that end cleanly, a claimed board mapped by
challenge-response, and a power cut between the stored credentials and the claim.

The board runs the deployed firmware (firmware/rmboot.py) with a config that names the service
but no Wi-Fi; the bench Wi-Fi (rmbench.boardsim.DEFAULT_WIFI) is the network the client gives
it. A virtual board only: a real one's soft-AP is reached over the air.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rmbench.board import Board, VirtualBoard
from rmbench.boardsim import DEFAULT_WIFI
from rmbench.deploy import deploy
from rmbench.rainmaker_cli import FIELD_DRIVER
from rmbench.service.harness import RunningService, running_service

from .helpers import BenchSetup, check_identity, steps
from .test_claim_flow import SELF_CLAIM

POP = "abcd1234"
# esp-rainmaker-cli's venv (build/rainmaker-cli-venv), and a logged-in CLI profile per user,
# from the service tests (pytest puts host_tests/ on the path; mypy does not see it).
rainmaker_cli = importlib.import_module("service.test_rainmaker_cli").rainmaker_cli
cli_user = importlib.import_module("service.test_rainmaker_cli_mapping").cli_user

pytestmark = pytest.mark.needs("virtual")


@pytest.fixture(scope="module")
def cli_python(rainmaker_cli: Path) -> Path:
    return rainmaker_cli.with_name("python")


def cli(
    python: Path, board: Board, *, env: dict[str, str] | None = None, **args: Any
) -> dict[str, Any]:
    """One scenario of rmbench's cli_field.py against the board's soft-AP: {"result", "log"}."""
    assert isinstance(board, VirtualBoard)
    args["address"] = board.info.softap
    proc = subprocess.run(
        [str(python), str(FIELD_DRIVER), json.dumps(args)],
        input="\n",  # the provision command's "connect to the device's hotspot" prompt
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out


def provision(python: Path, board: Board, ssid: str, passphrase: str, **kw: Any) -> Any:
    """provision_device with the bench's user id, secret key and pop; its result and log."""
    args = {"user_id": "field-user", "secret_key": "field-secret", "pop": POP, **kw}
    return cli(python, board, scenario="device", ssid=ssid, passphrase=passphrase, **args)


FORGET_FIELD = """
import rmclaim
for ns, keys in (("rmclaim_prov", ("wifi", "chresp_off")), ("rmclaim_map", ("user_id",
                 "secret_key"))):
    n = rmclaim.nvs(ns)
    for k in keys:
        try:
            n.erase_key(k)
        except OSError:
            pass
"""


def field_config(bench: BenchSetup, **overrides: Any) -> dict[str, Any]:
    """The bench config without Wi-Fi: a board that provisions itself."""
    return bench.config(wifi_ssid=None, wifi_password=None, prov_pop=POP, **overrides)


def start_provisioning(
    bench: BenchSetup, config: dict[str, Any] | None = None, *, claimed: bool = False
) -> int:
    """Deploy a config without Wi-Fi, forget what provisioning saved (and the identity unless
    `claimed`), reset; -> the output mark once the board's soft-AP serves."""
    bench.prepare(config or field_config(bench), forget=not claimed, register=not claimed)
    bench.board.exec(FORGET_FIELD)
    since = bench.board.reset()
    bench.board.expect_status("provisioning", "wait", since=since, timeout=bench.timeout)
    return since


def saved_wifi(board: VirtualBoard) -> bytes | None:
    blob = board.nvs().get("rmclaim_prov", {}).get("wifi")
    assert blob is None or isinstance(blob, bytes)
    return blob


def test_the_cli_provisions_a_fresh_board_which_then_self_claims(
    bench: BenchSetup, board: Board, cli_python: Path
) -> None:
    assert isinstance(board, VirtualBoard)
    since = start_provisioning(bench)
    wait = board.status_lines(since)[-1]
    mac = board.sim.mac
    assert wait.fields == {"ssid": "PROV_" + mac[6:].lower(), "pop": POP, "sec": "1"}
    got = provision(cli_python, board, *DEFAULT_WIFI)
    # The CLI read security 1 from proto-ver, opened a session with the pop, got the node id
    # (a self-claiming board's is its MAC) for the user id and secret key, and saw Connected.
    assert got["result"] == [mac, False], got
    assert "Auto-detected Security Scheme: 1" in got["log"]
    assert "WiFi state: Connected" in got["log"]
    lines = board.watch_status(since, timeout=bench.timeout)
    assert steps(lines) == ["config:ok", "provisioning:wait", "provisioning:ok", *SELF_CLAIM[1:]]
    assert int(lines[2].fields["apply_ms"]) >= 0
    assert lines[-1].fields["node_id"] == mac
    check_identity(bench.credentials(), mac)
    ssid, password = (s.encode() for s in DEFAULT_WIFI)
    assert saved_wifi(board) == bytes([len(ssid)]) + ssid + password
    mapping = board.nvs()["rmclaim_map"]
    assert (mapping["user_id"], mapping["secret_key"]) == (b"field-user", b"field-secret")
    assert board.sim.radio_off_urandom() == []  # session keys and the claim key: radio on
    assert DEFAULT_WIFI[1] not in board.output(since)  # the password is never printed
    # A reboot joins with the saved credentials: no soft-AP, no claim.
    again = bench.boot()
    assert steps(again) == ["config:ok", "provisioning:skip", "wifi:ok", "time:ok", "claimed:ok"]
    assert again[1].fields["reason"] == "saved"
    assert again[-1].fields["stored"] == "yes"


def test_failures_end_cleanly_and_the_board_stays_provisionable(
    bench: BenchSetup, board: Board, cli_python: Path
) -> None:
    assert isinstance(board, VirtualBoard)
    since = start_provisioning(bench)
    # A wrong pop: the handshake is refused (500), then prov-session is shut for a second.
    wrong = cli(cli_python, board, scenario="session", pop="abcd9999")
    assert wrong["result"]["session"] == "RuntimeError: Server responded with error code 500"
    time.sleep(1.1)
    # A client gone after the first handshake message.
    half = cli(cli_python, board, scenario="half", pop=POP)
    assert half["result"]["reply"] > 32
    # A network that is not there, then a wrong password: ConnectionFailed with the reason,
    # the CLI's prov-ctrl reset accepted, nothing saved.
    nowhere = provision(cli_python, board, "nowhere", "whatever-pass")
    assert nowhere["result"] == [None, False, True], nowhere
    assert "Failure reason: Incorrect SSID" in nowhere["log"]
    assert "Device reset via prov-ctrl successful." in nowhere["log"]
    bad = provision(cli_python, board, DEFAULT_WIFI[0], "wrong-password")
    assert bad["result"] == [None, False, True], bad
    assert "Failure reason: Incorrect Password" in bad["log"]
    assert saved_wifi(board) is None
    failed = [s for s in board.status_lines(since) if s.fields.get("joined") == "no"]
    assert [s.fields["reason"] for s in failed] == ["no AP found", "wrong password"]
    # Then the right credentials: joined, saved, claimed.
    good = provision(cli_python, board, *DEFAULT_WIFI)
    assert good["result"] == [board.sim.mac, False], good
    lines = board.watch_status(since, timeout=bench.timeout)
    assert steps(lines)[-1] == "claimed:ok"
    assert saved_wifi(board) is not None
    assert "wrong-password" not in board.output(since)


@pytest.fixture
def http_service(tmp_path: Path) -> Iterator[RunningService]:
    # esp-rainmaker-cli calls its cloud over HTTPS only against its bundled root CA: a service
    # over plain HTTP on loopback, which the board claims from too (allow_insecure_http).
    with running_service(tmp_path / "svc", insecure_http=True) as svc:
        yield svc


@pytest.mark.needs("efuse_unique_id")
def test_a_claimed_board_is_mapped_by_challenge_response(
    bench: BenchSetup,
    board: Board,
    cli_python: Path,
    http_service: RunningService,
    tmp_path: Path,
) -> None:
    assert isinstance(board, VirtualBoard)
    svc = http_service
    alice = cli_user(svc, tmp_path, "alice")
    base = {**bench.config(), "service_url": svc.base_url, "allow_insecure_http": True}
    base.pop("ca")
    # Claimed first, at the bench (here: a self-claim over the bench Wi-Fi) ...
    deploy(board, config=base)
    board.exec("import rmclaim\nrmclaim.forget()")
    info = board.eval("__import__('rmclaim').device_info(True)")
    svc.register(info["mac"], bytes.fromhex(info["unique_id"]))
    claimed = bench.boot()[-1]
    node_id = claimed.fields["node_id"]
    # ... then shipped without Wi-Fi: in the field, the `provision` command maps it to the user
    # by challenge-response (no MQTT) and gives it the Wi-Fi.
    field = {**base, "wifi_ssid": None, "wifi_password": None, "prov_pop": POP}
    field = {k: v for k, v in field.items() if v is not None}
    since = start_provisioning(bench, field, claimed=True)
    got = cli(
        cli_python,
        board,
        scenario="command",
        env=alice.env,
        pop=POP,
        ssid=DEFAULT_WIFI[0],
        passphrase=DEFAULT_WIFI[1],
    )
    log = got["log"]
    assert got["result"] == "done", got
    assert "Device supports challenge-response" in log, log
    assert f"✅ Node {node_id} added to your account successfully!" in log, log
    assert "Wi-Fi Provisioning Successful." in log, log
    lines = board.watch_status(since, timeout=bench.timeout)
    assert steps(lines) == [
        "config:ok",
        "provisioning:wait",
        "provisioning:ok",
        "wifi:ok",
        "time:ok",
        "claimed:ok",
    ]
    assert lines[-1].fields["node_id"] == node_id
    # The service checked the signature against the certificate it issued, and maps the node.
    assert svc.user_nodes(alice.token) == [node_id]
    rmbench = Path(sys.executable).with_name("rmbench")
    listed = subprocess.run(
        [str(rmbench), "user", "nodes", "--state-dir", str(svc.state_dir), "--token", alice.token],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert listed.split()[:2] == [node_id, "via=challenge_response"], listed
    # No secret key went to the board; challenge-response is off for good now.
    assert "rmclaim_map" not in board.nvs() or not board.nvs()["rmclaim_map"]
    assert board.nvs()["rmclaim_prov"]["chresp_off"] == 1
    board.exec(FORGET_FIELD.replace('"chresp_off"', ""))  # Wi-Fi forgotten, the switch kept
    since = board.reset()
    board.expect_status("provisioning", "wait", since=since, timeout=bench.timeout)
    offered = cli(cli_python, board, scenario="session", pop=POP)["result"]
    assert "ch_resp" not in offered["version"]
    assert json.loads(offered["version"])["prov"]["sec_ver"] == 1


@pytest.mark.needs("efuse_unique_id")
def test_power_cut_after_the_credentials_are_stored_then_join_and_claim(
    bench: BenchSetup, board: Board, cli_python: Path
) -> None:
    assert isinstance(board, VirtualBoard)
    bench.prepare(field_config(bench))
    board.exec(FORGET_FIELD)
    # This boot's NVS writes: user_id and secret_key (cloud_user_assoc), then the Wi-Fi
    # credentials once joined. The power goes just after the third.
    since = board.power_cycle(power_cut="nvs:3:after")
    board.expect_status("provisioning", "wait", since=since, timeout=bench.timeout)
    got = provision(cli_python, board, *DEFAULT_WIFI)
    assert got["result"] != [board.sim.mac, False]  # the board died before saying Connected
    board.wait_off()
    assert saved_wifi(board) is not None
    assert "client_cert" not in board.nvs().get("rmaker_creds", {})
    since = board.power_cycle()
    lines = board.watch_status(since, timeout=bench.timeout)
    assert steps(lines) == ["config:ok", "provisioning:skip", *SELF_CLAIM[1:]]
    check_identity(bench.credentials(), board.sim.mac)
