"""A claimed board's MQTT session within a board's heap, at 32 bits (objects an ESP32's size).

The session starts from the stored identity (a boot after the claim), sends a mapping request,
and must fit within the ESP32's initial GC heap (56 KB, ports/esp32/mpconfigport.h v1.23-v1.28)
with the board doubles on the heap too (a board has them built in): this guards 54 KB, 2 KB over
what `make bench BENCH=mqtt` measured when written (mqtt_min_heap_kb_32: 52 KB over 3 boards;
the layout varies with the random key and serials), and that only rmnode's core and the rmclaim
package stay loaded.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from rmbench.boardsim import deploy_for_heap
from rmbench.broker.harness import RunningBroker, running_broker
from rmbench.micropython import Interpreter
from rmbench.service.harness import RunningService

from .conftest import BoardFactory
from .support import claim_config, result

HEAP_32 = "54K"

CLAIM = """
import json, rmclaim
c = rmclaim.ensure_claimed(%r)
n = rmclaim.nvs("rmclaim_map")
n.set_blob("user_id", "u-0123456789abcdef")
n.set_blob("secret_key", "3b0e7c5c-5a63-4c5f-9b0a-3c2c8d2f7e11")
print("RESULT:" + json.dumps(c.node_id))
"""

SESSION = """
import json, sys
import rmnode
steps = []
node = rmnode.start(%r, lambda step, outcome, fields: steps.append(step + ":" + outcome))
loaded = sorted(m for m in sys.modules if m.startswith(("rmclaim", "rmnode")))
node.disconnect()
print("RESULT:" + json.dumps({"steps": steps, "loaded": loaded}))
"""


@pytest.fixture(scope="module")
def broker(
    svc: RunningService, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningBroker]:
    with running_broker(tmp_path_factory.mktemp("broker"), svc.state_dir) as b:
        yield b


def test_mqtt_session_within_the_32_bit_heap(
    mpy32: Interpreter,
    svc: RunningService,
    broker: RunningBroker,
    new_board: BoardFactory,
    tmp_path: Path,
) -> None:
    board = new_board("node-heap32")
    svc.register(board.mac, board.unique_id)
    cfg = claim_config(svc)
    cfg.update(mqtt_ca=broker.server_ca_pem, mqtt_host="localhost", mqtt_port=broker.port)
    config = board.directory / "rmclaim.json"
    config.write_text(json.dumps(cfg))
    root = tmp_path / "deployed"
    path = deploy_for_heap(root)
    node_id = result(
        mpy32.run(CLAIM % str(config), heap="1M", path=path, env=board.env(), cwd=root)
    )
    out = mpy32.run(SESSION % str(config), heap=HEAP_32, path=path, env=board.env(), cwd=root)
    got = result(out)
    assert got["steps"] == ["mqtt:ok", "nodeconfig:ok", "mapping:ok"]
    assert got["loaded"] == ["rmclaim", "rmclaim.errors", "rmnode", "rmnode.node"]
    (sent,) = broker.published(topic=f"node/{node_id}/user/mapping")
    assert sent.client_id == node_id
