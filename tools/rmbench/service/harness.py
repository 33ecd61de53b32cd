"""Run the real local claiming service from tests and benchmarks (a subprocess of `rmbench serve`).

Usage::

    from rmbench.service.harness import running_service

    with running_service(tmp_path / "svc") as svc:
        user_id = svc.add_user("token-1", quota=5)
        svc.register("7CDFA100033B", bytes(range(16)))
        svc.inject_fault("status", status=503, retry_after=2, path="verify")
        svc.node_mapping(node_id, payload)  # what a node published on node/<id>/user/mapping
        ...  # talk to svc.base_url, trusting svc.server_ca_pem (the CA a device pins)
    # the server has stopped here; state_dir keeps its CAs and database

`running_service` starts `rmbench serve --state-dir DIR --port 0 --faults` (plus `--host`,
`--name`, `--insecure-http` as given), waits for the URL it prints, and stops it on exit
(SIGTERM, then SIGKILL after a grace period), so no process outlives the block. The server's log
goes to `DIR/serve.log`. `base_url` uses `localhost`, which the server certificate covers (with
127.0.0.1, ::1 and every name).

Fault kinds for `inject_fault(kind, count=1, path=None, **params)`: "delay" (seconds=...),
"close_after_headers", "close_mid_body", "status" (status=500|502|503|504, retry_after=N),
"chunked", "wrong_key_cert", "wrong_cn_cert", "malformed_json", "oversize"; path is "initiate",
"verify", "mqtt_host" or None for any (see rmbench.service.faults for exactly what each does).

`node_mapping(node_id, payload)` posts a node's mapping message to the loopback-only
POST /internal/node-mapping?node_id=<node_id> (the body exactly as the node published it) and
returns the reply: 200 {"status":"success","result":"confirmed"|"pending"|"reset",...} or 409
(mismatch, refused), 400, 404 failures. In-process, without HTTP:
`rmbench.service.accounts.node_mapping_message(state_dir, node_id, payload)`.

The pytest fixture `claim_service` (host_tests/conftest.py) yields a RunningService on a fresh
temporary state directory.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import urllib.parse
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from rmbench import helper_process
from rmbench.errors import ServiceError
from rmbench.service import accounts, ca, client
from rmbench.service.app import INTERNAL_NODE_MAPPING
from rmbench.service.store import DEFAULT_QUOTA

LOG_NAME = "serve.log"


@dataclass
class RunningService:
    """A started `rmbench serve` process and what a client needs to talk to it."""

    base_url: str
    state_dir: Path
    server_ca_pem: str
    claim_ca_pem: str
    process: subprocess.Popen[bytes] = field(repr=False)
    _log: IO[bytes] | None = field(default=None, repr=False)
    _pump: threading.Thread | None = field(default=None, repr=False)

    @property
    def server_ca_file(self) -> Path:
        return self.state_dir / ca.SERVER_CA_CERT

    @property
    def claim_ca_file(self) -> Path:
        return self.state_dir / ca.CLAIM_CA_CERT

    def add_user(self, token: str, quota: int = DEFAULT_QUOTA, user_id: str | None = None) -> str:
        """Create (or update) a user holding this access token; returns the user id."""
        return accounts.add_user(self.state_dir, token, quota, user_id)

    def register(self, mac: str, unique_id: bytes) -> None:
        """Register a board's MAC and 16-byte OPTIONAL_UNIQUE_ID for self-claiming."""
        accounts.register_device(self.state_dir, mac, unique_id)

    def inject_fault(
        self, kind: str, count: int = 1, path: str | None = None, **params: object
    ) -> None:
        """Make the next `count` requests (to `path`, or any API path) suffer `kind`."""
        client.add_fault(self.base_url, self._ca(), kind, count, path, **params)

    def node_mapping(self, node_id: str, payload: bytes) -> client.Reply:
        """Hand over what node `node_id` published on node/<node_id>/user/mapping."""
        path = f"{INTERNAL_NODE_MAPPING}?{urllib.parse.urlencode({'node_id': node_id})}"
        return client.request(self.base_url, "POST", path, ca_file=self._ca(), body=payload)

    def user_nodes(self, token: str) -> list[str]:
        """The node ids mapped to the user holding `token`."""
        return [n.node_id for n in accounts.user_nodes(self.state_dir, token=token)]

    def clear_faults(self) -> None:
        """Drop every pending fault."""
        client.clear_faults(self.base_url, self._ca())

    def pending_faults(self) -> list[dict[str, object]]:
        return client.list_faults(self.base_url, self._ca())

    def log_text(self) -> str:
        """What the server wrote to its log so far."""
        path = self.state_dir / LOG_NAME
        return path.read_text(errors="replace") if path.exists() else ""

    def _ca(self) -> Path | None:
        return None if self.base_url.startswith("http:") else self.server_ca_file

    def stop(self) -> None:
        """Stop the server and wait for it (idempotent)."""
        helper_process.stop(self.process, self._pump)
        if self._log is not None:
            self._log.close()
            self._log = None


def serve_command(
    state_dir: Path,
    *,
    host: str = "127.0.0.1",
    names: Sequence[str] = (),
    insecure_http: bool = False,
    faults: bool = True,
    extra_args: Sequence[str] = (),
) -> list[str]:
    """The argv of `rmbench serve` as the harness runs it."""
    argv = [sys.executable, "-m", "rmbench.cli", "serve", "--state-dir", str(state_dir)]
    argv += ["--host", host, "--port", "0"]
    if faults:
        argv.append("--faults")
    for name in names:
        argv += ["--name", name]
    if insecure_http:
        argv.append("--insecure-http")
    return argv + list(extra_args)


def start_service(
    state_dir: Path,
    *,
    host: str = "127.0.0.1",
    names: Sequence[str] = (),
    insecure_http: bool = False,
    faults: bool = True,
    extra_args: Sequence[str] = (),
) -> RunningService:
    """Start `rmbench serve` and return once it printed its URL; the caller must stop() it.

    faults=False leaves the fault endpoint off (as in a normal run); extra_args are further
    `rmbench serve` options, e.g. ["--challenge-ttl", "1"].

    Raises:
        ServiceError: the server exited, or printed no URL within
            helper_process.START_TIMEOUT seconds.
    """
    state_dir = Path(state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    argv = serve_command(
        state_dir,
        host=host,
        names=names,
        insecure_http=insecure_http,
        faults=faults,
        extra_args=extra_args,
    )
    urls: list[str] = []

    def ready(line: str) -> bool:  # its first URL line says where it listens
        if line.startswith(("http://", "https://")):
            urls.append(line)
        return bool(urls)

    started = helper_process.start(
        argv, state_dir / LOG_NAME, what="rmbench serve", ready=ready, error=ServiceError
    )
    return RunningService(
        base_url=urls[0],
        state_dir=state_dir,
        server_ca_pem=(state_dir / ca.SERVER_CA_CERT).read_text(),
        claim_ca_pem=(state_dir / ca.CLAIM_CA_CERT).read_text(),
        process=started.process,
        _log=started.log,
        _pump=started.pump,
    )


@contextmanager
def running_service(
    state_dir: Path,
    *,
    host: str = "127.0.0.1",
    names: Sequence[str] = (),
    insecure_http: bool = False,
    faults: bool = True,
    extra_args: Sequence[str] = (),
) -> Iterator[RunningService]:
    """A running local claiming service on state_dir for the duration of the block."""
    svc = start_service(
        state_dir,
        host=host,
        names=names,
        insecure_http=insecure_http,
        faults=faults,
        extra_args=extra_args,
    )
    try:
        yield svc
    finally:
        svc.stop()
