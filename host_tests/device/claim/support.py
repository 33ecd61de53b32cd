"""Claim-flow test helpers: device scripts with JSON results, certificates, TLS servers."""

from __future__ import annotations

import datetime
import json
import socket
import ssl
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from rmbench import certs
from rmbench.boardsim import SimBoard
from rmbench.micropython import Interpreter
from rmbench.service.harness import RunningService

# Prepended to every device script: ARGS from stdin, out() prints the one result line.
PRELUDE = """
import sys, json
ARGS = json.loads(sys.stdin.read() or "null")
def err(e):
    return {"kind": type(e).__name__, "error": str(e),
            "retryable": getattr(e, "retryable", None),
            "retry_after": getattr(e, "retry_after", None),
            "status": getattr(e, "status", None)}
def out(obj):
    print("RESULT:" + json.dumps(obj))
"""


def result(stdout: str) -> Any:
    """The JSON a device script printed with out()."""
    for line in reversed(stdout.splitlines()):
        if line.startswith("RESULT:"):
            return json.loads(line[len("RESULT:") :])
    raise AssertionError(f"no RESULT line in the device output:\n{stdout[-3000:]}")


def run_device(
    interp: Interpreter,
    code: str,
    args: Any = None,
    *,
    board: SimBoard | None = None,
    heap: str | None = None,
    path: Sequence[Path] = (),
    env: dict[str, str] | None = None,
    timeout: float = 120.0,
) -> Any:
    """Run PRELUDE + code (on `board` if given), with `args` as JSON on stdin; its result."""
    script = PRELUDE + code
    stdin = json.dumps(args)
    if board is not None:
        out = board.run(
            interp, script, stdin=stdin, heap=heap or "1M", path=path, env=env, timeout=timeout
        )
    else:
        out = interp.run(script, stdin=stdin, heap=heap, path=path, env=env, timeout=timeout)
    return result(out)


# --- certificates (cryptography's builders) ------------------------------------------------------


@dataclass(frozen=True)
class Issued:
    """A certificate and its key, PEM."""

    cert_pem: str
    key_pem: str
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def make_ca(cn: str) -> Issued:
    key = ec.generate_private_key(ec.SECP256R1())
    extensions = [certs.ca_constraints(), certs.key_usage(certificate_signing=True)]
    start, end = _now() - datetime.timedelta(days=1), _now() + datetime.timedelta(days=30)
    return _issued(certs.self_signed(key, certs.cn_name(cn), start, end, extensions), key)


def _issued(cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> Issued:
    return Issued(
        certs.pem(cert),
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode(),
        cert,
        key,
    )


def issue_server(
    ca: Issued, names: Sequence[str] = ("localhost", "127.0.0.1"), *, expired: bool = False
) -> Issued:
    """A TLS server certificate for `names` (DNS names or IP addresses), signed by `ca`."""
    key = ec.generate_private_key(ec.SECP256R1())
    start = _now() - datetime.timedelta(days=10 if expired else 1)
    end = _now() - datetime.timedelta(days=2) if expired else _now() + datetime.timedelta(days=30)
    extensions = [certs.alt_names(names), certs.server_auth()]
    subject = certs.cn_name(names[0])
    cert = certs.certificate(
        subject, key.public_key(), ca.cert.subject, ca.key, start, end, extensions
    )
    return _issued(cert, key)


# --- TLS (or plain) test servers -----------------------------------------------------------------

Handler = Callable[[socket.socket, "LocalServer"], None]


@dataclass
class LocalServer:
    """A loopback server running `handler` for each connection in its own thread."""

    handler: Handler
    tls: Issued | None = None
    client_ca_pem: str | None = None  # require client certificates from this CA
    wrap_tls: bool = True
    port: int = 0
    connections: int = 0
    requests: list[bytes] = field(default_factory=list)
    peer_cns: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    _listener: socket.socket | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _open: list[socket.socket] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> LocalServer:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.port = self._listener.getsockname()[1]
        t = threading.Thread(target=self._accept_loop, daemon=True)
        t.start()
        self._threads.append(t)
        return self

    def url(self, host: str = "localhost", scheme: str = "https") -> str:
        return f"{scheme}://{host}:{self.port}"

    def _context(self) -> ssl.SSLContext:
        assert self.tls is not None
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        with tempfile.TemporaryDirectory() as tmp:
            cert, key = Path(tmp) / "c.pem", Path(tmp) / "k.pem"
            cert.write_text(self.tls.cert_pem)
            key.write_text(self.tls.key_pem)
            ctx.load_cert_chain(cert, key)
        if self.client_ca_pem is not None:
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.load_verify_locations(cadata=self.client_ca_pem)
        return ctx

    def _accept_loop(self) -> None:
        assert self._listener is not None
        ctx = self._context() if self.tls is not None and self.wrap_tls else None
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self.connections += 1
                self._open.append(conn)
            t = threading.Thread(target=self._serve, args=(conn, ctx), daemon=True)
            t.start()
            self._threads.append(t)

    def _serve(self, conn: socket.socket, ctx: ssl.SSLContext | None) -> None:
        sock: socket.socket = conn
        try:
            conn.settimeout(10)
            if ctx is not None:
                tls_sock = ctx.wrap_socket(conn, server_side=True)
                sock = tls_sock
                with self._lock:
                    self._open.append(sock)
                der = tls_sock.getpeercert(binary_form=True)
                if der:
                    cert = x509.load_der_x509_certificate(der)
                    for attr in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME):
                        self.peer_cns.append(str(attr.value))
            self.handler(sock, self)
        except (OSError, ssl.SSLError) as e:
            self.errors.append(repr(e))
        finally:
            try:
                sock.close()
            except OSError:
                pass

    def stop(self) -> None:
        self._stop.set()
        if self._listener is not None:
            self._listener.close()
        with self._lock:
            for s in self._open:
                try:
                    s.close()
                except OSError:
                    pass
        for t in self._threads:
            t.join(timeout=5)


@contextmanager
def serving(*servers: LocalServer) -> Iterator[tuple[LocalServer, ...]]:
    """Start the servers; stop them all afterwards, whatever happened."""
    started: list[LocalServer] = []
    try:
        for s in servers:
            started.append(s.start())
        yield servers
    finally:
        for s in started:
            s.stop()


def read_request(sock: socket.socket) -> bytes | None:
    """One HTTP request (head and Content-Length body) from sock; None at end of stream."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            return data if data else None
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        chunk = sock.recv(4096)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


def reply(status: int, body: bytes, *headers: str) -> bytes:
    lines = [f"HTTP/1.1 {status} X", f"Content-Length: {len(body)}", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def issue_device(
    ca: Issued,
    public_key: ec.EllipticCurvePublicKey,
    cn: str,
    *,
    expired: bool = False,
) -> str:
    """A device (client) certificate for public_key with CN=cn, signed by ca, as PEM."""
    start = _now() - datetime.timedelta(days=10 if expired else 1)
    end = _now() - datetime.timedelta(days=1) if expired else _now() + datetime.timedelta(days=365)
    subject = certs.cn_name(cn)
    cert = certs.certificate(
        subject, public_key, ca.cert.subject, ca.key, start, end, [certs.client_auth()]
    )
    return certs.pem(cert)


def sec1_pem(key: ec.EllipticCurvePrivateKey) -> str:
    """The key as the device stores it: SEC1 "EC PRIVATE KEY" PEM."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()


def public_point(key: ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey) -> bytes:
    """The 65-byte uncompressed point of a key."""
    pub = key.public_key() if isinstance(key, ec.EllipticCurvePrivateKey) else key
    return pub.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )


def claim_config(svc: RunningService, **overrides: Any) -> dict[str, Any]:
    """A config for `svc` with short backoff and few attempts, as the tests want."""
    cfg: dict[str, Any] = {
        "service_url": svc.base_url,
        "ca": svc.server_ca_pem,
        "max_attempts": 3,
        "backoff_base_s": 0.05,
        "backoff_cap_s": 0.2,
        "timeout_s": 5,
    }
    cfg.update(overrides)
    return cfg
