"""What a claim stores is what the broker wants: a simulated board claims from the local service,
then, after a reboot (a new process, only NVS kept), opens MQTT over mutual TLS with the stored
key and certificate through the frozen umqtt.simple, as its node id."""

from __future__ import annotations

import json

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from rmbench.broker.harness import RunningBroker
from rmbench.micropython import Interpreter
from rmbench.service.harness import RunningService

from .conftest import BoardFactory
from .support import HostClient, run_board

CLAIM = """
import rmclaim
out({"node_id": rmclaim.ensure_claimed(ARGS).node_id})
"""

# After the reboot: the identity from NVS, the broker's CA pinned, client id = node id.
NODE = """
import tls, rmclaim
from umqtt.simple import MQTTClient
a = ARGS
creds = rmclaim.load_credentials()
ctx = tls.SSLContext(tls.PROTOCOL_TLS_CLIENT)
ctx.verify_mode = tls.CERT_REQUIRED
ctx.load_verify_locations(bytes.fromhex(a["ca"]))
ctx.load_cert_chain(creds.cert_der(), creds.key_der())
c = MQTTClient(creds.node_id, "localhost", a["port"], keepalive=60, ssl=ctx)
session = c.connect()
mapping = json.dumps({"node_id": creds.node_id, "user_id": a["user_id"],
                      "secret_key": a["secret_key"], "reset": True})
c.publish("node/%s/user/mapping" % creds.node_id, mapping, qos=1)
c.disconnect()
out({"node_id": creds.node_id, "session": session})
"""


@pytest.mark.parametrize(("profile", "token"), [("esp32s3", None), ("esp32", "tok-mqtt")])
def test_claimed_board_connects_as_its_node_and_maps_once(
    service: RunningService,
    broker: RunningBroker,
    mpy: Interpreter,
    new_board: BoardFactory,
    profile: str,
    token: str | None,
) -> None:
    board = new_board("claimed", profile)
    # The claim config as the device tests write it: this service, short backoff.
    cfg = {
        "service_url": service.base_url,
        "ca": service.server_ca_pem,
        "max_attempts": 3,
        "backoff_base_s": 0.05,
        "backoff_cap_s": 0.2,
        "timeout_s": 5,
    }
    if token:
        service.add_user(token, quota=5)
        cfg["access_token"] = token
    else:
        service.register(board.mac, board.unique_id)
    node_id = run_board(board, mpy, CLAIM, cfg)["node_id"]
    cloud = HostClient.bench(broker, f"cloud-{node_id}")
    assert cloud.connect(broker.bench_port, "127.0.0.1")[0] == "connack"
    cloud.subscribe(f"node/{node_id}/user/mapping")
    ca_der = x509.load_pem_x509_certificate(broker.server_ca_pem.encode()).public_bytes(
        Encoding.DER
    )
    args = {"ca": ca_der.hex(), "port": broker.port, "user_id": "u-42", "secret_key": "s-42"}
    try:
        got = run_board(board, mpy, "import json\n" + NODE, args)
        topic, payload = cloud.next("message")[1:]
    finally:
        cloud.close()
    assert got == {"node_id": node_id, "session": 0}
    assert topic == f"node/{node_id}/user/mapping"
    assert json.loads(payload) == {
        "node_id": node_id,
        "user_id": "u-42",
        "secret_key": "s-42",
        "reset": True,
    }
    (connect,) = [e for e in broker.events("connect") if e["client_id"] == node_id]
    assert connect["accepted"] is True and connect["cn"] == node_id
    (sent,) = broker.published(topic=f"node/{node_id}/user/mapping")
    assert (sent.client_id, sent.qos, sent.dup) == (node_id, 1, False)
