"""Helpers of the broker tests: a host MQTT client (paho-mqtt, an implementation independent of
ours) and device scripts for the Unix port."""

from __future__ import annotations

import json
import queue
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from paho.mqtt.enums import CallbackAPIVersion
from rmbench.boardsim import SimBoard
from rmbench.broker.harness import RunningBroker
from rmbench.broker.identities import ClientIdentity
from rmbench.micropython import Interpreter

TIMEOUT = 10.0


@dataclass
class HostClient:
    """A paho-mqtt client on its own network thread; what it sees lands in `seen` as tuples:
    ("connack", reason), ("closed", reason), ("message", topic, payload),
    ("suback", [reasons]), ("puback", mid)."""

    client: paho.Client
    seen: queue.Queue[tuple[Any, ...]] = field(default_factory=queue.Queue)
    messages: list[tuple[str, bytes]] = field(default_factory=list)

    @classmethod
    def node(
        cls, broker: RunningBroker, identity: ClientIdentity, tmp: Path, client_id: str
    ) -> HostClient:
        """A client presenting `identity` to the boards' TLS port, pinning the broker's CA
        (the service's server CA) with the host name checked."""
        cert, key = identity.write(tmp, f"id-{identity.cn}-{identity.cert.serial_number:x}")
        c = cls(_paho(client_id))
        c.client.tls_set(
            ca_certs=str(broker.server_ca_file),
            certfile=str(cert),
            keyfile=str(key),
            cert_reqs=ssl.CERT_REQUIRED,
        )
        return c

    @classmethod
    def bench(
        cls, broker: RunningBroker, client_id: str, password: str | None = None
    ) -> HostClient:
        """A client on the bench listener (plain MQTT on loopback, user and password)."""
        c = cls(_paho(client_id))
        user, secret = broker.bench_credentials
        c.client.username_pw_set(user, secret if password is None else password)
        return c

    def __post_init__(self) -> None:
        c, put = self.client, self.seen.put
        c.on_connect = lambda _c, _u, _f, rc, _p: put(("connack", str(rc)))
        c.on_disconnect = lambda _c, _u, _f, rc, _p: put(("closed", str(rc)))
        c.on_subscribe = lambda _c, _u, _mid, rcs, _p: put(("suback", [str(r) for r in rcs]))
        c.on_publish = lambda _c, _u, mid, _rc, _p: put(("puback", mid))

        def on_message(_c: paho.Client, _u: Any, m: paho.MQTTMessage) -> None:
            self.messages.append((m.topic, bytes(m.payload)))
            put(("message", m.topic, bytes(m.payload)))

        c.on_message = on_message

    def connect(self, port: int, host: str = "localhost") -> tuple[Any, ...]:
        """Connect and return what came first: ("connack", reason), ("closed", reason), or
        ("error", text) when the TLS handshake failed inside connect()."""
        try:
            self.client.connect(host, port, keepalive=30)
        except (ssl.SSLError, OSError) as e:
            return ("error", str(e))
        self.client.loop_start()
        return self.next("connack", "closed")

    def next(self, *kinds: str, timeout: float = TIMEOUT) -> tuple[Any, ...]:
        """The next event of one of these kinds (others are skipped)."""
        while True:
            try:
                event = self.seen.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(f"no {' or '.join(kinds)} within {timeout:g} s") from None
            if event[0] in kinds:
                return event

    def subscribe(self, topic_filter: str, qos: int = 1) -> tuple[Any, ...]:
        self.client.subscribe(topic_filter, qos)
        return self.next("suback", "closed")

    def publish(self, topic: str, payload: bytes, qos: int = 1) -> tuple[Any, ...]:
        """Publish; for QoS 1 returns ("puback", mid) or ("closed", reason)."""
        info = self.client.publish(topic, payload, qos)
        if qos == 0:
            return ("sent", info.mid)
        return self.next("puback", "closed")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _paho(client_id: str) -> paho.Client:
    return paho.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=paho.MQTTv311,
        reconnect_on_failure=False,
    )


# --- device scripts (the MicroPython Unix port, boardsim modules first on the path) --------------

# Prepended to every device script: ARGS from stdin; out() prints the one result line; err()
# names an exception the way a board would see it.
PRELUDE = """
import sys, json
ARGS = json.loads(sys.stdin.read() or "null")
def err(e):
    return {"kind": type(e).__name__, "args": [a if isinstance(a, (int, str)) else repr(a)
            for a in e.args]}
def out(obj):
    print("RESULT:" + json.dumps(obj))
"""

# A mutual-TLS context as device code makes one: the stored DER key and certificate, the
# broker's CA pinned, the server certificate required.
CONTEXT = """
import tls
def context(a):
    ctx = tls.SSLContext(tls.PROTOCOL_TLS_CLIENT)
    ctx.verify_mode = tls.CERT_REQUIRED
    ctx.load_verify_locations(bytes.fromhex(a["ca"]))
    ctx.load_cert_chain(bytes.fromhex(a["cert"]), bytes.fromhex(a["key"]))
    return ctx
"""


def device_args(broker: RunningBroker, identity: ClientIdentity, **more: Any) -> dict[str, Any]:
    """What a device script needs to reach the broker as `identity`."""
    ca = x509.load_pem_x509_certificate(broker.server_ca_pem.encode())
    return {
        "ca": ca.public_bytes(Encoding.DER).hex(),
        "cert": identity.cert_der.hex(),
        "key": identity.key_der.hex(),
        "port": broker.port,
        "id": identity.cn,
        **more,
    }


def run_board(
    board: SimBoard, mpy: Interpreter, code: str, args: Any = None, timeout: float = 60.0
) -> Any:
    """Run PRELUDE + CONTEXT + code on `board`; the JSON it passed to out()."""
    stdout = board.run(
        mpy, PRELUDE + CONTEXT + code, stdin=json.dumps(args), heap="1M", timeout=timeout
    )
    for line in reversed(stdout.splitlines()):
        if line.startswith("RESULT:"):
            return json.loads(line[len("RESULT:") :])
    raise AssertionError(f"no RESULT line in the device output:\n{stdout[-3000:]}")
