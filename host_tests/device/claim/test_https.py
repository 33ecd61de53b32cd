"""rmclaim.https on MicroPython against local TLS servers: verification, deadline, framing, cap."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
from rmbench.micropython import Interpreter

from .support import LocalServer, issue_server, make_ca, read_request, reply, run_device, serving

CLIENT = """
import time
from rmclaim import https
results = {}
for case in ARGS:
    t0 = time.ticks_ms()
    r = {}
    try:
        c = https.Client(case["url"], case.get("ca"), case.get("timeout", 5),
                         case.get("insecure", False))
        replies = []
        for req in case["requests"]:
            rep = c.request(req.get("method", "POST"), req["path"], req.get("body", "").encode(),
                            [tuple(h) for h in req.get("headers", [])])
            replies.append({"status": rep.status, "body": rep.body.decode(),
                            "retry_after": rep.retry_after})
        r = {"ok": True, "replies": replies, "handshakes": c.handshakes,
             "connections": c.connections}
        c.close()
    except Exception as e:
        r = err(e)
        r["ok"] = False
    r["ms"] = time.ticks_diff(time.ticks_ms(), t0)
    results[case["name"]] = r
out(results)
"""


def _keepalive(sock: socket.socket, srv: LocalServer) -> None:
    n = 0
    while (req := read_request(sock)) is not None:
        srv.requests.append(req)
        n += 1
        sock.sendall(reply(200, b'{"n":%d}' % n))


def _close_each(sock: socket.socket, srv: LocalServer) -> None:
    req = read_request(sock)
    if req is not None:
        srv.requests.append(req)
        sock.sendall(reply(200, b"once", "Connection: close"))


def _idle_close(sock: socket.socket, srv: LocalServer) -> None:
    # Keep-alive by the headers, but the connection is dropped right after the reply, as a
    # server's idle timeout would.
    if read_request(sock) is not None:
        sock.sendall(reply(200, b"first"))
        time.sleep(0.1)


def _chunked(sock: socket.socket, srv: LocalServer) -> None:
    if read_request(sock) is not None:
        sock.sendall(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\n"
        )
        read_request(sock)


def _oversize(sock: socket.socket, srv: LocalServer) -> None:
    if read_request(sock) is not None:
        sock.sendall(reply(200, b"x" * 5000))


def _oversize_chunked(sock: socket.socket, srv: LocalServer) -> None:
    if read_request(sock) is not None:
        chunk = b"y" * 1000
        sock.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for _ in range(5):
            sock.sendall(b"3e8\r\n" + chunk + b"\r\n")
        sock.sendall(b"0\r\n\r\n")


def _truncated(sock: socket.socket, srv: LocalServer) -> None:
    if read_request(sock) is not None:
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"z" * 50)


def _hold_after_headers(sock: socket.socket, srv: LocalServer) -> None:
    if read_request(sock) is not None:
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
        time.sleep(4)


def _silent(sock: socket.socket, srv: LocalServer) -> None:
    time.sleep(4)  # accepts the TCP connection, never says a word (no TLS handshake)


def _no_length(sock: socket.socket, srv: LocalServer) -> None:
    if read_request(sock) is not None:
        sock.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil-close")


def _bad_status(sock: socket.socket, srv: LocalServer) -> None:
    if read_request(sock) is not None:
        sock.sendall(b"HTXP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")


def _retry_after(sock: socket.socket, srv: LocalServer) -> None:
    if read_request(sock) is not None:
        sock.sendall(reply(503, b'{"status":"failure"}', "Retry-After: 7"))


@pytest.fixture(scope="module")
def results(mpy: Interpreter) -> Iterator[dict[str, Any]]:
    ca, other = make_ca("rmclaim test service CA"), make_ca("attacker CA")
    good = issue_server(ca)
    servers = {
        "keepalive": LocalServer(_keepalive, good),
        "close_each": LocalServer(_close_each, good),
        "idle_close": LocalServer(_idle_close, good),
        "chunked": LocalServer(_chunked, good),
        "oversize": LocalServer(_oversize, good),
        "oversize_chunked": LocalServer(_oversize_chunked, good),
        "truncated": LocalServer(_truncated, good),
        "hold": LocalServer(_hold_after_headers, good),
        "silent": LocalServer(_silent, good, wrap_tls=False),
        "no_length": LocalServer(_no_length, good),
        "bad_status": LocalServer(_bad_status, good),
        "retry_after": LocalServer(_retry_after, good),
        "mitm": LocalServer(_keepalive, issue_server(other)),
        "wrong_name": LocalServer(_keepalive, issue_server(ca, ("other.example",))),
        "expired": LocalServer(_keepalive, issue_server(ca, expired=True)),
        "plain": LocalServer(_keepalive, None),
    }
    with serving(*servers.values()):
        closed = socket.create_server(("127.0.0.1", 0))
        closed_port = closed.getsockname()[1]
        closed.close()
        one = [{"path": "/claim/initiate", "body": "{}"}]
        cases: list[dict[str, Any]] = [
            {
                "name": "keepalive",
                "url": servers["keepalive"].url() + "/base/",
                "requests": [
                    {"path": "/claim/initiate", "body": "hello", "headers": [["X-A", "b"]]},
                    {"path": "/claim/verify?matter=true", "body": "second"},
                ],
            },
            {"name": "close_each", "url": servers["close_each"].url(), "requests": one * 2},
            {"name": "idle_close", "url": servers["idle_close"].url(), "requests": one * 2},
            {"name": "ip_host", "url": servers["keepalive"].url("127.0.0.1"), "requests": one},
            {"name": "plain_refused", "url": servers["plain"].url(scheme="http"), "requests": one},
            {
                "name": "plain_allowed",
                "url": servers["plain"].url(scheme="http"),
                "insecure": True,
                "requests": one,
            },
            {"name": "refused", "url": f"https://localhost:{closed_port}", "requests": one},
            {"name": "hold", "url": servers["hold"].url(), "timeout": 1, "requests": one},
            {"name": "silent", "url": servers["silent"].url(), "timeout": 1, "requests": one},
        ]
        for name in (
            "chunked",
            "oversize",
            "oversize_chunked",
            "truncated",
            "no_length",
            "bad_status",
            "retry_after",
            "mitm",
            "wrong_name",
            "expired",
        ):
            cases.append({"name": name, "url": servers[name].url(), "requests": one})
        for case in cases:
            case.setdefault("ca", ca.cert_pem)
        res = run_device(mpy, CLIENT, cases, timeout=60)
        res["_servers"] = servers
        yield res


def test_keepalive_shares_one_handshake_and_sends_exact_bytes(results: dict[str, Any]) -> None:
    r = results["keepalive"]
    assert r["ok"], r
    assert [x["body"] for x in r["replies"]] == ['{"n":1}', '{"n":2}']
    assert r["handshakes"] == 1 and r["connections"] == 1
    srv = results["_servers"]["keepalive"]
    port = srv.port
    assert (
        srv.requests[0]
        == (
            f"POST /base/claim/initiate HTTP/1.1\r\nHost: localhost:{port}\r\n"
            "Content-Length: 5\r\nX-A: b\r\n\r\nhello"
        ).encode()
    )
    assert srv.requests[1].startswith(b"POST /base/claim/verify?matter=true HTTP/1.1\r\n")


def test_connection_close_reconnects(results: dict[str, Any]) -> None:
    r = results["close_each"]
    assert r["ok"], r
    assert [x["body"] for x in r["replies"]] == ["once", "once"]
    assert r["handshakes"] == 2


def test_server_dropping_idle_connection_is_survived(results: dict[str, Any]) -> None:
    r = results["idle_close"]
    assert r["ok"], r
    assert [x["body"] for x in r["replies"]] == ["first", "first"]
    assert r["handshakes"] == 2


def test_ip_address_host_verified_against_ip_san(results: dict[str, Any]) -> None:
    r = results["ip_host"]
    assert r["ok"], r
    assert r["replies"][0]["status"] == 200


def test_chunked_reply_decoded(results: dict[str, Any]) -> None:
    r = results["chunked"]
    assert r["ok"], r
    assert r["replies"][0]["body"] == "hello world"


@pytest.mark.parametrize("name", ["oversize", "oversize_chunked"])
def test_reply_over_cap_refused(results: dict[str, Any], name: str) -> None:
    r = results[name]
    assert not r["ok"]
    assert r["kind"] == "MalformedReply" and r["retryable"] is True
    assert "over the 4096-byte cap" in r["error"]


def test_truncated_reply_is_network_error(results: dict[str, Any]) -> None:
    r = results["truncated"]
    assert r["kind"] == "NetworkError" and r["retryable"] is True
    assert "50 bytes missing" in r["error"]


@pytest.mark.parametrize(("name", "phase"), [("hold", "reply"), ("silent", "TLS handshake")])
def test_deadline_covers_the_whole_request(results: dict[str, Any], name: str, phase: str) -> None:
    r = results[name]
    assert r["kind"] == "NetworkError", r
    assert f"within 1000 ms ({phase})" in r["error"]
    assert 900 <= r["ms"] < 2500  # the servers would hold on for 4 s


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("mitm", "not correctly signed by the trusted CA"),
        ("wrong_name", "CN"),
        ("expired", "expired"),
    ],
)
def test_untrusted_server_certificates_refused(
    results: dict[str, Any], name: str, text: str
) -> None:
    r = results[name]
    assert r["kind"] == "TLSError" and r["retryable"] is False, r
    assert "server certificate of localhost rejected" in r["error"]
    assert text in r["error"]
    assert results["_servers"][name].requests == []  # nothing was sent to it


def test_plain_http_refused_unless_allowed(results: dict[str, Any]) -> None:
    assert results["plain_refused"]["kind"] == "ConfigError"
    assert "allow_insecure_http" in results["plain_refused"]["error"]
    allowed = results["plain_allowed"]
    assert allowed["ok"] and allowed["handshakes"] == 0, allowed


def test_connection_refused_is_network_error(results: dict[str, Any]) -> None:
    r = results["refused"]
    assert r["kind"] == "NetworkError" and r["retryable"] is True
    assert "cannot connect" in r["error"]


def test_body_until_close_without_length(results: dict[str, Any]) -> None:
    r = results["no_length"]
    assert r["ok"], r
    assert r["replies"][0]["body"] == "until-close"


def test_bad_status_line_is_malformed(results: dict[str, Any]) -> None:
    r = results["bad_status"]
    assert r["kind"] == "MalformedReply"
    assert "bad status line" in r["error"]


def test_retry_after_reported(results: dict[str, Any]) -> None:
    r = results["retry_after"]
    assert r["ok"], r
    assert r["replies"][0]["status"] == 503
    assert r["replies"][0]["retry_after"] == 7
