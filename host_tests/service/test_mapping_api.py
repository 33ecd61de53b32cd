"""The user-node mapping API over HTTP(S) on a running `rmbench serve`: framing, the internal
node-mapping endpoint, `rmbench user nodes`, `--mapping-ttl`."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from rmbench.cli import main
from rmbench.service import accounts
from rmbench.service.app import create_app
from rmbench.service.ca import load_or_create_authorities
from rmbench.service.harness import RunningService, running_service
from rmbench.service.logic import ClaimFailure, ClaimService, Settings
from rmbench.service.store import Store

from .helpers import call, check_framing, failure, make_csr, self_claim


def user(svc: RunningService, name: str) -> dict[str, str]:
    """Headers of a new user (token = name), as esp-rainmaker-cli sends them."""
    svc.add_user(name, quota=20)
    return {"Authorization": name, "Content-Type": "application/json"}


def token_claim(svc: RunningService, auth: dict[str, str], mac: str) -> tuple[str, Any]:
    r = call(svc, "POST", "/claim/initiate", {"mac_addr": mac, "platform": "esp32"}, headers=auth)
    node_id = r.json()["node_id"]
    csr, key = make_csr(node_id)
    assert call(svc, "POST", "/claim/verify", {"csr": csr}, headers=auth).status == 200
    return node_id, key


def map_by_challenge(svc: RunningService, auth: dict[str, str], node_id: str, key: Any) -> None:
    init = call(svc, "POST", "/v1/user/nodes/mapping/initiate", {"timeout": 360}, headers=auth)
    assert init.status == 200, init.body
    sig = key.sign(init.json()["challenge"].encode(), ec.ECDSA(hashes.SHA256()))
    obj = {"request_id": init.json()["request_id"], "node_id": node_id}
    r = call(
        svc,
        "POST",
        "/v1/user/nodes/mapping/verify",
        {**obj, "challenge_response": sig.hex()},
        headers=auth,
    )
    assert r.status == 200, r.body


def test_self_claimed_node_mapped_by_challenge_response(svc: RunningService) -> None:
    # A self-claimed node's id is its MAC; its certificate is found all the same.
    mac, uid = "7CDFA1AA0001", bytes(range(16))
    svc.register(mac, uid)
    _, key = self_claim(svc, mac, uid)
    auth = user(svc, "self-claim-owner")
    map_by_challenge(svc, auth, mac, key)
    r = call(svc, "GET", "/v1/user/nodes", headers=auth)
    assert r.json() == {"nodes": [mac], "total": 1}


def test_status_query_as_the_cli_builds_it(svc: RunningService) -> None:
    auth = user(svc, "status-poller")
    node_id, _ = token_claim(svc, auth, "7CDFA1AA0002")
    body = {"node_id": node_id, "secret_key": "k", "operation": "add"}
    request_id = call(svc, "PUT", "/v1/user/nodes/mapping", body, headers=auth).json()[
        "request_id"
    ]
    # rmaker_lib/node.py get_mapping_status: 'user/nodes/mapping' + '?' + '&request_id=' + id
    r = call(svc, "GET", f"/v1/user/nodes/mapping?&request_id={request_id}", headers=auth)
    assert r.json() == {
        "request_id": request_id,
        "request_status": "requested",
        "user_node_id": node_id,
        "request_source": "user",
    }
    assert failure(call(svc, "GET", "/v1/user/nodes/mapping", headers=auth)) == (
        400,
        "request_id is required",
    )


def test_unauthorized_replies_keep_the_failure_shape(svc: RunningService) -> None:
    for method, path in (
        ("POST", "/v1/user/nodes/mapping/initiate"),
        ("POST", "/v1/user/nodes/mapping/verify"),
        ("PUT", "/v1/user/nodes/mapping"),
        ("GET", "/v1/user/nodes/mapping?request_id=x"),
        ("GET", "/v1/user/nodes"),
    ):
        body: dict[str, object] | None = None if method == "GET" else {}
        assert failure(call(svc, method, path, body)) == (401, "Unauthorized"), path
        bad = {"Authorization": "nobody"}
        assert failure(call(svc, method, path, body, headers=bad)) == (401, "Unauthorized")


def test_node_message_over_the_internal_endpoint(svc: RunningService) -> None:
    auth = user(svc, "internal-endpoint-user")
    node_id, _ = token_claim(svc, auth, "7CDFA1AA0003")
    body = {"node_id": node_id, "secret_key": "s3cret", "operation": "add"}
    request_id = call(svc, "PUT", "/v1/user/nodes/mapping", body, headers=auth).json()[
        "request_id"
    ]
    user_id = accounts.add_user(svc.state_dir, "internal-endpoint-user", quota=20)

    def publish(**fields: object) -> Any:
        r = svc.node_mapping(node_id, json.dumps({"node_id": node_id, **fields}).encode())
        check_framing(r)
        return r

    r = publish(user_id=user_id, secret_key="wrong", reset=True)
    assert failure(r) == (
        409,
        f"mismatch: no request of user {user_id} for node {node_id} holds this secret key",
    )
    r = publish(user_id=user_id, secret_key="s3cret", reset=True)
    assert r.status == 200
    assert r.json() == {
        "status": "success",
        "result": "confirmed",
        "request_id": request_id,
        "description": f"node {node_id} mapped to user {user_id}",
    }
    r = call(svc, "GET", f"/v1/user/nodes/mapping?request_id={request_id}", headers=auth)
    assert r.json()["request_status"] == "confirmed"
    assert svc.user_nodes("internal-endpoint-user") == [node_id]
    # Another user's message without reset cannot take the node.
    r = publish(user_id="someone-else", secret_key="x")
    assert failure(r)[0] == 409
    assert failure(r)[1].startswith("refused: ")
    r = svc.node_mapping("Ghost", b'{"node_id":"Ghost","user_id":"u","secret_key":"s"}')
    assert failure(r) == (404, "node Ghost has no certificate from this service")
    r = svc.node_mapping(node_id, b"{")
    assert failure(r) == (400, "mapping message: Request body is not valid JSON")


def test_internal_endpoint_needs_the_node_id(svc: RunningService) -> None:
    r = call(svc, "POST", "/internal/node-mapping", {"node_id": "x"})
    assert failure(r) == (400, "node_id (the node the broker authenticated) is required")


def test_internal_endpoint_refuses_non_loopback_clients(tmp_path: Path) -> None:
    authorities = load_or_create_authorities(tmp_path)
    app = create_app(ClaimService(Store.open(tmp_path), authorities.claim, Settings()))

    async def go(client_ip: str) -> httpx.Response:
        transport = httpx.ASGITransport(app=app, client=(client_ip, 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://svc") as c:
            payload = b'{"node_id":"N","user_id":"u","secret_key":"s"}'
            return await c.post("/internal/node-mapping?node_id=N", content=payload)

    far = asyncio.run(go("192.0.2.10"))
    assert far.status_code == 403
    assert far.json() == {
        "status": "failure",
        "description": "the internal endpoints answer loopback clients only",
    }
    near = asyncio.run(go("127.0.0.1"))
    assert near.status_code == 404  # reached the rules: N has no certificate


def test_in_process_node_message_reaches_the_running_server(svc: RunningService) -> None:
    # The MQTT side may call the rules directly on the state directory: same database.
    auth = user(svc, "in-process-user")
    user_id = accounts.add_user(svc.state_dir, "in-process-user", quota=20)
    node_id, _ = token_claim(svc, auth, "7CDFA1AA0004")
    payload = json.dumps(
        {"node_id": node_id, "user_id": user_id, "secret_key": "k", "reset": True}
    )
    outcome = accounts.node_mapping_message(svc.state_dir, node_id, payload.encode())
    assert outcome.result == "pending"
    body = {"node_id": node_id, "secret_key": "k", "operation": "add"}
    request_id = call(svc, "PUT", "/v1/user/nodes/mapping", body, headers=auth).json()[
        "request_id"
    ]
    r = call(svc, "GET", f"/v1/user/nodes/mapping?request_id={request_id}", headers=auth)
    assert r.json()["request_status"] == "confirmed"
    with pytest.raises(ClaimFailure) as e:
        accounts.node_mapping_message(svc.state_dir, node_id, b'{"node_id":"other"}')
    assert e.value.status == 400


def test_mapping_ttl_option(tmp_path: Path) -> None:
    with running_service(tmp_path / "svc", extra_args=["--mapping-ttl", "0.3"]) as svc:
        auth = user(svc, "ttl-user")
        node_id, _ = token_claim(svc, auth, "7CDFA1AA0005")
        body = {"node_id": node_id, "secret_key": "k", "operation": "add"}
        r = call(svc, "PUT", "/v1/user/nodes/mapping", body, headers=auth)
        request_id = r.json()["request_id"]
        time.sleep(0.5)
        r = call(svc, "GET", f"/v1/user/nodes/mapping?request_id={request_id}", headers=auth)
        assert r.json()["request_status"] == "timedout"


def test_mapping_ttl_must_be_positive(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["serve", "--state-dir", str(tmp_path / "svc"), "--mapping-ttl", "0"])
    assert code == 1
    assert capsys.readouterr().err == "rmbench: serve: --mapping-ttl must be positive, got 0\n"


def rmbench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rmbench.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_user_nodes_command(svc: RunningService) -> None:
    auth = user(svc, "cli-lister")
    user_id = accounts.add_user(svc.state_dir, "cli-lister", quota=20)
    nodes = [token_claim(svc, auth, f"7CDFA1AA01{i:02X}") for i in range(3)]
    for node_id, key in nodes[:2]:
        map_by_challenge(svc, auth, node_id, key)
    state = str(svc.state_dir)
    for who in (["--token", "cli-lister"], ["--user-id", user_id]):
        out = rmbench("user", "nodes", "--state-dir", state, *who)
        assert out.returncode == 0, out.stderr
        lines = out.stdout.splitlines()
        assert [line.split()[0] for line in lines] == sorted(n for n, _ in nodes[:2])
        for line in lines:
            _, how, when = line.split()
            assert how == "via=challenge_response"
            assert when.startswith("mapped=20") and when.endswith("Z")
    empty = rmbench("user", "nodes", "--state-dir", state, "--token", svc_user_without_nodes(svc))
    assert (empty.returncode, empty.stdout) == (0, "")
    unknown = rmbench("user", "nodes", "--state-dir", state, "--token", "no-such-token")
    assert unknown.returncode == 1
    assert unknown.stderr == (
        f"rmbench: user nodes: {state}: no user has this token (rmbench user add)\n"
    )
    neither = rmbench("user", "nodes", "--state-dir", state)
    assert neither.returncode == 1 and "one of the arguments --token --user-id" in neither.stderr


def svc_user_without_nodes(svc: RunningService) -> str:
    svc.add_user("lonely-user")
    return "lonely-user"
