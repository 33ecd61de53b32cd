"""What the rmnode tests share: device scripts run with the firmware's rmboot on the path, the
claim config of a board that also names the broker, identities written straight into a board's
store, the status lines and LED pattern a run left, and a TCP relay that looks at the board's
open sockets when it connects."""

from __future__ import annotations

import json
import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rmbench import FIRMWARE_DIR
from rmbench.boardsim import SimBoard
from rmbench.broker.harness import RunningBroker
from rmbench.broker.identities import ClientIdentity
from rmbench.micropython import Interpreter
from rmbench.service.harness import RunningService
from rmbench.statusline import StatusLine, parse_status

from .support import PRELUDE


def node_config(
    service: RunningService, broker: RunningBroker | None, **more: Any
) -> dict[str, Any]:
    """A claim config for this service (quick retries) that names `broker` as the MQTT
    broker: its CA pinned, localhost (the name its certificate covers), its port."""
    cfg: dict[str, Any] = {
        "service_url": service.base_url,
        "ca": service.server_ca_pem,
        "max_attempts": 3,
        "backoff_base_s": 0.05,
        "backoff_cap_s": 0.2,
        "timeout_s": 5,
    }
    if broker is not None:
        cfg.update(mqtt_ca=broker.server_ca_pem, mqtt_host="localhost", mqtt_port=broker.port)
    if service.base_url.startswith("http:"):
        cfg.update(allow_insecure_http=True)
        del cfg["ca"]
    cfg.update(more)
    return cfg


def run_node(
    board: SimBoard,
    mpy: Interpreter,
    code: str,
    args: Any = None,
    timeout: float = 90.0,
    heap: str = "1M",
) -> tuple[Any, list[StatusLine], str]:
    """Run PRELUDE + code on `board` with firmware/ importable (rmboot's status lines): the JSON
    it passed to out() (None without one), its status lines, its whole output."""
    stdout = board.run(
        mpy,
        PRELUDE + code,
        stdin=json.dumps(args),
        heap=heap,
        timeout=timeout,
        path=[FIRMWARE_DIR],
    )
    result = None
    for line in reversed(stdout.splitlines()):
        if line.startswith("RESULT:"):
            result = json.loads(line[len("RESULT:") :])
            break
    lines = [s for s in map(parse_status, stdout.splitlines()) if s is not None]
    return result, lines, stdout


def steps(lines: list[StatusLine]) -> list[str]:
    return [f"{s.step}:{s.outcome}" for s in lines]


# Writes an identity into the board's store as a claim would leave it, without the claim's
# checks (the point is to hold what a broker refuses): key, then certificate, node id, host.
STORE_IDENTITY = """
from rmclaim import store
st = store.Store()
st.forget()
st.save_key(ARGS["key_pem"])
st.save_identity(ARGS["cert_pem"], ARGS["node_id"], "localhost", None)
"""


def identity_args(identity: ClientIdentity, node_id: str | None = None) -> dict[str, str]:
    """STORE_IDENTITY's ARGS for `identity` (the key as the store keeps it: SEC1 PEM)."""
    from cryptography.hazmat.primitives import serialization

    key_pem = identity.key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()
    return {
        "key_pem": key_pem,
        "cert_pem": identity.cert_pem.decode(),
        "node_id": node_id or identity.cn,
    }


ERROR_RED = (48, 0, 0)  # firmware/rmboot.py's error colour on an RGB LED


def led_flash_groups(board: SimBoard, gap_ms: int = 600) -> list[int]:
    """The RGB status LED's groups of short red flashes (< 400 ms, the error pattern) between
    dark gaps of at least `gap_ms`, over the whole pin log."""
    rows: list[tuple[int, int]] = []
    assert board.profile.led_pin is not None
    for ms, color in board.led_colors(board.profile.led_pin):
        level = int(color == ERROR_RED)
        if not rows or rows[-1][1] != level:
            rows.append((ms, level))
    groups: list[int] = []
    count = 0
    for (ms, level), nxt in zip(rows, [*rows[1:], None], strict=True):
        length = nxt[0] - ms if nxt else -1
        if level == 1 and 0 <= length < 400:
            count += 1
        elif level == 0 and (length >= gap_ms or length < 0):
            if count:
                groups.append(count)
            count = 0
    if count:
        groups.append(count)
    return groups


# --- a relay in front of the broker that looks at the connecting process's sockets ------------


def _tcp_table() -> dict[str, tuple[int, int, str]]:
    # inode -> (local port, remote port, state) of every TCP socket on this machine.
    out: dict[str, tuple[int, int, str]] = {}
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(name).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            parts = row.split()
            local, remote, state, inode = parts[1], parts[2], parts[3], parts[9]
            ports = int(local.rsplit(":", 1)[1], 16), int(remote.rsplit(":", 1)[1], 16)
            out[inode] = (*ports, state)
    return out


def _socket_inodes(pid: int) -> list[str]:
    found = []
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            found.append(target[8:-1])
    return found


def _owner(inode: str) -> int | None:
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if inode in _socket_inodes(int(entry.name)):
                return int(entry.name)
        except OSError:
            continue
    return None


@dataclass
class Seen:
    """One connection the relay took: the connecting process, its socket for this connection,
    and every other TCP socket it had open at that moment (local port, remote port)."""

    pid: int | None
    own: str | None
    others: list[tuple[int, int]]


@dataclass
class Relay:
    """Listens on 127.0.0.1:port and passes each connection through to `target`, after
    noting what the connecting process had open (a Seen per connection). drop() closes the
    connections passed through so far (a broken link, seen from the board)."""

    target: int
    port: int = 0
    seen: list[Seen] = field(default_factory=list)
    _server: socket.socket | None = None
    _pairs: list[tuple[socket.socket, socket.socket]] = field(default_factory=list)

    def start(self) -> None:
        srv = socket.create_server(("127.0.0.1", 0))
        self.port = srv.getsockname()[1]
        self._server = srv
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        assert self._server is not None
        while True:
            try:
                conn, peer = self._server.accept()
            except OSError:
                return
            self.seen.append(self._look(peer[1]))
            up = socket.create_connection(("127.0.0.1", self.target))
            self._pairs.append((conn, up))
            for a, b in ((conn, up), (up, conn)):
                threading.Thread(target=_pipe, args=(a, b), daemon=True).start()

    def _look(self, peer_port: int) -> Seen:
        table = _tcp_table()
        own = next(
            (i for i, (lp, rp, _) in table.items() if lp == peer_port and rp == self.port), None
        )
        pid = _owner(own) if own else None
        others: list[tuple[int, int]] = []
        if pid is not None:
            for inode in _socket_inodes(pid):
                if inode != own and inode in table:
                    others.append(table[inode][:2])
        return Seen(pid, own, others)

    def drop(self) -> None:
        for a, b in self._pairs:
            for s in (a, b):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()
        self._pairs.clear()

    def close(self) -> None:
        if self._server is not None:
            self._server.close()
        self.drop()


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass


@contextmanager
def relay_to(port: int) -> Iterator[Relay]:
    r = Relay(port)
    r.start()
    try:
        yield r
    finally:
        r.close()
