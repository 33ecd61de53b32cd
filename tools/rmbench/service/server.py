"""Start the local claiming service: state directory, TLS, socket, uvicorn, the ready line."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import ipaddress
import json
import os
import socket
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from rmbench.errors import ServiceError, UsageError
from rmbench.service import SERVER_INFO, ca
from rmbench.service.app import create_app
from rmbench.service.faults import FaultQueue
from rmbench.service.logic import ClaimService, Settings
from rmbench.service.store import Store

LOCK_FILE = "serve.lock"
# Written while a server runs: its URL and pid, for `rmbench fault --state-dir`.


class _Protocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol, handing the connection's transport to the fault layer.

    A real link or server that dies mid-reply closes TCP without a TLS close_notify; an ASGI
    app can only end the reply, after which uvicorn closes the transport gracefully (TLS
    shutdown, waiting for the peer). The fault layer finds `transport` in the request scope's
    "state" (copied per request from app_state) and aborts it instead.
    """

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.app_state = {**self.app_state, "rmbench.transport": transport}


@dataclass(frozen=True)
class ServeOptions:
    """How to run the service (the `rmbench serve` options)."""

    state_dir: Path
    host: str = "127.0.0.1"
    port: int = 0
    names: Sequence[str] = ()
    insecure_http: bool = False
    faults: bool = False
    settings: Settings = field(default_factory=Settings)
    log_level: str = "warning"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def base_url(options: ServeOptions, port: int) -> str:
    """The URL clients use: the first --name, the bound address, or localhost for loopback."""
    scheme = "http" if options.insecure_http else "https"
    if options.names:
        host = options.names[0]
    elif is_loopback(options.host) or options.host in ("0.0.0.0", "::", ""):
        host = "localhost"
    else:
        host = options.host
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"{scheme}://{host}:{port}"


@contextlib.contextmanager
def _state_lock(state_dir: Path) -> Iterator[None]:
    # One server per state directory: two would hand out the same fault queue and port file.
    fd = os.open(state_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UsageError(
                f"{state_dir}: another rmbench serve already uses this state directory"
            ) from None
        yield
    finally:
        os.close(fd)


def _bind(host: str, port: int) -> socket.socket:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        raise UsageError(f"cannot resolve --host {host}: {e}") from e
    family, kind, proto, _, address = infos[0]
    # proto must be IPPROTO_TCP: asyncio sets TCP_NODELAY on accepted sockets only then, and
    # without it the reply body waits ~40 ms behind the headers (Nagle + delayed ACK).
    sock = socket.socket(family, kind, proto or socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as e:
        sock.close()
        raise ServiceError(f"cannot listen on {host}:{port}: {e.strerror}") from e
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def serve(options: ServeOptions, ready: Callable[[str], None], log: IO[str] = sys.stderr) -> None:
    """Run the service until SIGINT/SIGTERM; call `ready(base_url)` once it accepts requests.

    Raises:
        UsageError: --insecure-http on a non-loopback address, a broken state directory.
        ServiceError: the address cannot be bound.
    """
    if options.insecure_http and not is_loopback(options.host):
        raise UsageError(
            f"--insecure-http serves plain HTTP, which is allowed on a loopback address only "
            f"(127.0.0.1, ::1, localhost), not {options.host}"
        )
    state_dir = options.state_dir
    state_dir.mkdir(parents=True, exist_ok=True)
    with _state_lock(state_dir):
        authorities = ca.load_or_create_authorities(state_dir)
        names = list(options.names)
        if options.host not in ("0.0.0.0", "::", ""):
            names.append(options.host)
        ca.write_server_certificate(state_dir, authorities.server, names)
        store = Store.open(state_dir)
        service = ClaimService(store, authorities.claim, options.settings)
        queue = FaultQueue() if options.faults else None
        app = create_app(service, queue)
        sock = _bind(options.host, options.port)
        port = sock.getsockname()[1]
        url = base_url(options, port)
        tls = not options.insecure_http
        config = uvicorn.Config(
            app,
            log_level=options.log_level,
            access_log=options.log_level in ("info", "debug", "trace"),
            lifespan="off",
            http=_Protocol,
            server_header=False,
            timeout_graceful_shutdown=3,
            ssl_certfile=str(state_dir / ca.SERVER_CERT) if tls else None,
            ssl_keyfile=str(state_dir / ca.SERVER_KEY) if tls else None,
        )
        server = uvicorn.Server(config)
        info_path = state_dir / SERVER_INFO
        try:
            asyncio.run(_run(server, sock, url, info_path, options.faults, ready))
        finally:
            sock.close()
            info_path.unlink(missing_ok=True)
            store.close()
    if not server.started:
        raise ServiceError(f"the server on {url} did not start (see the messages above)")
    print(f"rmbench serve: {url} stopped", file=log)


async def _run(
    server: uvicorn.Server,
    sock: socket.socket,
    url: str,
    info_path: Path,
    faults: bool,
    ready: Callable[[str], None],
) -> None:
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started and not task.done():
        await asyncio.sleep(0.01)
    if server.started:
        info = {"url": url, "pid": os.getpid(), "faults": faults}
        info_path.write_text(json.dumps(info) + "\n")
        ready(url)
    await task
