"""Injected faults for device robustness tests: the queue, the ASGI layer that applies them.

A fault applies to the next `count` requests to one API path (`initiate`, `verify`, `mqtt_host`,
or any of them when path is None) and is spent when such a request arrives, whatever its outcome.
Faults live only in the memory of a server started with `--faults`: a restart forgets them.

Kinds, and what the chosen request gets:
- delay: the reply comes `seconds` late (the request is processed normally);
- close_after_headers: the status line and headers (with Content-Length), then the connection
  closes;
- close_mid_body: headers and half the body, then the connection closes;
- status: `status` (500/502/503/504) with a failure body and `Retry-After: retry_after` if given;
  the request is not processed;
- chunked: the normal reply with Transfer-Encoding: chunked instead of Content-Length;
- wrong_key_cert / wrong_cn_cert (verify only): a certificate for another key / another CN;
- malformed_json: the normal reply cut one byte short of valid JSON;
- oversize: the normal reply padded past 4 KB (a `padding` member).
Except for `status`, the request itself is processed, so a spent challenge stays spent and a
claimed node stays claimed, as after a reply lost in transit.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from rmbench import certs
from rmbench.service import ca
from rmbench.service.store import random_alnum

KINDS = (
    "delay",
    "close_after_headers",
    "close_mid_body",
    "status",
    "chunked",
    "wrong_key_cert",
    "wrong_cn_cert",
    "malformed_json",
    "oversize",
)
CERT_KINDS = ("wrong_key_cert", "wrong_cn_cert")
PATHS = {"/claim/initiate": "initiate", "/claim/verify": "verify", "/mqtt_host": "mqtt_host"}
FAULT_STATUSES = (500, 502, 503, 504)
OVERSIZE_BYTES = 5000
MAX_COUNT = 10_000
MAX_DELAY = 600.0

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class FaultError(ValueError):
    """A fault description is wrong: the message says which field and why."""


@dataclass
class Fault:
    """One queued fault and how many more requests it applies to."""

    kind: str
    count: int = 1
    path: str | None = None
    seconds: float = 0.0
    status: int = 503
    retry_after: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "count": self.count,
            "path": self.path,
            "seconds": self.seconds,
            "status": self.status,
            "retry_after": self.retry_after,
        }


def parse_fault(data: object) -> Fault:
    """Validate a fault request: {"kind", "count"?, "path"?, "seconds"?, "status"?, ...}."""
    if not isinstance(data, dict):
        raise FaultError("a fault must be a JSON object")
    unknown = sorted(set(data) - {"kind", "count", "path", "seconds", "status", "retry_after"})
    if unknown:
        raise FaultError(f"unknown fault field(s): {', '.join(unknown)}")
    kind = data.get("kind")
    if kind not in KINDS:
        raise FaultError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    count = data.get("count", 1)
    if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= MAX_COUNT:
        raise FaultError(f"count must be an integer from 1 to {MAX_COUNT}, got {count!r}")
    path = data.get("path")
    if kind in CERT_KINDS:
        if path not in (None, "verify"):
            raise FaultError(f"{kind} applies to verify only, got path {path!r}")
        path = "verify"
    elif path is not None and path not in PATHS.values():
        raise FaultError(f"path must be one of {', '.join(PATHS.values())}, got {path!r}")
    fault = Fault(kind=kind, count=count, path=path)
    if kind == "delay":
        seconds = data.get("seconds")
        if (
            not isinstance(seconds, int | float)
            or isinstance(seconds, bool)
            or not 0 < seconds <= MAX_DELAY
        ):
            raise FaultError(f"delay needs seconds between 0 and {MAX_DELAY:g}, got {seconds!r}")
        fault.seconds = float(seconds)
    if kind == "status":
        status = data.get("status", 503)
        if status not in FAULT_STATUSES:
            raise FaultError(f"status must be one of {FAULT_STATUSES}, got {status!r}")
        retry_after = data.get("retry_after")
        if retry_after is not None and (
            not isinstance(retry_after, int) or isinstance(retry_after, bool) or retry_after < 0
        ):
            raise FaultError(f"retry_after must be a whole number of seconds, got {retry_after!r}")
        fault.status = status
        fault.retry_after = retry_after
    return fault


@dataclass
class FaultQueue:
    """Pending faults in the order they were added; thread-safe."""

    _faults: list[Fault] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, fault: Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def clear(self) -> int:
        with self._lock:
            n = len(self._faults)
            self._faults.clear()
            return n

    def pending(self) -> list[Fault]:
        with self._lock:
            return [Fault(**f.to_json()) for f in self._faults]

    def take(self, path: str) -> Fault | None:
        """Spend one use of the first fault that applies to `path` (an API path name)."""
        with self._lock:
            for i, fault in enumerate(self._faults):
                if fault.path is None or fault.path == path:
                    fault.count -= 1
                    if fault.count <= 0:
                        del self._faults[i]
                    return Fault(**fault.to_json())
        return None


def _headers_without_length(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    return [(k, v) for k, v in headers if k.lower() != b"content-length"]


def _with_length(headers: list[tuple[bytes, bytes]], body: bytes) -> list[tuple[bytes, bytes]]:
    return [*_headers_without_length(headers), (b"content-length", str(len(body)).encode())]


def reissue_certificate(reply: bytes, claim_ca: ca.Authority, kind: str) -> bytes:
    """A verify reply whose device certificate is remade for another key or another CN."""
    try:
        obj = json.loads(reply)
        chain: str = obj["certificate"]
    except (ValueError, KeyError, TypeError):
        return reply  # not a certificate reply: nothing to falsify
    end = chain.index("-----END CERTIFICATE-----") + len("-----END CERTIFICATE-----\n")
    cert = x509.load_pem_x509_certificate(chain[:end].encode())
    cn = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value
    cn = cn if isinstance(cn, str) else cn.decode()
    key = cert.public_key()
    if kind == "wrong_key_cert":
        key = ec.generate_private_key(ec.SECP256R1()).public_key()
    else:
        other = random_alnum(len(cn))
        while other == cn:
            other = random_alnum(len(cn))
        cn = other
    obj["certificate"] = certs.pem(ca.device_certificate(claim_ca, key, cn)) + chain[end:]
    return json.dumps(obj, separators=(",", ":")).encode()


async def _drop_connection(scope: Scope) -> None:
    """Close the TCP connection at once, after what was sent has left: no TLS close_notify,
    as when a link or a server dies mid-reply (rmbench serve's protocol puts the transport in
    the scope state). Without a transport, returning with the reply incomplete still makes
    uvicorn close the connection, gracefully."""
    transport = scope.get("state", {}).get("rmbench.transport")
    if transport is None:
        return
    for _ in range(200):
        if transport.get_write_buffer_size() == 0:
            break
        await asyncio.sleep(0.005)
    await asyncio.sleep(0.02)  # let the kernel send it before the close
    transport.abort()


class FaultLayer:
    """ASGI middleware: takes a fault for each API request and applies it to the reply."""

    def __init__(self, app: ASGIApp, queue: FaultQueue, claim_ca: ca.Authority) -> None:
        self.app = app
        self.queue = queue
        self.claim_ca = claim_ca

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = PATHS.get(scope.get("path", "")) if scope["type"] == "http" else None
        fault = self.queue.take(path) if path else None
        if fault is None:
            await self.app(scope, receive, send)
            return
        if fault.kind == "status":
            await self._status_reply(fault, send)
            return
        if fault.kind == "delay":
            await asyncio.sleep(fault.seconds)
            await self.app(scope, receive, send)
            return
        # Every other kind alters the normal reply: run the app into a buffer first.
        start: Message = {}
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.app(scope, receive, capture)
        status, headers = int(start["status"]), list(start["headers"])
        await self._faulty_reply(fault, scope, status, headers, chunks, send)

    async def _status_reply(self, fault: Fault, send: Send) -> None:
        body = json.dumps(
            {"status": "failure", "description": f"Injected fault: HTTP {fault.status}"}
        ).encode()
        headers = _with_length([(b"content-type", b"application/json")], body)
        if fault.retry_after is not None:
            headers.append((b"retry-after", str(fault.retry_after).encode()))
        await send({"type": "http.response.start", "status": fault.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _faulty_reply(
        self,
        fault: Fault,
        scope: Scope,
        status: int,
        headers: list[tuple[bytes, bytes]],
        chunks: list[bytes],
        send: Send,
    ) -> None:
        body = b"".join(chunks)
        kind = fault.kind
        if kind in CERT_KINDS and status == 200:
            body = reissue_certificate(body, self.claim_ca, kind)
        elif kind == "malformed_json":
            body = body[:-1]  # the closing brace is gone
        elif kind == "oversize":
            try:
                obj = json.loads(body)
            except ValueError:
                obj = {"reply": body.decode(errors="replace")}
            obj["padding"] = "x" * OVERSIZE_BYTES
            body = json.dumps(obj, separators=(",", ":")).encode()
        if kind == "chunked":
            # No Content-Length and more_body: uvicorn frames the reply as chunked.
            start = {"type": "http.response.start", "status": status}
            await send({**start, "headers": _headers_without_length(headers)})
            half = max(1, len(body) // 2)
            await send({"type": "http.response.body", "body": body[:half], "more_body": True})
            await send({"type": "http.response.body", "body": body[half:], "more_body": True})
            await send({"type": "http.response.body", "body": b""})
            return
        headers = _with_length(headers, body)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        if kind == "close_after_headers":
            await _drop_connection(scope)
            return
        if kind == "close_mid_body":
            half = max(1, len(body) // 2)
            await send({"type": "http.response.body", "body": body[:half], "more_body": True})
            await _drop_connection(scope)
            return
        await send({"type": "http.response.body", "body": body})
