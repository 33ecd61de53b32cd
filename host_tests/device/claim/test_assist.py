"""Host-assisted claim (the device half), forget() and re-claim, and the retry schedule."""

from __future__ import annotations

import json
from typing import Any

from rmbench.micropython import Interpreter
from rmbench.service import client
from rmbench.service.harness import RunningService

from .conftest import BoardFactory
from .support import claim_config, run_device
from .test_claim import assert_claimed

DEVICE = """
import rmclaim
res = {}
for name, call in ARGS:
    try:
        if name == "info":
            r = rmclaim.device_info(True)
        elif name == "csr":
            r = rmclaim.prepare_csr(call[0])
        elif name == "accept":
            c = rmclaim.accept_certificate(*call)
            r = [c.node_id, c.mqtt_host]
        elif name == "claim":
            r = rmclaim.ensure_claimed(call).node_id
        elif name == "forget":
            r = rmclaim.forget()
        elif name == "load":
            c = rmclaim.load_credentials()
            r = None if c is None else c.node_id
        res[name] = {"ok": r}
    except Exception as e:
        res[name] = err(e)
out(res)
"""


def _post(svc: RunningService, path: str, body: dict[str, Any], token: str) -> dict[str, Any]:
    r = client.request(
        svc.base_url,
        "POST",
        path,
        ca_file=svc.server_ca_file,
        body=json.dumps(body).encode(),
        headers={"Authorization": token},
    )
    assert r.status == 200, r.body
    obj: dict[str, Any] = r.json()
    return obj


def test_host_assisted_claim(
    svc: RunningService, mpy: Interpreter, new_board: BoardFactory
) -> None:
    svc.add_user("tok-assist", quota=5)
    board, other = new_board("assisted", "esp32"), new_board("other", "esp32h2")
    info = run_device(mpy, DEVICE, [["info", []]], board=board)["info"]["ok"]
    assert info == {
        "machine": "Generic ESP32 module with ESP32",
        "family": "esp32",
        "platform": "esp32",
        "mac": board.mac,
        "self_claim": False,
    }
    node_id = _post(
        svc, "/claim/initiate", {"mac_addr": board.mac, "platform": "esp32"}, "tok-assist"
    )["node_id"]
    res = run_device(mpy, DEVICE, [["accept", [node_id, "x"]], ["csr", [node_id]]], board=board)
    assert res["accept"]["kind"] == "StoreError"  # no key yet
    assert "call prepare_csr(node_id) first" in res["accept"]["error"]
    csr = res["csr"]["ok"]
    assert csr.startswith("-----BEGIN CERTIFICATE REQUEST-----\n")
    key_before = board.nvs()["rmaker_creds"]["client_key"]
    reply = _post(svc, "/claim/verify", {"csr": csr, "send_mqtt_host": True}, "tok-assist")
    cert, mqtt = reply["certificate"], reply["mqtt_host"]

    # Another board must refuse this certificate (another key, another CN), storing nothing.
    other_info = run_device(mpy, DEVICE, [["info", []], ["csr", ["X"]]], board=other)
    assert other_info["info"]["ok"]["self_claim"] is True
    refused = run_device(mpy, DEVICE, [["accept", [node_id, cert, mqtt]]], board=other)
    assert refused["accept"]["kind"] == "BadCertificate"
    assert "another key" in refused["accept"]["error"]
    assert "client_cert" not in other.nvs()["rmaker_creds"]

    done = run_device(
        mpy,
        DEVICE,
        [["accept", [node_id, cert, mqtt, None, svc.claim_ca_pem]], ["load", []]],
        board=board,
    )
    assert done["accept"]["ok"] == [node_id, mqtt] and done["load"]["ok"] == node_id
    assert board.nvs()["rmaker_creds"]["client_key"] == key_before
    assert_claimed(board, svc, node_id)
    again = run_device(mpy, DEVICE, [["accept", [node_id, cert, mqtt]]], board=board)
    assert again["accept"]["kind"] == "StoreError"
    assert f"already claimed as node '{node_id}'" in again["accept"]["error"]


def test_forget_then_claim_again(
    svc: RunningService, mpy: Interpreter, new_board: BoardFactory
) -> None:
    board = new_board("forget")
    svc.register(board.mac, board.unique_id)
    cfg = claim_config(svc)
    first = run_device(mpy, DEVICE, [["claim", cfg]], board=board)["claim"]["ok"]
    key1 = board.nvs()["rmaker_creds"]["client_key"]
    res = run_device(mpy, DEVICE, [["forget", []], ["load", []]], board=board)
    assert res["load"]["ok"] is None and board.nvs() == {}
    second = run_device(mpy, DEVICE, [["claim", cfg]], board=board)["claim"]["ok"]
    assert first == second == board.mac  # a self-claimed node keeps its id, the MAC
    assert board.nvs()["rmaker_creds"]["client_key"] != key1  # with a new key
    assert_claimed(board, svc, board.mac)


BACKOFF = """
from rmclaim import backoff, config, errors
cfg = config.load({"service_url": "https://h", "ca": "-----BEGIN CERTIFICATE-----",
                   "backoff_base_s": 2, "backoff_cap_s": 60})
net = errors.NetworkError("x")
ra = errors.ServiceUnavailable("x", 503, retry_after=30)
huge = errors.ServiceUnavailable("x", 503, retry_after=10 ** 6)
quota = errors.QuotaExceeded("x", 403)
res = []
for attempt, e, f in ARGS:
    e = {"net": net, "ra": ra, "huge": huge, "quota": quota}[e]
    res.append(backoff.backoff_s(cfg, attempt, e, f))
rand = [backoff.backoff_s(cfg, 3, net) for _ in range(200)]
res.append([min(rand), max(rand)])
out(res)
"""


def test_backoff_schedule(interp: Interpreter) -> None:
    cases = [
        [1, "net", 1.0],  # full jitter: uniform in [0, base * 2^(attempt-1)]
        [1, "net", 0.5],
        [3, "net", 1.0],
        [5, "net", 1.0],  # 32 s
        [6, "net", 1.0],  # 64 s -> capped at 60
        [40, "net", 0.25],  # far out: still the cap, no overflow
        [1, "ra", 0.0],  # never sooner than Retry-After
        [6, "ra", 1.0],  # the schedule when it is longer
        [1, "huge", 0.0],  # an absurd Retry-After is read as an hour
        [1, "quota", 0.0],  # quota: half the cap at least
        [1, "quota", 1.0],
    ]
    res = run_device(interp, BACKOFF, cases)
    assert res[:-1] == [2, 1, 8, 32, 60, 15, 30, 60, 3600, 30, 60]
    low, high = res[-1]
    assert 0 <= low < 2 and 6 < high <= 8  # 200 draws spread over [0, 8]
