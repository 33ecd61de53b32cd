"""Injected faults: each kind does what a device robustness test expects, exactly N times."""

from __future__ import annotations

import asyncio
import http.client
import json
import secrets
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID
from rmbench.errors import ServiceError
from rmbench.service import client
from rmbench.service.app import create_app
from rmbench.service.ca import load_or_create_authorities
from rmbench.service.faults import FaultQueue
from rmbench.service.harness import RunningService, running_service
from rmbench.service.logic import ClaimService, Settings
from rmbench.service.store import Store

from .helpers import PrivateKey, call, challenge_response, check_framing, make_csr, split_chain


def raw_post(svc: RunningService, path: str, body: object) -> http.client.HTTPResponse:
    """POST without reading the body, so a test can see how the body arrives."""
    port = int(svc.base_url.rsplit(":", 1)[1])
    conn = http.client.HTTPSConnection(
        "localhost", port, context=client.pinned_context(svc.server_ca_file), timeout=10
    )
    conn.request("POST", path, body=json.dumps(body).encode())
    return conn.getresponse()


def self_claim_parts(svc: RunningService) -> tuple[str, bytes, dict[str, str]]:
    mac, uid = secrets.token_hex(6).upper(), secrets.token_bytes(16)
    svc.register(mac, uid)
    r = call(svc, "POST", "/claim/initiate", {"mac_addr": mac, "platform": "esp32s3"})
    assert r.status == 200
    return mac, uid, r.json()


def verify_body(mac: str, uid: bytes, init: dict[str, str]) -> tuple[dict[str, str], PrivateKey]:
    csr, key = make_csr(mac)
    body = {
        "auth_id": init["auth_id"],
        "challenge_response": challenge_response(uid, init["challenge"]),
        "csr": csr,
    }
    return body, key


@pytest.fixture(autouse=True)
def _no_leftover_faults(svc: RunningService) -> None:
    svc.clear_faults()


def test_delay(svc: RunningService) -> None:
    svc.inject_fault("delay", seconds=0.6, path="mqtt_host")
    start = time.monotonic()
    r = call(svc, "GET", "/mqtt_host")
    slow = time.monotonic() - start
    assert r.status == 200 and "mqtt_host" in r.json()
    assert slow >= 0.6
    assert svc.pending_faults() == []  # spent after one request


def test_close_after_headers(svc: RunningService) -> None:
    svc.inject_fault("close_after_headers", path="mqtt_host")
    resp = raw_post_get(svc, "/mqtt_host")
    assert resp.status == 200
    length = int(resp.getheader("content-length") or 0)
    assert length > 0
    with pytest.raises(http.client.IncompleteRead) as info:
        resp.read()
    assert info.value.partial == b""
    assert call(svc, "GET", "/mqtt_host").status == 200


@pytest.mark.parametrize("kind", ["close_after_headers", "close_mid_body"])
def test_close_faults_drop_tcp_without_tls_close_notify(svc: RunningService, kind: str) -> None:
    # A dying link or server sends no close_notify: a TLS client sees an unclean EOF at once
    # (MicroPython's tls only notices this kind of close; a graceful TLS shutdown that leaves
    # TCP open looks like a silent server to it).
    svc.inject_fault(kind, path="mqtt_host")
    port = int(svc.base_url.rsplit(":", 1)[1])
    ctx = client.pinned_context(svc.server_ca_file)
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    with ctx.wrap_socket(raw, server_hostname="localhost", suppress_ragged_eofs=False) as tls:
        tls.sendall(b"GET /mqtt_host HTTP/1.1\r\nHost: localhost\r\n\r\n")
        received = b""
        with pytest.raises(ssl.SSLEOFError):
            while chunk := tls.recv(4096):
                received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    assert (len(body) == 0) if kind == "close_after_headers" else (0 < len(body) < length)


def raw_post_get(svc: RunningService, path: str) -> http.client.HTTPResponse:
    port = int(svc.base_url.rsplit(":", 1)[1])
    conn = http.client.HTTPSConnection(
        "localhost", port, context=client.pinned_context(svc.server_ca_file), timeout=10
    )
    conn.request("GET", path)
    return conn.getresponse()


def test_close_mid_body_on_verify_after_processing(svc: RunningService) -> None:
    mac, uid, init = self_claim_parts(svc)
    body, _ = verify_body(mac, uid, init)
    svc.inject_fault("close_mid_body", path="verify")
    resp = raw_post(svc, "/claim/verify", body)
    assert resp.status == 200
    with pytest.raises(http.client.IncompleteRead) as info:
        resp.read()
    length = int(resp.getheader("content-length") or 0)
    assert 0 < len(info.value.partial) < length
    assert info.value.partial.startswith(b'{"certificate":"-----BEGIN CERTIFICATE-----')
    # The request was processed (as when a reply is lost): the challenge is spent.
    r = call(svc, "POST", "/claim/verify", body)
    assert r.status == 401
    assert r.json()["description"] == "auth_id was already used; call /claim/initiate again"


@pytest.mark.parametrize(("status", "retry_after"), [(503, 7), (500, None)])
def test_status_is_not_processed(
    svc: RunningService, status: int, retry_after: int | None
) -> None:
    mac, uid, init = self_claim_parts(svc)
    body, _ = verify_body(mac, uid, init)
    if retry_after is None:
        svc.inject_fault("status", path="verify", status=status)
    else:
        svc.inject_fault("status", path="verify", status=status, retry_after=retry_after)
    r = call(svc, "POST", "/claim/verify", body)
    assert r.status == status
    assert r.headers.get("retry-after") == (None if retry_after is None else str(retry_after))
    assert r.json() == {"status": "failure", "description": f"Injected fault: HTTP {status}"}
    # Nothing was processed: the same verify now succeeds.
    assert call(svc, "POST", "/claim/verify", body).status == 200


def test_chunked(svc: RunningService) -> None:
    svc.inject_fault("chunked")
    resp = raw_post_get(svc, "/mqtt_host")
    assert resp.getheader("transfer-encoding") == "chunked"
    assert resp.getheader("content-length") is None
    assert json.loads(resp.read())["mqtt_host"] == "mqtt.rainmaker.espressif.com"


@pytest.mark.parametrize("kind", ["wrong_key_cert", "wrong_cn_cert"])
def test_wrong_certificates(svc: RunningService, kind: str) -> None:
    # A fault on verify does not touch initiate.
    svc.inject_fault(kind)
    mac, uid, init = self_claim_parts(svc)
    body, key = verify_body(mac, uid, init)
    r = call(svc, "POST", "/claim/verify", body)
    assert r.status == 200
    device, issuer = split_chain(r.json()["certificate"])
    # Still a genuine certificate of the service's claim CA (not only of the chain's issuer).
    claim_ca = x509.load_pem_x509_certificate(svc.claim_ca_pem.encode())
    device.verify_directly_issued_by(claim_ca)
    assert issuer == claim_ca
    cn = device.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    same_key = device.public_key() == key.public_key()
    if kind == "wrong_key_cert":
        assert cn == mac and not same_key
    else:
        assert cn != mac and len(cn) == len(mac) and same_key
    assert issuer == x509.load_pem_x509_certificate(svc.claim_ca_pem.encode())


def test_malformed_json(svc: RunningService) -> None:
    svc.inject_fault("malformed_json", path="mqtt_host")
    r = call(svc, "GET", "/mqtt_host")  # framing still right: Content-Length matches
    assert r.status == 200
    with pytest.raises(ValueError):
        json.loads(r.body)


def test_oversize(svc: RunningService) -> None:
    svc.inject_fault("oversize", path="mqtt_host")
    r = client.request(svc.base_url, "GET", "/mqtt_host", ca_file=svc.server_ca_file)
    assert r.status == 200
    assert len(r.body) > 4096
    assert r.headers["content-length"] == str(len(r.body))
    assert r.json()["mqtt_host"] == "mqtt.rainmaker.espressif.com"


def test_count_and_path_are_exact(svc: RunningService) -> None:
    svc.inject_fault("status", count=2, path="initiate", status=503)
    assert svc.pending_faults()[0]["count"] == 2
    assert call(svc, "GET", "/mqtt_host").status == 200  # other paths untouched
    body = {"mac_addr": "7CDFA100033B", "platform": "esp32"}
    assert call(svc, "POST", "/claim/initiate", body).status == 503
    assert call(svc, "POST", "/claim/initiate", body).status == 503
    assert svc.pending_faults() == []
    assert call(svc, "POST", "/claim/initiate", body).status == 400  # back to normal


def test_faults_apply_in_order(svc: RunningService) -> None:
    svc.inject_fault("status", status=500)
    svc.inject_fault("status", status=503)
    assert call(svc, "GET", "/mqtt_host").status == 500
    assert call(svc, "GET", "/mqtt_host").status == 503
    assert call(svc, "GET", "/mqtt_host").status == 200


@pytest.mark.parametrize(
    ("kind", "params", "reason"),
    [
        ("explode", {}, "kind must be one of"),
        ("delay", {}, "delay needs seconds"),
        ("status", {"status": 404}, "status must be one of"),
        ("wrong_cn_cert", {"path": "initiate"}, "wrong_cn_cert applies to verify only"),
        ("chunked", {"count": 0}, "count must be an integer"),
        ("chunked", {"path": "elsewhere"}, "path must be one of"),
    ],
)
def test_bad_fault_requests(
    svc: RunningService, kind: str, params: dict[str, object], reason: str
) -> None:
    count = params.pop("count", 1)
    path = params.pop("path", None)
    with pytest.raises(ServiceError) as info:
        svc.inject_fault(kind, count=count, path=path, **params)  # type: ignore[arg-type]
    assert reason in str(info.value)
    assert svc.pending_faults() == []


def test_faults_do_not_survive_a_restart(tmp_path: Path) -> None:
    state = tmp_path / "svc"
    with running_service(state) as svc:
        svc.inject_fault("status", count=5, status=503)
    with running_service(state) as svc:
        assert svc.pending_faults() == []
        assert call(svc, "GET", "/mqtt_host").status == 200


def test_fault_endpoint_refuses_non_loopback_clients(tmp_path: Path) -> None:
    # In-process, with the ASGI client address set to a documentation (TEST-NET) address.
    authorities = load_or_create_authorities(tmp_path)
    service = ClaimService(Store.open(tmp_path), authorities.claim, Settings())
    app = create_app(service, FaultQueue())

    async def go(client_ip: str) -> httpx.Response:
        transport = httpx.ASGITransport(app=app, client=(client_ip, 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://svc") as c:
            return await c.post("/_rmbench/faults", json={"kind": "chunked"})

    far = asyncio.run(go("192.0.2.10"))
    assert far.status_code == 403
    assert far.json()["description"] == "the fault endpoint answers loopback clients only"
    near = asyncio.run(go("127.0.0.1"))
    assert near.status_code == 200


def test_fault_cli(svc: RunningService) -> None:
    cli = [sys.executable, "-m", "rmbench.cli", "fault", "--state-dir", str(svc.state_dir)]

    def rmbench(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*cli, *args],
            capture_output=True,
            text=True,
            check=False,
        )

    out = rmbench("status", "--status", "503", "--retry-after", "3", "--path", "verify")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("queued {")
    listed = rmbench("list")
    assert json.loads(listed.stdout) == {
        "kind": "status",
        "count": 1,
        "path": "verify",
        "seconds": 0.0,
        "status": 503,
        "retry_after": 3,
    }
    assert rmbench("clear").stdout == "cleared 1 pending fault(s)\n"
    bad = rmbench("delay")
    assert bad.returncode == 2
    assert "delay needs seconds" in bad.stderr
    check_framing(call(svc, "GET", "/mqtt_host"))
