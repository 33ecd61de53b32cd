"""ensure_claimed against the real local claiming service: modes, resume, faults, hostile TLS."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from rmbench.boardsim import SimBoard
from rmbench.micropython import Interpreter
from rmbench.service.harness import RunningService

from .conftest import BoardFactory
from .support import (
    LocalServer,
    claim_config,
    issue_server,
    make_ca,
    read_request,
    reply,
    run_device,
    serving,
)

# One MicroPython process claims every case in turn, each on its own simulated board (the
# board is chosen by RMBENCH_BOARD_DIR, read at each use), queuing the case's faults on the
# service's loopback fault endpoint first.
BATCH = """
import os, time
import rmclaim
from rmclaim import https
res = {}
for case in ARGS["cases"]:
    os.putenv("RMBENCH_BOARD_DIR", case["board"])
    adm = https.Client(ARGS["admin"], ARGS["ca"], 10)
    adm.request("DELETE", "/_rmbench/faults")
    for f in case["faults"]:
        r = adm.request("POST", "/_rmbench/faults", json.dumps(f).encode())
        if r.status != 200:
            raise OSError("fault refused: %s" % r.body)
    adm.close()
    events = []
    def on(step, outcome, info, events=events):
        if outcome != "start":
            events.append([step, outcome, info])
    t0 = time.ticks_ms()
    try:
        c = rmclaim.ensure_claimed(case["config"], on)
        r = {"ok": True, "node_id": c.node_id, "mqtt_host": c.mqtt_host}
    except Exception as e:
        r = err(e)
        r["ok"] = False
    r["ms"] = time.ticks_diff(time.ticks_ms(), t0)
    r["events"] = events
    res[case["name"]] = r
out(res)
"""


def _mitm(sock: socket.socket, srv: LocalServer) -> None:
    while (req := read_request(sock)) is not None:
        srv.requests.append(req)
        sock.sendall(reply(200, b'{"auth_id":"a","challenge":"b"}'))


class Batch:
    """The cases, their boards, and after run() each case's result."""

    def __init__(self, svc: RunningService, new_board: BoardFactory) -> None:
        self.svc = svc
        self.new_board = new_board
        self.cases: list[dict[str, Any]] = []
        self.boards: dict[str, SimBoard] = {}
        self.results: dict[str, Any] = {}

    def add(
        self,
        name: str,
        profile: str = "esp32s3",
        faults: tuple[dict[str, Any], ...] = (),
        register: bool | bytes = True,
        **config: Any,
    ) -> SimBoard:
        board = self.new_board(name, profile)
        if register:
            uid = register if isinstance(register, bytes) else board.unique_id
            self.svc.register(board.mac, uid)
        self.boards[name] = board
        self.cases.append(
            {
                "name": name,
                "board": str(board.directory),
                "faults": list(faults),
                "config": claim_config(self.svc, **config),
            }
        )
        return board

    def run(self, mpy: Interpreter) -> None:
        args = {"admin": self.svc.base_url, "ca": self.svc.server_ca_pem, "cases": self.cases}
        first = next(iter(self.boards.values()))
        self.results = run_device(mpy, BATCH, args, board=first, timeout=120)


def fault(kind: str, path: str | None = None, count: int = 1, **params: Any) -> dict[str, Any]:
    return {"kind": kind, "path": path, "count": count, **params}


@pytest.fixture(scope="module")
def batch(
    svc: RunningService, tmp_path_factory: pytest.TempPathFactory, mpy: Interpreter
) -> Iterator[Batch]:
    root = tmp_path_factory.mktemp("claim-boards")

    def new_board(name: str, profile: str = "esp32s3", **kw: Any) -> SimBoard:
        from rmbench.boardsim import create_board

        return create_board(root / name, profile, name=f"claim-{name}", **kw)

    b = Batch(svc, new_board)
    svc.add_user("tok-claim", quota=10)
    svc.add_user("tok-quota0", quota=0)
    other_ca = make_ca("attacker CA")
    mitm = LocalServer(_mitm, issue_server(other_ca))
    with serving(mitm):
        b.add("self", max_attempts=1)
        b.add("token", "esp32", register=False, access_token="tok-claim", max_attempts=1)
        b.add("token_s3_auto", register=False, access_token="tok-claim", max_attempts=1)
        b.add("auto_no_way", "esp32", register=False)
        b.add("self_on_esp32", "esp32", register=False, mode="self")
        b.add("e500", faults=(fault("status", "initiate", status=500),))
        b.add("e503", faults=(fault("status", "verify", status=503, retry_after=1),))
        b.add("quota", "esp32c3", register=False, access_token="tok-quota0", max_attempts=2)
        b.add("challenge", register=bytes(range(16)), max_attempts=2)
        b.add("unregistered", register=False)
        b.add("bad_token", register=False, access_token="nope")
        b.add("malformed", faults=(fault("malformed_json", "verify"),))
        b.add("oversize", faults=(fault("oversize", "verify"),))
        # uvicorn keeps the connection open after these: the request deadline ends the wait.
        b.add("truncated", faults=(fault("close_mid_body", "verify"),), timeout_s=1)
        b.add("no_body", faults=(fault("close_after_headers", "initiate"),), timeout_s=1)
        b.add("chunked", faults=(fault("chunked", None, 2),), max_attempts=1)
        b.add("wrong_key_once", faults=(fault("wrong_key_cert"),))
        b.add("wrong_key", faults=(fault("wrong_key_cert", count=5),), max_attempts=2)
        b.add("wrong_cn", faults=(fault("wrong_cn_cert", count=5),), max_attempts=2)
        b.add("slow", faults=(fault("delay", "initiate", seconds=2.5),), timeout_s=1)
        b.add("mitm", service_url=mitm.url())
        b.add("pinned_ca", claim_ca=b.svc.claim_ca_pem, max_attempts=1)
        b.add("pinned_other", claim_ca=other_ca.cert_pem, max_attempts=1)
        b.add("matter", matter=True, max_attempts=1)
        b.run(mpy)
        b.results["_mitm_requests"] = list(mitm.requests)
    yield b


def steps(r: dict[str, Any]) -> list[str]:
    return [f"{s}:{o}" for s, o, _ in r["events"]]


def assert_claimed(board: SimBoard, svc: RunningService, node_id: str) -> None:
    """NVS holds a key and a certificate that belong together, issued by the claim CA."""
    ns = board.nvs()["rmaker_creds"]
    key_pem, cert_pem = ns["client_key"], ns["client_cert"]
    assert isinstance(key_pem, bytes) and isinstance(cert_pem, bytes)
    key = serialization.load_pem_private_key(key_pem, None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    chain = x509.load_pem_x509_certificates(cert_pem)
    device = chain[0]
    assert device.public_key() == key.public_key()
    cn = device.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value
    assert cn == node_id and ns["node_id"] == node_id.encode()
    device.verify_directly_issued_by(x509.load_pem_x509_certificate(svc.claim_ca_pem.encode()))
    assert isinstance(ns["random"], bytes) and len(ns["random"]) == 64


def assert_not_claimed(board: SimBoard) -> None:
    """At most the key (and random) was stored: never a certificate or node id."""
    ns = board.nvs().get("rmaker_creds", {})
    assert "client_cert" not in ns and "node_id" not in ns
    assert set(ns) <= {"client_key", "random", "rmclaim_lens"}


def test_self_claim(batch: Batch) -> None:
    r = batch.results["self"]
    board = batch.boards["self"]
    assert r["ok"], r
    assert r["node_id"] == board.mac and r["mqtt_host"] is None
    assert steps(r) == [
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
    done = r["events"][-1][2]
    assert done["handshakes"] == 1 and done["attempts"] == 1 and done["stored"] is False
    assert all(isinstance(info["ms"], int) for _, _, info in r["events"])
    assert_claimed(board, batch.svc, board.mac)


def test_token_claim(batch: Batch) -> None:
    for name in ("token", "token_s3_auto"):
        r = batch.results[name]
        assert r["ok"], r
        assert len(r["node_id"]) == 22 and r["node_id"].isalnum()
        assert r["mqtt_host"] == "mqtt.rainmaker.espressif.com"
        assert "hmac:ok" not in steps(r) and "efuse:ok" not in steps(r)
        assert steps(r).index("initiate:ok") < steps(r).index("csr:ok")
        assert_claimed(batch.boards[name], batch.svc, r["node_id"])
        assert batch.boards[name].nvs()["rmaker_creds"]["mqtt_host"] == (
            b"mqtt.rainmaker.espressif.com"
        )


def test_already_claimed_returns_at_once(
    batch: Batch, mpy: Interpreter, svc: RunningService
) -> None:
    board = batch.boards["self"]
    before = board.nvs()
    # A service URL nobody answers: a claimed board must not even try the network.
    cfg = claim_config(svc, service_url="https://localhost:1")
    code = """
import rmclaim
ev = []
c = rmclaim.ensure_claimed(ARGS, lambda s, o, i: ev.append([s, o, i]))
same = rmclaim.load_credentials().cert_pem == c.cert_pem
out({"node_id": c.node_id, "events": ev, "same": same})
"""
    res = run_device(mpy, code, cfg, board=board)
    assert res["node_id"] == board.mac and res["same"]
    assert [e[:2] for e in res["events"]] == [["claimed", "ok"]]
    assert res["events"][0][2]["stored"] is True
    assert board.nvs() == before


def test_no_way_to_claim_names_host_assisted(batch: Batch) -> None:
    r = batch.results["auto_no_way"]
    assert r["kind"] == "UnsupportedChip"
    assert r["error"] == (
        "claim: esp32 cannot self-claim and no access_token is configured: claim it "
        "host-assisted (rmbench claim), or set access_token for a token claim"
    )
    assert "host-assisted" in batch.results["self_on_esp32"]["error"]
    for name in ("auto_no_way", "self_on_esp32"):
        assert batch.boards[name].nvs() == {}  # nothing at all: not even a key


@pytest.mark.parametrize(
    ("name", "kind", "status"),
    [
        ("e500", "ServiceUnavailable", 500),
        ("malformed", "MalformedReply", 200),
        ("oversize", "MalformedReply", 0),
        ("truncated", "NetworkError", 0),
        ("no_body", "NetworkError", 0),
        ("wrong_key_once", "BadCertificate", 200),
        ("slow", "NetworkError", 0),
    ],
)
def test_faults_retried_to_success(batch: Batch, name: str, kind: str, status: int) -> None:
    r = batch.results[name]
    assert r["ok"], r
    errors = [info for s, o, info in r["events"] if o == "error"]
    assert [e["kind"] for e in errors] == [kind]
    waits = [info for s, o, info in r["events"] if s == "backoff"]
    assert len(waits) == 1 and waits[0]["kind"] == kind and 0 <= waits[0]["s"] <= 0.05
    assert r["events"][-1][2]["attempts"] == 2
    board = batch.boards[name]
    assert_claimed(board, batch.svc, board.mac)


def test_retry_after_honoured(batch: Batch) -> None:
    r = batch.results["e503"]
    assert r["ok"], r
    [wait] = [info for s, o, info in r["events"] if s == "backoff"]
    assert wait["kind"] == "ServiceUnavailable" and wait["s"] == 1
    assert r["ms"] >= 1000
    assert_claimed(batch.boards["e503"], batch.svc, batch.boards["e503"].mac)


def test_chunked_replies_accepted(batch: Batch) -> None:
    r = batch.results["chunked"]
    assert r["ok"], r
    assert r["events"][-1][2]["attempts"] == 1


@pytest.mark.parametrize(
    ("name", "kind", "attempts", "text"),
    [
        ("quota", "QuotaExceeded", 2, "User does not have available quota"),
        ("challenge", "ChallengeRejected", 2, "challenge_response is wrong"),
        ("unregistered", "PlatformRejected", 1, "is not registered for self-claiming"),
        ("bad_token", "Unauthorized", 1, "Unauthorized"),
        ("wrong_key", "BadCertificate", 2, "for another key"),
        ("wrong_cn", "BadCertificate", 2, "wanted the node id"),
        ("pinned_other", "BadCertificate", 1, "does not verify against the pinned claim CA"),
    ],
)
def test_refusals_end_in_clear_errors_and_nothing_stored(
    batch: Batch, name: str, kind: str, attempts: int, text: str
) -> None:
    r = batch.results[name]
    assert not r["ok"] and r["kind"] == kind, r
    assert text in r["error"]
    errors = [info for s, o, info in r["events"] if o == "error"]
    assert len(errors) == attempts and errors[-1]["attempt"] == attempts
    assert_not_claimed(batch.boards[name])
    assert "client_key" in batch.boards[name].nvs()["rmaker_creds"]  # kept for the next try


def test_quota_waits_longer(batch: Batch) -> None:
    # Quota errors wait between half the cap and the cap, not the short exponential schedule.
    [wait] = [info for s, o, info in batch.results["quota"]["events"] if s == "backoff"]
    assert 0.1 <= wait["s"] <= 0.2


def test_man_in_the_middle_refused(batch: Batch) -> None:
    r = batch.results["mitm"]
    assert r["kind"] == "TLSError" and r["retryable"] is False, r
    assert "not correctly signed by the trusted CA" in r["error"]
    assert batch.results["_mitm_requests"] == []
    assert len([e for e in r["events"] if e[1] == "error"]) == 1
    assert_not_claimed(batch.boards["mitm"])


def test_pinned_claim_ca_accepted(batch: Batch) -> None:
    r = batch.results["pinned_ca"]
    assert r["ok"], r


def test_matter_claim(batch: Batch) -> None:
    r = batch.results["matter"]
    assert r["ok"], r
    assert_claimed(batch.boards["matter"], batch.svc, batch.boards["matter"].mac)
