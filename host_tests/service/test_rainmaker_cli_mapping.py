"""A real client no one here wrote: esp-rainmaker-cli's user-node mapping, end to end, offline.

esp-rainmaker-cli 1.14.1 (its venv, as test_rainmaker_cli.py makes it) runs its own functions
(cli_mapping_peer.py), its `provision` command with only the device exchange replaced
(cli_provision_driver.py), and its `getnodes`, `getnodedetails` and `removenode` commands,
against `rmbench serve --insecure-http` on loopback (the CLI's user API calls verify HTTPS only
against its bundled Amazon root CA). Each user is a logged-in profile holding a locally made JWT
(`custom:user_id`, `exp`), the token this service knows the user by. Nodes are claimed through
the real service first; the signatures their "device" makes are cryptography's, with the key
whose certificate the service issued.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from rmbench.rainmaker_cli import jwt, write_profile
from rmbench.service import client
from rmbench.service.harness import RunningService, running_service
from rmbench.service.store import Store

from .helpers import make_csr
from .test_rainmaker_cli import rainmaker_cli, run_cli

__all__ = ["rainmaker_cli"]  # the fixture, shared with test_rainmaker_cli.py

HERE = Path(__file__).parent


@dataclass(frozen=True)
class CliUser:
    """A service user and the esp-rainmaker-cli profile logged in as them."""

    user_id: str
    token: str
    config_dir: Path
    env: dict[str, str]


def cli_user(svc: RunningService, tmp_path: Path, name: str) -> CliUser:
    user_id = f"{name}-{uuid.uuid4().hex[:12]}"
    token = jwt({"exp": int(time.time()) + 3600, "custom:user_id": user_id, "iss": "rmbench"})
    svc.add_user(token, quota=20, user_id=user_id)
    config = tmp_path / f"rm-config-{user_id}"
    write_profile(config, svc.base_url, token)
    home = tmp_path / f"home-{user_id}"
    home.mkdir()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "RM_USER_CONFIG_DIR": str(config),
        "PYTHONUNBUFFERED": "1",
    }
    return CliUser(user_id, token, config, env)


class CliPeer:
    """cli_mapping_peer.py in the CLI's venv: one JSON command per line."""

    def __init__(self, python: Path, home: Path) -> None:
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home)}
        self.log = (home / "peer.log").open("w+")
        self.proc = subprocess.Popen(
            [str(python), str(HERE / "cli_mapping_peer.py")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            env=env,
            text=True,
            bufsize=1,
        )

    def call(self, op: str, as_user: CliUser, **args: Any) -> Any:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(
            json.dumps({"op": op, "config_dir": str(as_user.config_dir), **args})
        )
        self.proc.stdin.write("\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            self.log.seek(0)
            raise AssertionError(f"the CLI peer died: {self.log.read()[-3000:]}")
        answer = json.loads(line)
        if "error" in answer:
            raise AssertionError(f"{op}: {answer['error']}\n{answer['trace']}")
        return answer["result"]

    def cli_log(self) -> str:
        self.log.flush()
        self.log.seek(0)
        return self.log.read()

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.log.close()


@pytest.fixture(scope="module")
def http_svc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningService]:
    with running_service(tmp_path_factory.mktemp("svc"), insecure_http=True) as svc:
        yield svc


@pytest.fixture(scope="module")
def peer(rainmaker_cli: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[CliPeer]:
    p = CliPeer(rainmaker_cli.with_name("python"), tmp_path_factory.mktemp("peer"))
    try:
        yield p
    finally:
        p.close()


def claim_node(
    svc: RunningService, who: CliUser, mac: str
) -> tuple[str, ec.EllipticCurvePrivateKey]:
    """A token claim by this user through the running service: (node id, node key)."""
    auth = {"Authorization": who.token}

    def post(path: str, obj: object) -> Any:
        r = client.request(
            svc.base_url, "POST", path, ca_file=None, body=json.dumps(obj).encode(), headers=auth
        )
        assert r.status == 200, r.body
        return r.json()

    node_id = post("/claim/initiate", {"mac_addr": mac, "platform": "esp32s3"})["node_id"]
    csr, key = make_csr(node_id)
    post("/claim/verify", {"csr": csr})
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return node_id, key


def key_pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def owner(svc: RunningService, node_id: str) -> str | None:
    store = Store.open(svc.state_dir)
    try:
        with store.snapshot() as db:
            return store.node_owner(db, node_id)
    finally:
        store.close()


def sign(key: ec.EllipticCurvePrivateKey, challenge: str) -> str:
    return key.sign(challenge.encode(), ec.ECDSA(hashes.SHA256())).hex()


# --- challenge-response -----------------------------------------------------------------------


@pytest.mark.slow
def test_cli_challenge_response_flow_maps_the_node(
    http_svc: RunningService, peer: CliPeer, rainmaker_cli: Path, tmp_path: Path
) -> None:
    alice = cli_user(http_svc, tmp_path, "alice")
    node_id, key = claim_node(http_svc, alice, "7CDFA1CC0001")
    result = peer.call("chal_flow", alice, node_id=node_id, key_pem=key_pem(key), disable=True)
    assert (result["ok"], result["node_id"]) == (True, node_id)
    # What the CLI handed the device is the challenge this service issued to Alice.
    store = Store.open(http_svc.state_dir)
    try:
        with store.snapshot() as db:
            issued = db.execute(
                "SELECT challenge, used FROM mapping_challenges WHERE user_id = ?",
                (alice.user_id,),
            ).fetchall()
    finally:
        store.close()
    assert [tuple(row) for row in issued] == [(result["received"][0], 1)]
    assert owner(http_svc, node_id) == alice.user_id
    # The CLI's own commands see it.
    out = run_cli(rainmaker_cli, ["getnodes"], alice.env)
    assert f"1. {node_id}" in out.splitlines(), out
    out = run_cli(rainmaker_cli, ["getnodedetails"], alice.env)
    assert f"1. Node ID: {node_id}" in out and "User Role: primary" in out, out
    assert "Is Primary: True" in out and "Mapping Timestamp: " in out, out
    out = run_cli(rainmaker_cli, ["getnodedetails", node_id], alice.env)
    assert f"Node ID: {node_id}" in out, out


@pytest.mark.slow
def test_cli_verify_refusals(http_svc: RunningService, peer: CliPeer, tmp_path: Path) -> None:
    alice = cli_user(http_svc, tmp_path, "alice")
    bob = cli_user(http_svc, tmp_path, "bob")
    node_id, key = claim_node(http_svc, alice, "7CDFA1CC0002")
    _, other_key = claim_node(http_svc, alice, "7CDFA1CC0003")

    def initiate(who: CliUser) -> tuple[str, str]:
        ok, challenge, request_id = peer.call("initiate", who)
        assert ok is True
        return challenge, request_id

    def verify(who: CliUser, request_id: str, signature: str, node: str = node_id) -> bool:
        result = peer.call("verify", who, request_id=request_id, node_id=node, signature=signature)
        assert isinstance(result, bool)
        return result

    # A wrong signature fails, and spends the request: the right one is refused after it.
    challenge, request_id = initiate(alice)
    assert verify(alice, request_id, sign(key, challenge + "x")) is False
    assert verify(alice, request_id, sign(key, challenge)) is False
    # A signature by another node's key (one this service certified, for another node).
    challenge, request_id = initiate(alice)
    assert verify(alice, request_id, sign(other_key, challenge)) is False
    # An unknown request id.
    challenge, _ = initiate(alice)
    assert verify(alice, "no-such-request", sign(key, challenge)) is False
    # An expired one: the CLI always asks for 360 s, so the test ages it in the database.
    challenge, request_id = initiate(alice)
    store = Store.open(http_svc.state_dir)
    try:
        with store.transaction() as db:
            db.execute(
                "UPDATE mapping_challenges SET expires = ? WHERE request_id = ?",
                (time.time() - 1, request_id),
            )
    finally:
        store.close()
    assert verify(alice, request_id, sign(key, challenge)) is False
    assert owner(http_svc, node_id) is None
    # Bob holds Alice's request id and a valid signature: not his request, and not spent.
    challenge, request_id = initiate(alice)
    assert verify(bob, request_id, sign(key, challenge)) is False
    assert owner(http_svc, node_id) is None
    assert verify(alice, request_id, sign(key, challenge)) is True
    assert owner(http_svc, node_id) == alice.user_id
    # Used once: not again.
    assert verify(alice, request_id, sign(key, challenge)) is False
    # Every refusal reached the CLI as an HTTP error it logged, with the status code.
    log = peer.cli_log()
    assert log.count("Failed to verify challenge response: 400 Client Error") >= 5, log
    assert log.count("Failed to verify challenge response: 404 Client Error") >= 2, log


# --- secret key -------------------------------------------------------------------------------


def publish(svc: RunningService, node_id: str, user_id: str, secret: str) -> client.Reply:
    payload = {"node_id": node_id, "user_id": user_id, "secret_key": secret, "reset": True}
    return svc.node_mapping(node_id, json.dumps(payload).encode())


@pytest.mark.slow
def test_cli_secret_key_mapping(
    http_svc: RunningService, peer: CliPeer, rainmaker_cli: Path, tmp_path: Path
) -> None:
    alice = cli_user(http_svc, tmp_path, "alice")
    node_id, _ = claim_node(http_svc, alice, "7CDFA1CC0004")
    secret = str(uuid.uuid4())  # as rmaker_cmd/provision.py makes it
    request_id = peer.call("add_mapping", alice, node_id=node_id, secret_key=secret)
    assert isinstance(request_id, str) and request_id
    status = peer.call("mapping_status", alice, node_id=node_id, request_id=request_id)
    assert status == "requested"
    # The node's message with another secret key: not confirmed.
    r = publish(http_svc, node_id, alice.user_id, str(uuid.uuid4()))
    assert r.status == 409, r.body
    status = peer.call("mapping_status", alice, node_id=node_id, request_id=request_id)
    assert status == "requested"
    assert peer.call("get_nodes", alice) == []
    # With the user's secret key: confirmed, and listed.
    r = publish(http_svc, node_id, alice.user_id, secret)
    assert (r.status, r.json()["result"]) == (200, "confirmed")
    status = peer.call("mapping_status", alice, node_id=node_id, request_id=request_id)
    assert status == "confirmed"
    assert peer.call("get_nodes", alice) == [node_id]
    details = peer.call("node_details", alice)
    assert [d["id"] for d in details["node_details"]] == [node_id]
    # The CLI's removenode: gone.
    out = run_cli(rainmaker_cli, ["removenode", node_id], alice.env)
    assert f"Removed node {node_id} successfully." in out, out
    assert (
        run_cli(rainmaker_cli, ["getnodes"], alice.env)
        .strip()
        .endswith("User is not associated with any nodes.")
    )


@pytest.mark.slow
def test_cli_getnodes_follows_pages(
    http_svc: RunningService, peer: CliPeer, rainmaker_cli: Path, tmp_path: Path
) -> None:
    # More nodes than one page (10): the CLI follows next_id with start_id.
    carol = cli_user(http_svc, tmp_path, "carol")
    ids = []
    for i in range(12):
        node_id, key = claim_node(http_svc, carol, f"7CDFA1CD00{i:02X}")
        _, challenge, request_id = peer.call("initiate", carol)
        assert peer.call(
            "verify", carol, request_id=request_id, node_id=node_id, signature=sign(key, challenge)
        )
        ids.append(node_id)
    assert peer.call("get_nodes", carol) == sorted(ids)
    out = run_cli(rainmaker_cli, ["getnodes"], carol.env)
    listed = [line.split(". ", 1)[1] for line in out.splitlines() if ". " in line]
    assert sorted(listed) == sorted(ids), out
    details = peer.call("node_details", carol)
    assert details["total"] == 12
    assert sorted(d["id"] for d in details["node_details"]) == sorted(ids)


# --- the provision command --------------------------------------------------------------------


def provision(
    exe: Path, svc: RunningService, who: CliUser, node_id: str, **args: str
) -> subprocess.CompletedProcess[str]:
    internal = f"{svc.base_url}/internal/node-mapping?node_id={node_id}"
    spec = {"node_id": node_id, "internal_url": internal, **args}
    env = {**who.env, "RMBENCH_PROVISION": json.dumps(spec)}
    return subprocess.run(
        [str(exe.with_name("python")), str(HERE / "cli_provision_driver.py")],
        input="\n",  # "connect to the device's Wi-Fi hotspot ... and press Enter"
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
        check=False,
    )


def stand_in_saw(out: str) -> dict[str, str]:
    # After the CLI's "... press Enter to continue..." prompt, on the same line.
    line = out.split("STAND-IN got: ", 1)[1].splitlines()[0]
    seen: dict[str, str] = json.loads(line)
    return seen


@pytest.mark.slow
@pytest.mark.parametrize("when", ["before_put", "after_first_poll"])
def test_cli_provision_confirms_the_mapping(
    http_svc: RunningService, rainmaker_cli: Path, tmp_path: Path, when: str
) -> None:
    alice = cli_user(http_svc, tmp_path, "alice")
    node_id, _ = claim_node(
        http_svc, alice, "7CDFA1CE0001" if when == "before_put" else "7CDFA1CE0002"
    )
    proc = provision(rainmaker_cli, http_svc, alice, node_id, when=when)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    seen = stand_in_saw(out)
    # The CLI gave the device the user id of its login and a fresh uuid4 secret key ...
    assert seen["userid"] == alice.user_id
    assert uuid.UUID(seen["secretkey"]).version == 4
    # ... and the service confirmed its PUT only because the node published the same ones.
    assert f"✅ Node {node_id} provisioned successfully!" in out
    if when == "before_put":
        assert "STAND-IN published: 200" in out and '"result":"pending"' in out, out
    else:
        assert "Mapping status: requested (elapsed: 0s)" in out, out
        assert '"result":"confirmed"' in out, out
    assert "Mapping status: confirmed" in out, out
    assert "✅ Node added to your account successfully!" in out, out
    assert owner(http_svc, node_id) == alice.user_id
    assert http_svc.user_nodes(alice.token) == [node_id]


@pytest.mark.slow
def test_cli_provision_with_a_node_that_got_another_secret(
    rainmaker_cli: Path, tmp_path: Path
) -> None:
    # A short --mapping-ttl so that the CLI sees the request time out within its 60 s.
    with running_service(
        tmp_path / "svc", insecure_http=True, extra_args=["--mapping-ttl", "2"]
    ) as svc:
        alice = cli_user(svc, tmp_path, "alice")
        node_id, _ = claim_node(svc, alice, "7CDFA1CE0003")
        proc = provision(
            rainmaker_cli, svc, alice, node_id, when="before_put", node_secret="not-the-cli-one"
        )
        out = proc.stdout + proc.stderr
        assert proc.returncode == 1, out
        assert "Mapping status: requested (elapsed: 0s)" in out, out
        assert "Mapping status: timedout" in out, out
        assert "❌ Error: Node mapping request timed out" in out, out
        assert owner(svc, node_id) is None
        assert svc.user_nodes(alice.token) == []
