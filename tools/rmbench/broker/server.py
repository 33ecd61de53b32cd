"""Run the bench MQTT broker: amqtt behind the gate, on a TLS port for boards and a plain
loopback port for bench clients, until SIGTERM or SIGINT (`python -m rmbench.broker`)."""

from __future__ import annotations

import asyncio
import logging
import secrets
import signal
import ssl
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from amqtt.broker import Broker

from rmbench.broker.gate import EventLog, Gate
from rmbench.broker.identities import write_broker_certificate
from rmbench.files import write_atomic
from rmbench.service import ca
from rmbench.service.accounts import node_mapping_message
from rmbench.service.logic import ClaimFailure

EVENTS = "events.jsonl"
BENCH_PASSWORD = "bench-password"
LOG_NAME = "broker.log"
# A board connects to 8883 when umqtt.simple is given no port and an ssl context (1.4.0-1.8.0).
MQTTS_PORT = 8883


@dataclass(frozen=True)
class BrokerSettings:
    """Where the broker keeps its files, whose CAs it uses, and where it listens."""

    state_dir: Path  # its certificate, bench password, events.jsonl, broker.log
    service_dir: Path  # the claiming service's state dir: server-ca.pem/.key, claim-ca.pem
    host: str = "127.0.0.1"  # the boards' TLS listener (0.0.0.0 for real boards on the bench)
    port: int = 0  # 0: any free port
    bench_port: int = 0  # the bench listener, always on 127.0.0.1
    names: Sequence[str] = ()  # more names for the server certificate (host names, addresses)


def tls_context(cert: Path, key: Path, client_ca_pem: str) -> ssl.SSLContext:
    """The boards' TLS: this server certificate, and a client certificate REQUIRED and verified
    against client_ca_pem (the claim CA; expiry included)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(cadata=client_ca_pem)
    return ctx


def bench_password(state_dir: Path) -> str:
    """The bench listener's password (made on first use, kept in the state dir, 0600)."""
    path = state_dir / BENCH_PASSWORD
    if not path.exists():
        write_atomic(path, secrets.token_urlsafe(18).encode(), private=True)
    return path.read_text().strip()


def amqtt_config(password: str) -> dict[str, object]:
    """amqtt's configuration: one external listener (the gate feeds it) and only our
    authentication plugin (none of its defaults: $SYS topics, packet logging, anonymous auth)."""
    return {
        "listeners": {"default": {"type": "external"}},
        "plugins": {"rmbench.broker.gate.GateAuthPlugin": {"bench_password": password}},
    }


async def serve(settings: BrokerSettings, ready: Callable[[int, int], None]) -> None:
    """Run until SIGTERM/SIGINT; `ready(port, bench_port)` is called once both listen."""
    authorities = ca.load_or_create_authorities(settings.service_dir)
    cert, key = write_broker_certificate(settings.state_dir, authorities.server, settings.names)
    tls = tls_context(cert, key, authorities.claim.pem)
    password = bench_password(settings.state_dir)
    log = EventLog(settings.state_dir / EVENTS)
    broker = Broker(amqtt_config(password))
    await broker.start()
    gate = Gate(broker, tls, log, password, mapping_sink=_mapping_sink(settings.service_dir))
    nodes = await asyncio.start_server(gate.serve_node, settings.host, settings.port)
    bench = await asyncio.start_server(gate.serve_bench, "127.0.0.1", settings.bench_port)
    port = nodes.sockets[0].getsockname()[1]
    bench_port = bench.sockets[0].getsockname()[1]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    log.write("start", port=port, bench_port=bench_port, host=settings.host)
    ready(port, bench_port)
    try:
        await stop.wait()
    finally:
        nodes.close()
        bench.close()
        await gate.close_all()
        await broker.shutdown()
        log.write("stop")
        log.close()


def _mapping_sink(service_dir: Path) -> Callable[[str, bytes], dict[str, object]]:
    """What the gate calls with each node's mapping request: the claiming service's own
    handling, in this process on its state directory (SQLite: a running `rmbench serve` sees
    the result at once)."""

    def sink(node_id: str, payload: bytes) -> dict[str, object]:
        try:
            return node_mapping_message(service_dir, node_id, payload).to_json()
        except ClaimFailure as e:
            return {"status": "failure", "http_status": e.status, "description": e.description}

    return sink


def display_host(settings: BrokerSettings) -> str:
    """The host a client on this machine should name (the certificate covers it)."""
    if settings.host in ("127.0.0.1", "0.0.0.0", "localhost", "::", "::1"):
        return "localhost"
    return settings.host


def run(settings: BrokerSettings) -> None:
    """Serve in the foreground, printing "mqtts://HOST:PORT" and "bench mqtt://127.0.0.1:PORT"
    (the lines rmbench.broker.harness waits for)."""
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")

    def ready(port: int, bench_port: int) -> None:
        print(f"mqtts://{display_host(settings)}:{port}", flush=True)
        print(f"bench mqtt://127.0.0.1:{bench_port}", flush=True)

    try:
        asyncio.run(serve(settings, ready))
    except OSError as e:  # e.g. the port is taken
        print(f"rmbench broker: {e}", file=sys.stderr, flush=True)
        raise SystemExit(2) from e
