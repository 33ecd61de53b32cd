"""rmnode on a simulated board against the bench broker: a claimed node connects over mutual TLS
with its stored identity, announces its config, sends its user's mapping request once, keeps the
connection (pings, reconnects) and says clearly why a broker turned it away.

The expected payloads are written from ESP RainMaker's firmware (esp-rainmaker v1.16.0,
components/esp_rainmaker/src/core/esp_rmaker_node_config.c and esp_rmaker_user_mapping.c), and
what the broker received is what it recorded (events.jsonl), not what the board says it sent.
"""

from __future__ import annotations

import datetime
import json
import os
import signal
import socket
import threading
import time
import uuid
from typing import Any

import pytest
from rmbench.broker.harness import RunningBroker
from rmbench.micropython import Interpreter
from rmbench.service.harness import RunningService

from .conftest import BoardFactory, IdentityFactory
from .node_support import (
    STORE_IDENTITY,
    identity_args,
    led_flash_groups,
    node_config,
    relay_to,
    run_node,
    steps,
)
from .support import HostClient
from .test_broker import _rogue_claim_ca

# Claims, stores a user id and secret key where field onboarding leaves them, connects.
ANNOUNCE = """
import os, rmboot, rmclaim, rmnode
creds = rmclaim.ensure_claimed(ARGS["cfg"])
node_id = creds.node_id
del creds
if ARGS.get("map"):
    nvs = rmclaim.nvs("rmclaim_map")
    nvs.set_blob("user_id", ARGS["map"][0])
    nvs.set_blob("secret_key", ARGS["map"][1])
node = rmnode.start(ARGS["cfg"], rmboot.status)
loaded = sorted(m for m in sys.modules if m.startswith(("rmclaim", "rmnode")))
node.disconnect()
out({"node_id": node_id, "loaded": loaded, "release": os.uname().release})
"""


@pytest.mark.parametrize("firmware", ["1.23", "1.28", "preview"])  # umqtt 1.4.0, 1.7.0, 1.8.0
def test_claimed_board_announces_its_config_and_its_user(
    service: RunningService,
    broker: RunningBroker,
    mpy: Interpreter,
    new_board: BoardFactory,
    firmware: str,
) -> None:
    board = new_board("announce", firmware=firmware)
    service.register(board.mac, board.unique_id)
    user_id, secret = f"user-{uuid.uuid4().hex[:8]}", str(uuid.uuid4())
    args = {"cfg": node_config(service, broker), "map": [user_id, secret]}
    got, lines, _ = run_node(board, mpy, ANNOUNCE, args)
    node_id = got["node_id"]
    assert node_id == board.mac
    assert steps(lines)[-3:] == ["mqtt:ok", "nodeconfig:ok", "mapping:ok"]
    mqtt, config_line, mapping_line = lines[-3:]
    assert (mqtt.fields["host"], mqtt.fields["port"]) == ("localhost", str(broker.port))
    assert mqtt.fields["node_id"] == node_id
    assert config_line.fields["topic"] == f"node/{node_id}/config"
    assert mapping_line.fields["user_id"] == user_id
    # The claim's library is off the heap while MQTT runs (its package holds the NVS handles),
    # and so is what the node needed only to come online (rmnode.setup, .model, .mapping).
    assert got["loaded"] == ["rmclaim", "rmclaim.errors", "rmnode", "rmnode.node"]

    (connect,) = [e for e in broker.events("connect") if e["client_id"] == node_id]
    assert connect["accepted"] and connect["cn"] == node_id and connect["keepalive"] == 120
    sent = broker.published(client_id=node_id)
    assert [(p.topic, p.qos, p.retain) for p in sent] == [
        (f"node/{node_id}/config", 1, False),
        (f"node/{node_id}/user/mapping", 1, False),
    ]
    assert json.loads(sent[0].payload) == {
        "node_id": node_id,
        "config_version": "2020-03-20",
        "info": {
            "name": "MicroPython node",
            "fw_version": got["release"],
            "type": "MicroPython",
            "model": "rmnode",
            "project_name": "rmnode",
            "platform": "esp32s3",
        },
    }
    assert json.loads(sent[1].payload) == {
        "node_id": node_id,
        "user_id": user_id,
        "secret_key": secret,
        "reset": True,
    }
    # The broker handed it to the service: no user asked for this node yet, so it waits there.
    handed = broker.wait_for(
        lambda e: e["event"] == "mapping" and e["client_id"] == node_id, "the mapping hand-over"
    )
    assert handed["result"] == "pending"
    # Acknowledged, so erased: the next connection sends none.
    assert "user_id" not in board.nvs().get("rmclaim_map", {})
    assert "secret_key" not in board.nvs().get("rmclaim_map", {})


APP = """
import rmboot, rmclaim, rmnode
rmclaim.ensure_claimed(ARGS["cfg"])
node = rmnode.start(ARGS["cfg"], rmboot.status)
light = node.add_device("Light", "esp.device.lightbulb", "Power")
light.add_param("Power", False, "esp.param.power", "esp.ui.toggle")
light.add_param("Brightness", 50, "esp.param.brightness", "esp.ui.slider", bounds=(0, 100, 1))
light.add_param("Mode", "warm", "esp.param.mode", write=False, valid_strs=("warm", "cold"))
node.report_config()
got = []
def on_params(params):
    got.append(params)
    light.values.update(params["Light"])
    node.report_params({"Light": params["Light"]})
node.on_params(on_params)
while not got:
    node.poll(200)
node._c.pid = 65535  # umqtt.simple never wraps its packet ids: rmnode does
ok = node.report_params()
node.disconnect()
out({"got": got, "ok": ok})
"""


def test_app_adds_devices_reports_params_and_gets_remote_ones(
    service: RunningService,
    broker: RunningBroker,
    mpy: Interpreter,
    new_board: BoardFactory,
) -> None:
    board = new_board("app")
    service.register(board.mac, board.unique_id)
    node_id = board.mac
    cloud = HostClient.bench(broker, f"cloud-{node_id}")
    assert cloud.connect(broker.bench_port, "127.0.0.1")[0] == "connack"
    result: dict[str, Any] = {}

    def device() -> None:
        result.update(run_node(board, mpy, APP, {"cfg": node_config(service, broker)})[0] or {})

    t = threading.Thread(target=device)
    t.start()
    try:
        sub = broker.wait_for(
            lambda e: e["event"] == "subscribe" and e["client_id"] == node_id, "the SUBSCRIBE"
        )
        cloud.publish(f"node/{node_id}/params/remote", b'{"Light": {"Power": true}}')
    finally:
        t.join(60)
        cloud.close()
    assert sub["filters"] == [[f"node/{node_id}/params/remote", 1]]
    assert result == {"got": [{"Light": {"Power": True}}], "ok": True}
    sent = broker.published(client_id=node_id)
    assert [p.topic.rsplit("/", 2)[-1] for p in sent] == ["config", "config", "local", "local"]
    # The config an app's devices make, key for key as esp_rmaker_node_config.c reports them.
    assert json.loads(sent[1].payload)["devices"] == [
        {
            "name": "Light",
            "type": "esp.device.lightbulb",
            "primary": "Power",
            "params": [
                {
                    "name": "Power",
                    "type": "esp.param.power",
                    "data_type": "bool",
                    "properties": ["read", "write"],
                    "ui_type": "esp.ui.toggle",
                },
                {
                    "name": "Brightness",
                    "type": "esp.param.brightness",
                    "data_type": "int",
                    "properties": ["read", "write"],
                    "bounds": {"min": 0, "max": 100, "step": 1},
                    "ui_type": "esp.ui.slider",
                },
                {
                    "name": "Mode",
                    "type": "esp.param.mode",
                    "data_type": "string",
                    "properties": ["read"],
                    "valid_strs": ["warm", "cold"],
                },
            ],
        }
    ]
    assert json.loads(sent[2].payload) == {"Light": {"Power": True}}
    assert json.loads(sent[3].payload) == {
        "Light": {"Power": True, "Brightness": 50, "Mode": "warm"}
    }
    assert sent[3].packet_id == 1  # after id 65535: 1 again, and acknowledged
    assert {p.qos for p in sent} == {1}


# --- refusals: what the board says, and that it keeps its identity ----------------------------

# The firmware's step after the claim, as main.py runs it (max_attempts rounds).
ONLINE = """
import rmboot
rmboot._CONFIG = ARGS["config"]
node = rmboot.online()
out({"node": node is not None})
"""


def test_broker_refusals_are_told_apart_and_the_identity_is_kept(
    service: RunningService,
    broker: RunningBroker,
    identity: IdentityFactory,
    mpy: Interpreter,
    new_board: BoardFactory,
) -> None:
    now = datetime.datetime.now(datetime.UTC)
    silent = socket.create_server(("127.0.0.1", 0))  # never accepts: the kernel does the TCP part
    good = identity("good")
    other = identity("other")
    cases: dict[str, tuple[dict[str, str], dict[str, Any]]] = {
        # A certificate from another CA (the claim CA's name, another key): refused in the
        # handshake.
        "other_ca": (identity_args(identity("rogue", issuer=_rogue_claim_ca())), {}),
        # A node id that is not the certificate's CN: no CONNACK.
        "wrong_id": (identity_args(good, node_id=other.cn), {}),
        "expired": (
            identity_args(
                identity(
                    "old",
                    not_before=now - datetime.timedelta(days=9),
                    not_after=now - datetime.timedelta(days=1),
                )
            ),
            {},
        ),
        # The board pins a CA that did not sign the broker's certificate.
        "wrong_ca": (identity_args(good), {"mqtt_ca": service.claim_ca_pem}),
        # Nothing listens there.
        "unreachable": (identity_args(good), {"mqtt_port": _free_port()}),
        # A port that takes the connection and never answers: the handshake times out.
        "silent": (identity_args(good), {"mqtt_port": silent.getsockname()[1], "timeout_s": 1}),
    }
    boards = {name: new_board(name) for name in cases}
    before: dict[str, Any] = {}
    results: dict[str, Any] = {}

    def run(name: str) -> None:
        ident, more = cases[name]
        board = boards[name]
        config = board.directory / "rmclaim.json"
        config.write_text(json.dumps(node_config(service, broker, max_attempts=2, **more)))
        # The identity first (a run of its own: the store keeps it, as a claim would).
        run_node(board, mpy, STORE_IDENTITY + "\nout(1)", ident)
        before[name] = board.nvs()["rmaker_creds"]
        results[name] = run_node(board, mpy, ONLINE, {"config": str(config)})

    threads = [threading.Thread(target=run, args=(name,)) for name in cases]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    silent.close()
    want = {
        "other_ca": ("rejected", "OSError", 4),
        "wrong_id": ("rejected", "IndexError", 4),
        "expired": ("rejected", "OSError", 4),
        "wrong_ca": ("config", "ValueError", 6),
        "unreachable": ("unreachable", "OSError", 3),
        "silent": ("unreachable", "OSError", 3),
    }
    for name, (cls, kind, flashes) in want.items():
        got, lines, out = results[name]
        assert got == {"node": False}, out
        errors = [s for s in lines if s.step == "mqtt" and s.outcome == "error"]
        assert len(errors) == 2, (name, out)
        assert {(s.fields["class"], s.fields["kind"]) for s in errors} == {(cls, kind)}, name
        waits = [s for s in lines if s.step == "backoff"]
        assert [(w.fields["class"], w.fields["round"]) for w in waits] == [(cls, "1")], name
        assert waits[0].fields["retryable"] == ("no" if cls == "config" else "yes"), name
        assert steps(lines)[-1] == "mqtt:fail" and lines[-1].fields["rounds"] == "2", name
        # The LED: the class's flash count, once per failed round.
        assert led_flash_groups(boards[name]) == [flashes, flashes], name
        # Nothing of the identity was touched.
        assert boards[name].nvs()["rmaker_creds"] == before[name], name
    msg = {name: results[name][1][-2].fields["msg"] for name in want}
    assert "refused our certificate in the TLS handshake" in msg["other_ca"]
    assert f"refused client id {other.cn} with this certificate" in msg["wrong_id"]
    assert "failed our check (mqtt_ca" in msg["wrong_ca"]
    assert "cannot reach" in msg["unreachable"]
    assert "no TLS handshake with" in msg["silent"]
    # The broker saw the handshakes fail for the certificates it refused.
    refused = [e["reason"] for e in broker.events("tls_refused")]
    assert any("unable to get local issuer certificate" in r for r in refused)
    assert any("certificate has expired" in r for r in refused)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- keeping the connection -------------------------------------------------------------------

SESSION = """
import rmboot, rmclaim, rmnode
rmclaim.ensure_claimed(ARGS["cfg"])
nvs = rmclaim.nvs("rmclaim_map")
nvs.set_blob("user_id", "u-restart")
nvs.set_blob("secret_key", "k-restart")
node = rmnode.start(ARGS["cfg"], rmboot.status)
print("CONNECTED")
while node.connects < ARGS["until"]:
    node.poll(200)
node.disconnect()
out({"connects": node.connects})
"""


def test_broker_restart_mid_session_reconnects_without_mapping_again(
    claim_service: RunningService,
    mqtt_broker: RunningBroker,
    mpy: Interpreter,
    new_board: BoardFactory,
) -> None:
    board = new_board("restart")
    claim_service.register(board.mac, board.unique_id)
    node_id = board.mac
    cfg = node_config(claim_service, mqtt_broker, max_attempts=0, backoff_cap_s=1)
    result: list[Any] = []
    t = threading.Thread(
        target=lambda: result.append(run_node(board, mpy, SESSION, {"cfg": cfg, "until": 2}))
    )
    t.start()
    try:
        mqtt_broker.wait_for_publish(f"node/{node_id}/user/mapping")
        time.sleep(0.5)  # the PUBACK reaches the board and the request is erased
        mqtt_broker.restart()
    finally:
        t.join(60)
    got, lines, out = result[0]
    assert got == {"connects": 2}, out
    assert steps(lines)[:3] == ["mqtt:ok", "nodeconfig:ok", "mapping:ok"]
    lost = lines[3]
    assert (lost.step, lost.outcome, lost.fields["class"]) == ("mqtt", "error", "unreachable")
    assert "connection lost" in lost.fields["msg"]
    assert steps(lines)[-2:] == ["mqtt:ok", "nodeconfig:ok"]
    assert lines[-2].fields["connects"] == "2"
    # In the broker's record: config and mapping, the restart, then the config only.
    record = [
        e["event"] if e["event"] == "start" else e["topic"].split("/", 2)[2]
        for e in mqtt_broker.events()
        if e["event"] == "start" or (e["event"] == "publish" and e["client_id"] == node_id)
    ]
    assert record == ["start", "config", "user/mapping", "start", "config"]


KEEPALIVE = """
import rmboot, rmclaim, rmnode
rmclaim.ensure_claimed(ARGS["cfg"])
node = rmnode.start(ARGS["cfg"], rmboot.status)
print("CONNECTED")
t0 = time.ticks_ms()
while time.ticks_diff(time.ticks_ms(), t0) < ARGS["ms"] and node.connects < ARGS["until"]:
    node.poll(100)
node.disconnect()
out({"connects": node.connects})
""".replace("import rmboot", "import time, rmboot")


def test_keepalive_pings_hold_the_link_and_a_silent_broker_is_noticed(
    claim_service: RunningService,
    mqtt_broker: RunningBroker,
    mpy: Interpreter,
    new_board: BoardFactory,
) -> None:
    # keepalive 2 s: the broker drops a client silent for 3 s (MQTT 3.1.1 section 3.1.2.10),
    # so a session of 6 s holds only with pings. Then the broker process is stopped (SIGSTOP:
    # its sockets stay open, nothing answers): the next ping goes unanswered, the board says so
    # and reconnects once the broker runs again.
    board = new_board("keepalive")
    claim_service.register(board.mac, board.unique_id)
    node_id = board.mac
    cfg = node_config(claim_service, mqtt_broker, max_attempts=0, mqtt_keepalive_s=2, timeout_s=2)
    result: list[Any] = []
    args = {"cfg": cfg, "ms": 30000, "until": 2}
    t = threading.Thread(target=lambda: result.append(run_node(board, mpy, KEEPALIVE, args)))
    t.start()
    pid = mqtt_broker.process.pid
    try:
        mqtt_broker.wait_for_publish(f"node/{node_id}/config")
        time.sleep(6)
        closed = [e for e in mqtt_broker.events("closed") if e["client_id"] == node_id]
        assert closed == []  # still connected after 3 keep-alive periods
        os.kill(pid, signal.SIGSTOP)
        time.sleep(4)
    finally:
        os.kill(pid, signal.SIGCONT)
        t.join(60)
    got, lines, out = result[0]
    assert got == {"connects": 2}, out
    errors = [s for s in lines if s.step == "mqtt" and s.outcome == "error"]
    assert errors[0].fields["class"] == "unreachable"
    assert "no answer from localhost" in errors[0].fields["msg"], out
    assert "of a ping" in errors[0].fields["msg"]
    assert {s.fields["class"] for s in errors} == {"unreachable"}, out


# --- TLS memory: the claim's session and the MQTT session never overlap ------------------------

FIRST_BOOT = """
import rmboot
rmboot._CONFIG = ARGS["config"]
if rmboot.main() is not None:
    node = rmboot.online()
    while node.connects < ARGS["until"]:
        node.poll(100)
    node.disconnect()
    out({"connects": node.connects})
"""


@pytest.mark.parametrize("firmware", ["1.23", "1.28"])  # 1.4.0 never closes an old socket
def test_claim_session_is_closed_before_mqtt_opens_and_each_mqtt_session_before_the_next(
    service: RunningService,
    broker: RunningBroker,
    mpy: Interpreter,
    new_board: BoardFactory,
    firmware: str,
) -> None:
    # A relay in front of the broker looks, as each MQTT connection arrives, at every TCP
    # socket the board's process has open: only that one may be (the claim's TLS connection to
    # the service, and any earlier MQTT session, closed by then: one ESP32 has RAM for one
    # session). The relay then breaks the first session, so the board reconnects.
    board = new_board("overlap", firmware=firmware)
    service.register(board.mac, board.unique_id)
    with relay_to(broker.port) as relay:
        cfg = node_config(
            service,
            broker,
            mqtt_port=relay.port,
            wifi_ssid="rmbench",
            wifi_password="bench-pass",
            wifi_timeout_s=2,
        )
        config = board.directory / "rmclaim.json"
        config.write_text(json.dumps(cfg))
        result: list[Any] = []
        args = {"config": str(config), "until": 2}
        t = threading.Thread(target=lambda: result.append(run_node(board, mpy, FIRST_BOOT, args)))
        t.start()
        try:
            broker.wait_for_publish(f"node/{board.mac}/config", timeout=60)
            relay.drop()
        finally:
            t.join(90)
    got, lines, out = result[0]
    assert got == {"connects": 2}, out
    assert "store:ok" in steps(lines) and "claimed:ok" in steps(lines)  # a first boot: claimed
    assert len(relay.seen) == 2
    for seen in relay.seen:
        assert seen.pid is not None and seen.own is not None  # the board's process, found
        assert seen.others == [], f"open TCP sockets besides the MQTT one: {seen.others}"
