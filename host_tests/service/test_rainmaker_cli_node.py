"""esp-rainmaker-cli's secret-key mapping, finished by a virtual board's own MQTT message.

The CLI (1.14.1, in its venv: service/cli_mapping_peer.py runs its functions unchanged) asks the
local service to map a node with a secret key, as its `provision` command does after it handed
the device the user id and secret key; the board, which has them in NVS where field onboarding
leaves them (namespace rmclaim_map), boots for the first time: joins Wi-Fi, self-claims, opens
MQTT with its new certificate and publishes the mapping request; the bench broker hands it to
the service. The CLI's status poll then says "confirmed" and `getnodes` lists the node. (That
the CLI provisions the board itself comes with field onboarding.)
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from rmbench import FIRMWARE_DIR
from rmbench.boardsim import DEFAULT_WIFI, create_board
from rmbench.broker.harness import RunningBroker, running_broker
from rmbench.micropython import Interpreter
from rmbench.service.harness import RunningService, running_service
from rmbench.statusline import parse_status

from .test_rainmaker_cli import rainmaker_cli, run_cli
from .test_rainmaker_cli_mapping import CliPeer, cli_user, peer

__all__ = ["peer", "rainmaker_cli"]  # the fixtures, from the CLI mapping tests

# The firmware's first boot (rmboot: Wi-Fi, clock, claim, then MQTT), with the user id and
# secret key in NVS first.
FIRST_BOOT = """
import json, sys, rmboot, rmclaim
ARGS = json.loads(sys.stdin.read())
nvs = rmclaim.nvs("rmclaim_map")
nvs.set_blob("user_id", ARGS["user_id"])
nvs.set_blob("secret_key", ARGS["secret"])
rmboot._CONFIG = ARGS["config"]
if rmboot.main() is not None:
    node = rmboot.online()
    node.disconnect()
    print("NODE", node.node_id)
"""


@pytest.fixture(scope="module")
def http_svc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningService]:
    # Plain HTTP on loopback: the CLI's user API calls trust only its bundled Amazon root.
    with running_service(tmp_path_factory.mktemp("svc"), insecure_http=True) as svc:
        yield svc


@pytest.fixture(scope="module")
def http_broker(
    http_svc: RunningService, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningBroker]:
    with running_broker(tmp_path_factory.mktemp("broker"), http_svc.state_dir) as b:
        yield b


@pytest.mark.slow
def test_cli_secret_key_mapping_confirmed_by_the_boards_own_message(
    http_svc: RunningService,
    http_broker: RunningBroker,
    peer: CliPeer,
    rainmaker_cli: Path,
    mpy: Interpreter,
    tmp_path: Path,
) -> None:
    alice = cli_user(http_svc, tmp_path, "alice")
    board = create_board(tmp_path / "board", "esp32s3", name=f"{tmp_path.name}-cli-map")
    http_svc.register(board.mac, board.unique_id)
    node_id = board.mac  # a self-claimed node's id
    secret = str(uuid.uuid4())  # as the CLI's provision makes it
    request_id = peer.call("add_mapping", alice, node_id=node_id, secret_key=secret)
    assert peer.call("mapping_status", alice, node_id=node_id, request_id=request_id) == (
        "requested"
    )
    config = board.directory / "rmclaim.json"
    cfg = {
        "service_url": http_svc.base_url,
        "allow_insecure_http": True,  # the CLI's service is plain HTTP (see above)
        "wifi_ssid": DEFAULT_WIFI[0],
        "wifi_password": DEFAULT_WIFI[1],
        "wifi_timeout_s": 2,
        "max_attempts": 3,
        "backoff_base_s": 0.05,
        "backoff_cap_s": 0.2,
        "mqtt_ca": http_broker.server_ca_pem,
        "mqtt_host": "localhost",
        "mqtt_port": http_broker.port,
    }
    config.write_text(json.dumps(cfg))
    args = {"config": str(config), "user_id": alice.user_id, "secret": secret}
    out = board.run(
        mpy, FIRST_BOOT, stdin=json.dumps(args), heap="1M", path=[FIRMWARE_DIR], timeout=90
    )
    assert f"NODE {node_id}" in out.splitlines(), out
    lines = [f"{s.step}:{s.outcome}" for s in map(parse_status, out.splitlines()) if s]
    assert lines[-4:] == ["claimed:ok", "mqtt:ok", "nodeconfig:ok", "mapping:ok"], out
    handed = http_broker.wait_for(
        lambda e: e["event"] == "mapping" and e["client_id"] == node_id, "the mapping hand-over"
    )
    assert handed["result"] == "confirmed"
    status = peer.call("mapping_status", alice, node_id=node_id, request_id=request_id)
    assert status == "confirmed"
    assert peer.call("get_nodes", alice) == [node_id]
    listed = run_cli(rainmaker_cli, ["getnodes"], alice.env)
    assert f"1. {node_id}" in listed.splitlines(), listed
