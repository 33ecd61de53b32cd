"""After the claim, on a board driven through mpremote: main.py connects to the bench broker with
the new certificate, announces the node, maps its user once (a power cut before the
acknowledgement is recorded sends it again, and the node is still mapped once), hands app.py the
connected node, and reconnects after a broker restart.

The user id and secret key are written where field onboarding leaves them (NVS namespace
rmclaim_map), and the user's side of the mapping is the service's own API, as esp-rainmaker-cli
calls it (host_tests/service covers the CLI itself).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rmbench.board import Board, VirtualBoard
from rmbench.broker.harness import RunningBroker, running_broker
from rmbench.service import client
from rmbench.statusline import StatusLine

from .helpers import BenchSetup, steps

# A claimed board's boot, up to the app: the last line comes once online() has returned.
CLAIMED_BOOT = ["config:ok", "wifi:ok", "time:ok", "claimed:ok", "mqtt:ok", "nodeconfig:ok"]

APP = b"""
def main(node):
    print("app: node", node.node_id, "connected", node.connected)
    switch = node.add_device("Switch", "esp.device.switch", "Power")
    switch.add_param("Power", True, "esp.param.power", "esp.ui.toggle")
    node.report_config()
    print("app: reported", node.report_params())
"""


@pytest.fixture
def broker(request: pytest.FixtureRequest, bench: BenchSetup, tmp_path: Path) -> Iterator[Any]:
    """A bench broker for the bench service's CAs: (broker, host the board names it by). On a
    real bench it listens on every interface, its certificate covering --service-host."""
    host = request.config.getoption("--service-host")
    kw: dict[str, Any] = {"host": "0.0.0.0", "names": [host]} if host else {}
    with running_broker(tmp_path / "broker", bench.service.state_dir, **kw) as b:
        yield b, host or "localhost"


def _config(bench: BenchSetup, broker: tuple[RunningBroker, str], **more: Any) -> dict[str, Any]:
    b, host = broker
    return bench.config(mqtt_ca=b.server_ca_pem, mqtt_host=host, mqtt_port=b.port, **more)


def _store_mapping(board: Board, user_id: str, secret: str) -> None:
    # What cloud_user_assoc leaves in NVS (the field-onboarding contract: UTF-8 blobs).
    board.exec(
        "import rmclaim\nn = rmclaim.nvs('rmclaim_map')\n"
        f"n.set_blob('user_id', {user_id!r})\nn.set_blob('secret_key', {secret!r})"
    )


def _user(bench: BenchSetup) -> tuple[str, str]:
    token = f"bench-mqtt-{uuid.uuid4().hex[:10]}"
    return bench.service.add_user(token, quota=5), token


def _put_mapping(bench: BenchSetup, token: str, node_id: str, secret: str) -> str:
    # The user's half: PUT user/nodes/mapping (what esp-rainmaker-cli's add_user_node_mapping
    # sends); -> the request id.
    body = {"node_id": node_id, "secret_key": secret, "operation": "add"}
    r = _api(bench, "PUT", "/v1/user/nodes/mapping", token, body)
    return str(r["request_id"])


def _mapping_status(bench: BenchSetup, token: str, request_id: str) -> str:
    r = _api(bench, "GET", f"/v1/user/nodes/mapping?request_id={request_id}", token)
    return str(r["request_status"])


def _api(bench: BenchSetup, method: str, path: str, token: str, body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    r = client.request(
        bench.service.base_url,
        method,
        path,
        ca_file=bench.service.server_ca_file,
        body=data,
        headers={"Authorization": token},
    )
    assert r.status == 200, r.body
    return r.json()


def _boot(board: Board, bench: BenchSetup, since: int, until: str) -> list[StatusLine]:
    outcome = "run" if until == "app" else "ok"
    return board.watch_status(since, until=(until, outcome), timeout=bench.timeout)


def test_first_boot_claims_connects_maps_and_hands_the_app_its_node(
    bench: BenchSetup, board: Board, broker: tuple[RunningBroker, str]
) -> None:
    b = broker[0]
    bench.prepare(_config(bench, broker))
    node_id = board.eval("__import__('rmclaim').device_info()['mac']")
    user_id, token = _user(bench)
    secret = str(uuid.uuid4())
    request_id = _put_mapping(bench, token, node_id, secret)
    assert _mapping_status(bench, token, request_id) == "requested"
    _store_mapping(board, user_id, secret)
    board.fs_write("/app.py", APP)
    try:
        since = board.reset()
        lines = _boot(board, bench, since, "app")
        got = steps(lines)
        assert got[got.index("claimed:ok") :] == [
            "claimed:ok",
            "mqtt:ok",
            "nodeconfig:ok",
            "mapping:ok",
            "app:run",
        ]
        assert "store:ok" in got  # a first boot: it claimed, then connected with that identity
        board.expect(r"^app: reported True\r?$", timeout=bench.timeout, since=since)
        board.expect(rf"^app: node {node_id} connected True\r?$", timeout=5, since=since)
        # The cloud side: the broker handed the request over, the user's request is confirmed.
        b.wait_for(lambda e: e["event"] == "mapping" and e.get("result") == "confirmed", "map")
        assert _mapping_status(bench, token, request_id) == "confirmed"
        assert bench.service.user_nodes(token) == [node_id]
        sent = [(p.topic.split("/", 2)[2], p.qos) for p in b.published(client_id=node_id)]
        assert sent == [("config", 1), ("user/mapping", 1), ("config", 1), ("params/local", 1)]
        app_config = json.loads(b.published(topic=f"node/{node_id}/config")[1].payload)
        assert [d["name"] for d in app_config["devices"]] == ["Switch"]

        # The next boot: no claim, no mapping (erased after its acknowledgement).
        since = board.reset()
        lines = _boot(board, bench, since, "app")
        assert steps(lines) == [*CLAIMED_BOOT, "app:run"]
        assert len(b.published(topic=f"node/{node_id}/user/mapping")) == 1
        assert bench.service.user_nodes(token) == [node_id]
    finally:
        board.fs_remove("/app.py")


@pytest.mark.needs("power_cut")
@pytest.mark.parametrize("cut", ["nvs:1", "nvs:1:after"])
def test_power_cut_before_the_acknowledgement_is_recorded(
    bench: BenchSetup, board: VirtualBoard, broker: tuple[RunningBroker, str], cut: str
) -> None:
    # A claimed board's first NVS write of a boot is the erase that records the mapping's
    # PUBACK (secret_key, then user_id). nvs:1 cuts just before it: the broker has the request
    # (the user is mapped), the board never noted the acknowledgement, so the next boot sends
    # it again, and the cloud still maps the node once. nvs:1:after cuts between the two
    # erases: half a request is left, cleaned up, never sent.
    b = broker[0]
    bench.prepare(_config(bench, broker))
    board.fs_write("/app.py", b"def main(node):\n    pass\n")
    try:
        _boot(board, bench, board.reset(), "app")  # claimed and connected, nothing to map
        node_id = board.sim.mac
        user_id, token = _user(bench)
        secret = str(uuid.uuid4())
        request_id = _put_mapping(bench, token, node_id, secret)
        _store_mapping(board, user_id, secret)
        since = board.power_cycle(power_cut=cut)
        board.wait_off(timeout=bench.timeout)
        cut_lines = board.status_lines(since)
        assert steps(cut_lines)[-2:] == ["mqtt:ok", "nodeconfig:ok"]  # no "mapping ok"
        b.wait_for(lambda e: e["event"] == "mapping" and e["client_id"] == node_id, "map")
        assert _mapping_status(bench, token, request_id) == "confirmed"
        left = board.nvs().get("rmclaim_map", {})
        assert set(left) == ({"user_id", "secret_key"} if cut == "nvs:1" else {"user_id"})

        recovery = board.power_cycle()
        lines = _boot(board, bench, recovery, "app")
        mapped = [s for s in lines if s.step == "mapping"]
        requests = b.published(topic=f"node/{node_id}/user/mapping")
        if cut == "nvs:1":
            assert [(s.outcome, s.fields.get("user_id")) for s in mapped] == [("ok", user_id)]
            assert len(requests) == 2 and requests[0].payload == requests[1].payload
            outcomes = [e for e in b.events("mapping") if e["client_id"] == node_id]
            assert [e["result"] for e in outcomes] == ["confirmed", "pending"]
        else:
            said = [(s.outcome, s.fields.get("reason")) for s in mapped]
            assert said == [("skip", "incomplete")]
            assert len(requests) == 1
        assert "rmclaim_map" not in board.nvs() or board.nvs()["rmclaim_map"] == {}
        # Mapped once, to this user.
        assert bench.service.user_nodes(token) == [node_id]
        assert _mapping_status(bench, token, request_id) == "confirmed"
    finally:
        if board.state().state == "off":  # a failure above left it cut off
            board.power_cycle()
        board.fs_remove("/app.py")


def test_broker_restart_while_the_board_runs(
    bench: BenchSetup, board: Board, broker: tuple[RunningBroker, str]
) -> None:
    b = broker[0]
    bench.prepare(_config(bench, broker))
    since = board.reset()
    _boot(board, bench, since, "nodeconfig")  # no app.py: main.py keeps the connection
    b.restart()
    deadline = time.monotonic() + bench.timeout
    while True:
        lines = board.status_lines(since)
        if steps(lines).count("nodeconfig:ok") == 2 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    first = steps(lines).index("nodeconfig:ok")
    after = steps(lines)[first + 1 :]
    assert after[0] == "mqtt:error" and after[-2:] == ["mqtt:ok", "nodeconfig:ok"], after
    assert "backoff:wait" in after
    assert lines[first + 1].fields["class"] == "unreachable"
    assert "connection lost" in lines[first + 1].fields["msg"]
    reconnected = [s for s in lines if s.step == "mqtt" and s.outcome == "ok"][-1]
    assert reconnected.fields["connects"] == "2"
    node_id = reconnected.fields["node_id"]
    assert [p.topic for p in b.published(client_id=node_id)] == [f"node/{node_id}/config"] * 2
