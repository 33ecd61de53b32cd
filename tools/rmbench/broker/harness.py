"""Run the bench MQTT broker from tests and benchmarks (a subprocess of `python -m
rmbench.broker`), and read what happened on it.

Usage::

    from rmbench.broker.harness import running_broker

    with running_broker(tmp_path / "broker", svc.state_dir) as broker:
        ...  # boards connect to broker.port (TLS), pinning broker.server_ca_pem
        broker.wait_for_publish("node/N/user/mapping")
        assert len(broker.published(topic="node/N/user/mapping")) == 1
        broker.restart()  # same ports; every connection drops
    # stopped here; the state dir keeps events.jsonl and broker.log

The pytest fixture `mqtt_broker` (host_tests/conftest.py) yields a RunningBroker for the
`claim_service` fixture's CAs.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from rmbench import helper_process
from rmbench.broker import BrokerError
from rmbench.broker.gate import BENCH_USER
from rmbench.broker.server import EVENTS, LOG_NAME, bench_password
from rmbench.service import ca

Event = dict[str, Any]


@dataclass(frozen=True)
class Published:
    """One PUBLISH a client sent, as the broker's gate saw it (allowed or not)."""

    client_id: str
    topic: str
    payload: bytes
    qos: int
    retain: bool
    dup: bool
    packet_id: int | None
    allowed: bool
    ingest: str | None  # the Basic Ingest rule, for $aws/rules/<rule>/... topics
    conn: int  # which connection (connect events carry the same number)

    @classmethod
    def from_event(cls, e: Event) -> Published:
        return cls(
            e["client_id"],
            e["topic"],
            bytes.fromhex(e["payload"]),
            e["qos"],
            e["retain"],
            e["dup"],
            e["packet_id"],
            e["allowed"],
            e["ingest"],
            e["conn"],
        )


@dataclass
class RunningBroker:
    """A started broker process and what a client needs to reach it."""

    state_dir: Path
    service_dir: Path
    host: str
    port: int
    bench_port: int
    names: tuple[str, ...]
    process: subprocess.Popen[bytes] = field(repr=False)
    _log: IO[bytes] | None = field(default=None, repr=False)
    _pump: threading.Thread | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"mqtts://localhost:{self.port}"

    @property
    def server_ca_pem(self) -> str:
        """The CA a board pins for the broker: the claiming service's server CA."""
        return (self.service_dir / ca.SERVER_CA_CERT).read_text()

    @property
    def server_ca_file(self) -> Path:
        return self.service_dir / ca.SERVER_CA_CERT

    @property
    def claim_ca(self) -> ca.Authority:
        """The CA whose client certificates the broker accepts (to issue test identities)."""
        return ca.load_or_create_authorities(self.service_dir).claim

    @property
    def bench_credentials(self) -> tuple[str, str]:
        """(user, password) of the plain bench listener on 127.0.0.1:bench_port."""
        return BENCH_USER, bench_password(self.state_dir)

    # --- what happened ----------------------------------------------------------------------

    def events(self, kind: str | None = None) -> list[Event]:
        """Every event recorded so far (all runs of this state dir), oldest first; `kind` keeps
        one kind: start, stop, tls_refused, connect, publish, subscribe, closed."""
        path = self.state_dir / EVENTS
        if not path.exists():
            return []
        out = []
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.endswith("}"):  # a line being written has no end yet
                event = json.loads(line)
                if kind is None or event["event"] == kind:
                    out.append(event)
        return out

    def published(
        self, topic: str | None = None, client_id: str | None = None, *, allowed: bool = True
    ) -> list[Published]:
        """PUBLISH packets clients sent (by default only those the broker let through)."""
        return [
            p
            for p in map(Published.from_event, self.events("publish"))
            if p.allowed == allowed
            and (topic is None or p.topic == topic)
            and (client_id is None or p.client_id == client_id)
        ]

    def mark(self) -> int:
        """How many events there are now: `wait_for(..., since=mark)` looks only after it."""
        return len(self.events())

    def wait_for(
        self, match: Callable[[Event], bool], what: str, timeout: float = 10.0, since: int = 0
    ) -> Event:
        """The first recorded event (after the first `since`) that `match` accepts, waiting up
        to `timeout` seconds.

        Raises:
            BrokerError: none came; the message names `what` and shows the last events.
        """
        deadline = time.monotonic() + timeout
        while True:
            for event in self.events()[since:]:
                if match(event):
                    return event
            if time.monotonic() > deadline:
                tail = "\n".join(json.dumps(e) for e in self.events()[-8:])
                raise BrokerError(f"broker: no {what} within {timeout:g} s; last events:\n{tail}")
            time.sleep(0.05)

    def wait_for_publish(self, topic: str, timeout: float = 10.0) -> Published:
        """The first allowed PUBLISH to `topic`, waiting for it."""
        event = self.wait_for(
            lambda e: e["event"] == "publish" and e["topic"] == topic and e["allowed"],
            f"publish to {topic}",
            timeout,
        )
        return Published.from_event(event)

    def log_text(self) -> str:
        path = self.state_dir / LOG_NAME
        return path.read_text(errors="replace") if path.exists() else ""

    # --- life cycle -------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop the broker (SIGTERM: it drops every connection) and wait for it; idempotent."""
        helper_process.stop(self.process, self._pump, signal.SIGTERM)
        self._close_log()

    def kill(self) -> None:
        """Kill the broker at once (SIGKILL: the kernel closes its sockets)."""
        helper_process.stop(self.process, self._pump, signal.SIGKILL)
        self._close_log()

    def restart(self, *, kill: bool = False) -> None:
        """Stop (or kill) the broker and start it again on the same ports and state dir."""
        self.kill() if kill else self.stop()
        new = start_broker(
            self.state_dir,
            self.service_dir,
            host=self.host,
            port=self.port,
            bench_port=self.bench_port,
            names=self.names,
        )
        self.process, self._log, self._pump = new.process, new._log, new._pump

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None


def broker_command(
    state_dir: Path,
    service_dir: Path,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    bench_port: int = 0,
    names: Sequence[str] = (),
) -> list[str]:
    """The argv of the broker process as the harness runs it."""
    argv = [sys.executable, "-m", "rmbench.broker", "--state-dir", str(state_dir)]
    argv += ["--service-dir", str(service_dir), "--host", host]
    argv += ["--port", str(port), "--bench-port", str(bench_port)]
    for name in names:
        argv += ["--name", name]
    return argv


def start_broker(
    state_dir: Path,
    service_dir: Path,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    bench_port: int = 0,
    names: Sequence[str] = (),
) -> RunningBroker:
    """Start the broker and return once it listens; the caller must stop() it.

    The service's CAs are created in service_dir if it has none yet (as `rmbench serve` would):
    start the broker after the service, or before it, not at the same moment.

    Raises:
        BrokerError: the broker exited, or did not say where it listens within
            helper_process.START_TIMEOUT seconds.
    """
    state_dir, service_dir = Path(state_dir), Path(service_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    ca.load_or_create_authorities(service_dir)
    argv = broker_command(
        state_dir, service_dir, host=host, port=port, bench_port=bench_port, names=names
    )
    ports: dict[str, int] = {}

    def ready(line: str) -> bool:  # it prints both its ports
        if line.startswith("mqtts://"):
            ports["node"] = int(line.rsplit(":", 1)[1])
        elif line.startswith("bench mqtt://"):
            ports["bench"] = int(line.rsplit(":", 1)[1])
        return len(ports) == 2

    started = helper_process.start(
        argv, state_dir / LOG_NAME, what="the broker", ready=ready, error=BrokerError
    )
    return RunningBroker(
        state_dir=state_dir,
        service_dir=service_dir,
        host=host,
        port=ports["node"],
        bench_port=ports["bench"],
        names=tuple(names),
        process=started.process,
        _log=started.log,
        _pump=started.pump,
    )


@contextmanager
def running_broker(
    state_dir: Path,
    service_dir: Path,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    bench_port: int = 0,
    names: Sequence[str] = (),
) -> Iterator[RunningBroker]:
    """A running broker for the duration of the block (stopped afterwards, whatever happened)."""
    broker = start_broker(
        state_dir, service_dir, host=host, port=port, bench_port=bench_port, names=names
    )
    try:
        yield broker
    finally:
        broker.stop()
