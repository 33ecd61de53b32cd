"""The broker's front door: mutual TLS, the CONNECT check (client id = certificate CN), the
node topic policy on every PUBLISH and SUBSCRIBE, and a record of each; what passes goes on to
amqtt, which does the MQTT broker's work (sessions, acknowledgements, routing, keep-alive).

Why a gate in front of amqtt (0.12.1) rather than its own TLS listener and plugins: its TLS
context asks for client certificates with ssl.CERT_OPTIONAL (amqtt/broker.py
`_create_ssl_context`); it removes or takes over an existing session of the same client id
before it asks the authentication plugins (broker.py `_initialize_client_session`,
`_handle_client_session`), so a refused client could still disconnect the node it names; and
it sends PUBACK for a QoS 1 PUBLISH before the topic plugins see it (mqtt/protocol/handler.py
`_handle_qos1_message_flow`), so a refused message would look delivered. The gate decides all
of that before amqtt reads a byte, and hands the connection over through amqtt's documented
"external" listener (`Broker.external_connected`).

What a refusal looks like is modelled on AWS IoT Core, the broker ESP RainMaker uses ("AWS IoT
differences from MQTT specifications" and "Lifecycle events" in its Developer Guide): a client
that fails authentication or authorization is disconnected (lifecycle reason AUTH_ERROR). The
guide does not say whether a refusing CONNACK, PUBACK or SUBACK comes first, so none does (the
harsher case for a board). A QoS 2 PUBLISH or SUBSCRIBE gets no acknowledgement at all. A
retained PUBLISH needs a permission (iot:RetainPublish) we assume a node's policy lacks: the
connection is closed, the harsher of the two behaviours AWS has documented over time. A newer
connection with a client id closes the older one.

A node's user-node mapping request (node/<id>/user/mapping, or its Basic Ingest topic) that the
gate lets through is also handed to `mapping_sink` (the broker process gives the claiming
service's rmbench.service.accounts.node_mapping_message), as RainMaker's cloud takes it from
the broker, and what came of it is recorded as a "mapping" event.
"""

from __future__ import annotations

import asyncio
import enum
import hmac
import itertools
import json
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from amqtt.adapters import StreamReaderAdapter, StreamWriterAdapter
from amqtt.plugins.base import BaseAuthPlugin
from amqtt.session import Session
from cryptography import x509

from rmbench.broker import mqtt

LISTENER = "default"  # the amqtt listener (type "external") every gated connection joins
BENCH_USER = "rmbench-bench"
HANDSHAKE_TIMEOUT = 10.0
CONNECT_TIMEOUT = 10.0  # from the end of the TLS handshake to a complete CONNECT
CLOSE_TIMEOUT = 5.0
# AWS IoT Core's largest message payload is 128 KB; a packet adds its topic and headers.
MAX_PACKET = 128 * 1024 + 1024


def common_name(der: bytes) -> str | None:
    """The subject CN of a DER certificate, or None when it has none."""
    cert = x509.load_der_x509_certificate(der)
    names = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    return str(names[0].value) if names else None


class EventLog:
    """events.jsonl: one JSON object per line, written and flushed as each thing happens, so a
    test can read it while the broker runs (rmbench.broker.harness parses it)."""

    def __init__(self, path: Path) -> None:
        self._file: IO[str] = path.open("a", encoding="utf-8")

    def write(self, event: str, **fields: Any) -> None:
        record = {"time": round(time.time(), 6), "event": event, **fields}
        self._file.write(json.dumps(record, separators=(",", ":")) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


class _Verdict(enum.Enum):
    FORWARD = 1  # amqtt handles it
    ANSWERED = 2  # the gate took it (Basic Ingest) or drops it (QoS 2), amqtt never sees it
    REFUSED = 3  # not authorized: the connection is closed


@dataclass
class Gate:
    """Vets each connection and hands it to `broker` (an amqtt Broker, started)."""

    broker: Any  # amqtt.broker.Broker (the package has no type information)
    tls: ssl.SSLContext
    log: EventLog
    bench_password: str
    max_packet: int = MAX_PACKET
    # (node id, payload) -> a JSON-able outcome; run in a worker thread for each mapping request
    # a node publishes. Its exceptions are recorded ("error"), never raised.
    mapping_sink: Callable[[str, bytes], dict[str, Any]] | None = None
    _handovers: set[asyncio.Task[None]] = field(default_factory=set)
    _serial: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _open: dict[asyncio.StreamWriter, asyncio.Task[Any]] = field(default_factory=dict)
    # The connection relaying each client id, and an event set when its relay has ended.
    _live: dict[str, tuple[asyncio.StreamWriter, asyncio.Event]] = field(default_factory=dict)

    async def serve_node(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """A board's connection: TLS with a client certificate from the claim CA, then MQTT as
        the node its certificate names."""
        conn, peer = next(self._serial), _peer(writer)
        self._track(writer)
        try:
            try:
                await writer.start_tls(self.tls, ssl_handshake_timeout=HANDSHAKE_TIMEOUT)
            except (OSError, TimeoutError) as e:  # ssl.SSLError is an OSError
                self.log.write("tls_refused", conn=conn, peer=peer, reason=_reason(e))
                return
            tls_object = writer.get_extra_info("ssl_object")
            der = tls_object.getpeercert(binary_form=True) if tls_object else None
            cn = common_name(der) if der else None
            first = await self._read_connect(reader, conn, peer)
            if first is None:
                return
            packet, connect = first
            refusal = mqtt.identity_refusal(connect.client_id, cn)
            self.log.write(
                "connect",
                conn=conn,
                listener="node",
                peer=peer,
                cn=cn,
                client_id=connect.client_id,
                clean_session=connect.clean_session,
                keepalive=connect.keepalive,
                tls=tls_object.version() if tls_object else None,
                accepted=refusal is None,
                reason=refusal,
            )
            if refusal is not None:
                return  # closed without a CONNACK (AWS IoT: AUTH_ERROR)
            await self._relay(reader, writer, packet, connect.client_id, conn, node_id=cn)
        finally:
            await self._close(writer)

    async def serve_bench(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """A bench client's connection (plain MQTT on loopback): user BENCH_USER with the
        broker's bench password, any topic (it stands in for the cloud side)."""
        conn, peer = next(self._serial), _peer(writer)
        self._track(writer)
        try:
            first = await self._read_connect(reader, conn, peer)
            if first is None:
                return
            packet, connect = first
            password = self.bench_password.encode()
            ok = connect.username == BENCH_USER and hmac.compare_digest(
                connect.password or b"", password
            )
            self.log.write(
                "connect",
                conn=conn,
                listener="bench",
                peer=peer,
                cn=None,
                client_id=connect.client_id,
                clean_session=connect.clean_session,
                keepalive=connect.keepalive,
                tls=None,
                accepted=ok,
                reason=None if ok else "wrong bench user or password",
            )
            if ok:
                await self._relay(reader, writer, packet, connect.client_id, conn, node_id=None)
        finally:
            await self._close(writer)

    async def close_all(self) -> None:
        """Drop every open connection and wait for their handlers (the broker is stopping)."""
        tasks = list(self._open.values())
        for writer in list(self._open):
            writer.transport.abort()
        if tasks:
            await asyncio.wait(tasks, timeout=CLOSE_TIMEOUT)
        if self._handovers:  # mapping requests already taken are handed over still
            await asyncio.wait(list(self._handovers), timeout=CLOSE_TIMEOUT)

    def _track(self, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None  # asyncio.start_server runs each handler as a task
        self._open[writer] = task

    async def _take_over(
        self, client_id: str, conn: int, writer: asyncio.StreamWriter
    ) -> asyncio.Event:
        # AWS IoT: "When a client connects using a client ID that another client is using, the
        # new client connection is accepted and the previously connected client is
        # disconnected." amqtt would leave the old connection open when the new one asks for a
        # clean session, so the gate closes it, and lets amqtt finish with it first.
        ended = asyncio.Event()
        old = self._live.get(client_id)
        self._live[client_id] = (writer, ended)
        if old is not None:
            old_writer, old_ended = old
            self.log.write("takeover", conn=conn, client_id=client_id)
            old_writer.transport.abort()
            try:
                await asyncio.wait_for(old_ended.wait(), CLOSE_TIMEOUT)
            except TimeoutError:
                pass
        return ended

    async def _read_connect(
        self, reader: asyncio.StreamReader, conn: int, peer: str
    ) -> tuple[mqtt.Packet, mqtt.Connect] | None:
        # The first packet must be a CONNECT (3.1.0-1), within CONNECT_TIMEOUT.
        try:
            packet = await asyncio.wait_for(
                mqtt.read_packet(reader, self.max_packet), CONNECT_TIMEOUT
            )
            if packet is None:
                raise mqtt.ProtocolError("connection closed before CONNECT")
            if packet.type != mqtt.CONNECT:
                raise mqtt.ProtocolError(f"first packet is of type {packet.type}, not CONNECT")
            return packet, mqtt.parse_connect(packet.body)
        except (mqtt.ProtocolError, asyncio.IncompleteReadError, TimeoutError, OSError) as e:
            self.log.write("closed", conn=conn, peer=peer, client_id=None, reason=_reason(e))
            return None

    async def _relay(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        connect: mqtt.Packet,
        client_id: str,
        conn: int,
        node_id: str | None,
    ) -> None:
        ended = await self._take_over(client_id, conn, writer)
        # amqtt reads what the gate lets through from `inbox` and writes to the client directly.
        inbox = asyncio.StreamReader()
        inbox.feed_data(connect.raw())

        async def pump() -> str:
            reason = "connection lost"
            try:
                while True:
                    packet = await mqtt.read_packet(reader, self.max_packet)
                    if packet is None:
                        break
                    verdict, why = self._vet(packet, client_id, conn, node_id, writer)
                    if verdict is _Verdict.REFUSED:
                        reason = why
                        break
                    if verdict is _Verdict.FORWARD:
                        inbox.feed_data(packet.raw())
                    if packet.type == mqtt.DISCONNECT:
                        reason = "client disconnected"
            except mqtt.ProtocolError as e:
                reason = f"malformed packet: {e}"
            except (asyncio.IncompleteReadError, OSError) as e:
                reason = f"connection lost: {_reason(e)}"
            finally:
                inbox.feed_eof()
            return reason

        pumping = asyncio.create_task(pump())
        try:
            await self.broker.external_connected(
                StreamReaderAdapter(inbox), StreamWriterAdapter(writer), LISTENER
            )
        finally:
            if not pumping.done():
                # amqtt ended the session (keep-alive, protocol error, takeover by a newer
                # connection of the same client id): close it under the pump too.
                writer.transport.abort()
            try:
                reason = await asyncio.wait_for(pumping, CLOSE_TIMEOUT)
            except TimeoutError:
                reason = "closed by the broker"
            self.log.write("closed", conn=conn, client_id=client_id, reason=reason)
            if self._live.get(client_id, (None, None))[0] is writer:
                del self._live[client_id]
            ended.set()

    def _vet(
        self,
        packet: mqtt.Packet,
        client_id: str,
        conn: int,
        node_id: str | None,
        writer: asyncio.StreamWriter,
    ) -> tuple[_Verdict, str]:
        if packet.type == mqtt.PUBLISH:
            pub = mqtt.parse_publish(packet.flags, packet.body)
            refusal = _publish_refusal(pub, node_id)
            rule = mqtt.ingest_rule(pub.topic)
            self.log.write(
                "publish",
                conn=conn,
                client_id=client_id,
                topic=pub.topic,
                payload=pub.payload.hex(),
                qos=pub.qos,
                retain=pub.retain,
                dup=pub.dup,
                packet_id=pub.packet_id,
                ingest=rule,
                allowed=refusal is None,
                reason=refusal,
            )
            if refusal is not None:
                return _Verdict.REFUSED, refusal
            if pub.qos == 2:
                return _Verdict.ANSWERED, "QoS 2 is not supported"  # no PUBACK, as AWS IoT
            if node_id and self.mapping_sink and mqtt.is_user_mapping(node_id, pub.topic):
                self._hand_over(conn, node_id, pub.payload)
            if rule is not None:
                # Basic Ingest: the rules engine takes the message, no subscriber sees it.
                if pub.qos == 1 and pub.packet_id is not None:
                    writer.write(mqtt.puback(pub.packet_id))
                return _Verdict.ANSWERED, "basic ingest"
            return _Verdict.FORWARD, ""
        if packet.type == mqtt.SUBSCRIBE:
            packet_id, filters = mqtt.parse_subscribe(packet.body)
            refused = [
                f for f, _ in filters if node_id and not mqtt.node_may_subscribe(node_id, f)
            ]
            refusal = f"not authorized to subscribe to {refused[0]}" if refused else None
            self.log.write(
                "subscribe",
                conn=conn,
                client_id=client_id,
                packet_id=packet_id,
                filters=[[f, q] for f, q in filters],
                allowed=refusal is None,
                reason=refusal,
            )
            if refusal is not None:
                return _Verdict.REFUSED, refusal
            if node_id is not None and any(q > 1 for _, q in filters):
                return _Verdict.ANSWERED, "QoS 2 is not supported"  # no SUBACK, as AWS IoT
            return _Verdict.FORWARD, ""
        if packet.type == mqtt.CONNECT:
            return _Verdict.REFUSED, "a second CONNECT"  # a protocol violation (3.1.0-2)
        return _Verdict.FORWARD, ""

    def _hand_over(self, conn: int, node_id: str, payload: bytes) -> None:
        # The mapping request to the service, off the event loop (SQLite), recorded when done.
        sink = self.mapping_sink
        assert sink is not None

        async def run() -> None:
            try:
                outcome = await asyncio.to_thread(sink, node_id, payload)
            except Exception as e:  # the service refused it (malformed, unknown node): noted
                outcome = {"error": f"{type(e).__name__}: {e}"}
            self.log.write("mapping", conn=conn, client_id=node_id, **outcome)

        task = asyncio.get_running_loop().create_task(run())
        self._handovers.add(task)
        task.add_done_callback(self._handovers.discard)

    async def _close(self, writer: asyncio.StreamWriter) -> None:
        self._open.pop(writer, None)
        writer.close()
        try:
            await asyncio.wait_for(writer.wait_closed(), CLOSE_TIMEOUT)
        except (OSError, TimeoutError):
            writer.transport.abort()
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise  # this handler is being cancelled
            # amqtt cancels its reader task while that waits in writer.wait_closed(), which
            # cancels the stream's one shared close future (handler.py `stop`): the stream is
            # closing anyway.
            writer.transport.abort()


def _publish_refusal(pub: mqtt.Publish, node_id: str | None) -> str | None:
    if node_id is None:
        return None  # a bench client
    if not mqtt.node_may_publish(node_id, pub.topic):
        return f"not authorized to publish to {pub.topic}"
    if pub.retain:
        return "not authorized to retain a message"
    return None


def _peer(writer: asyncio.StreamWriter) -> str:
    info = writer.get_extra_info("peername")
    return f"{info[0]}:{info[1]}" if info else "?"


def _reason(e: BaseException) -> str:
    if isinstance(e, ssl.SSLCertVerificationError):
        return f"certificate verify failed: {e.verify_message}"
    if isinstance(e, ssl.SSLError):
        return e.reason or str(e)
    if isinstance(e, asyncio.IncompleteReadError):
        return "connection closed inside a packet"
    if isinstance(e, TimeoutError):
        return "timed out"
    return str(e) or type(e).__name__


class GateAuthPlugin(BaseAuthPlugin):  # type: ignore[misc]  # amqtt has no type information
    """amqtt's authentication step. Only connections the gate accepted reach amqtt; this checks
    once more that a node's client id is its certificate's CN, and a bench client's password."""

    @dataclass
    class Config:
        bench_password: str = ""

    async def authenticate(self, *, session: Session) -> bool:
        tls_object = session.ssl_object
        if tls_object is None:  # the bench listener
            password: str = self.config.bench_password
            return bool(password) and (session.username, session.password) == (
                BENCH_USER,
                password,
            )
        der = tls_object.getpeercert(binary_form=True)
        if der is None:
            return False
        return mqtt.identity_refusal(session.client_id, common_name(der)) is None
