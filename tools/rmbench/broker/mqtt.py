"""MQTT 3.1.1 control packets as the broker's gate reads them (framing, CONNECT, PUBLISH,
SUBSCRIBE), the two replies it writes itself, and the topic policy of a node.

Section numbers are those of the OASIS standard "MQTT Version 3.1.1" (29 October 2014).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

# Control packet types (2.2.1).
CONNECT = 1
CONNACK = 2
PUBLISH = 3
PUBACK = 4
SUBSCRIBE = 8
UNSUBSCRIBE = 10
PINGREQ = 12
DISCONNECT = 14

# No wildcard and no level separator may appear in a node id used as a topic level.
_TOPIC_SPECIALS = ("/", "+", "#")


class ProtocolError(ValueError):
    """A packet that does not parse as MQTT 3.1.1 says it should."""


@dataclass(frozen=True)
class Packet:
    """One control packet: type, the fixed header's flags and the rest (variable header and
    payload)."""

    type: int
    flags: int
    body: bytes

    def raw(self) -> bytes:
        """The packet as it was on the wire."""
        return bytes([self.type << 4 | self.flags]) + encode_length(len(self.body)) + self.body


def encode_length(n: int) -> bytes:
    """Remaining Length (2.2.3): 7 bits a byte, least significant first, top bit = more."""
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


async def read_packet(reader: asyncio.StreamReader, max_size: int) -> Packet | None:
    """The next packet from `reader`, or None at a clean end of stream (between packets).

    Raises:
        ProtocolError: a Remaining Length of more than 4 bytes, or one above max_size.
        asyncio.IncompleteReadError: the stream ended inside a packet.
    """
    first = await reader.read(1)
    if not first:
        return None
    length, shift = 0, 0
    for _ in range(4):
        byte = (await reader.readexactly(1))[0]
        length |= (byte & 0x7F) << shift
        if not byte & 0x80:
            break
        shift += 7
    else:
        raise ProtocolError("Remaining Length longer than 4 bytes")
    if length > max_size:
        raise ProtocolError(f"packet of {length} bytes, more than the {max_size} allowed")
    body = await reader.readexactly(length) if length else b""
    return Packet(first[0] >> 4, first[0] & 0x0F, body)


class _Cursor:
    # Reads the fields of a packet body in order, refusing to run past its end.
    def __init__(self, data: bytes, what: str) -> None:
        self.data, self.pos, self.what = data, 0, what

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise ProtocolError(
                f"{self.what}: {n} bytes wanted at offset {self.pos}, "
                f"{len(self.data) - self.pos} left"
            )
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        return int.from_bytes(self.take(2), "big")

    def binary(self) -> bytes:  # two-byte length, then the bytes (1.5.3, 3.1.3.5)
        return self.take(self.u16())

    def string(self) -> str:
        raw = self.binary()
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise ProtocolError(f"{self.what}: a string is not UTF-8 ({e.reason})") from e

    def rest(self) -> bytes:
        out = self.data[self.pos :]
        self.pos = len(self.data)
        return out


@dataclass(frozen=True)
class Connect:
    """What the gate needs from a CONNECT (3.1)."""

    protocol: str
    level: int
    clean_session: bool
    keepalive: int
    client_id: str
    username: str | None
    password: bytes | None


def parse_connect(body: bytes) -> Connect:
    """The fields of a CONNECT body, in their order (3.1.2, 3.1.3)."""
    c = _Cursor(body, "CONNECT")
    protocol, level, flags, keepalive = c.string(), c.u8(), c.u8(), c.u16()
    client_id = c.string()
    if flags & 0x04:  # Will Flag: Will Topic, then Will Message
        c.string()
        c.binary()
    username = c.string() if flags & 0x80 else None
    password = c.binary() if flags & 0x40 else None
    return Connect(protocol, level, bool(flags & 0x02), keepalive, client_id, username, password)


@dataclass(frozen=True)
class Publish:
    """A PUBLISH (3.3): fixed header flags, topic, packet id (QoS > 0) and payload."""

    topic: str
    qos: int
    retain: bool
    dup: bool
    packet_id: int | None
    payload: bytes


def parse_publish(flags: int, body: bytes) -> Publish:
    qos = flags >> 1 & 3
    if qos == 3:
        raise ProtocolError("PUBLISH with QoS 3")  # 3.3.1.2
    c = _Cursor(body, "PUBLISH")
    topic = c.string()
    packet_id = c.u16() if qos else None
    return Publish(topic, qos, bool(flags & 1), bool(flags & 8), packet_id, c.rest())


def parse_subscribe(body: bytes) -> tuple[int, list[tuple[str, int]]]:
    """Packet id and (topic filter, requested QoS) pairs of a SUBSCRIBE (3.8)."""
    c = _Cursor(body, "SUBSCRIBE")
    packet_id = c.u16()
    filters: list[tuple[str, int]] = []
    while c.pos < len(body):
        filters.append((c.string(), c.u8()))
    if not filters:
        raise ProtocolError("SUBSCRIBE without a topic filter")  # 3.8.3-3
    return packet_id, filters


def puback(packet_id: int) -> bytes:
    """PUBACK (3.4)."""
    return bytes([PUBACK << 4, 2]) + packet_id.to_bytes(2, "big")


# --- what a node may do (modelled on ESP RainMaker's use of AWS IoT) -----------------------------
# A node's topics are node/<node_id>/<suffix> (esp-rainmaker components/esp_rainmaker/src/core/
# esp_rmaker_mqtt_topics.h); with CONFIG_ESP_RMAKER_MQTT_USE_BASIC_INGEST_TOPICS (default y) it
# publishes to AWS IoT's Basic Ingest form $aws/rules/<rule>/node/<node_id>/<suffix> instead
# (esp_rmaker_mqtt.c, esp_rmaker_create_mqtt_topic). Basic Ingest topics go to the rules engine
# only: nobody can subscribe to them.


def identity_refusal(client_id: str, cn: str | None) -> str | None:
    """Why a client with this certificate CN may not use this client id, or None if it may."""
    if cn is None:
        return "the client certificate has no common name"
    if client_id != cn:
        return f"client id {client_id!r} is not the certificate's CN {cn!r}"
    if not client_id or any(ch in client_id for ch in _TOPIC_SPECIALS):
        return f"client id {client_id!r} cannot name a node's topics"
    return None


def ingest_rule(topic: str) -> str | None:
    """The rule name of a Basic Ingest topic ($aws/rules/<rule>/...), else None."""
    parts = topic.split("/", 3)
    if len(parts) == 4 and parts[0] == "$aws" and parts[1] == "rules" and parts[2]:
        return parts[2]
    return None


def node_may_publish(node_id: str, topic: str) -> bool:
    """Whether node `node_id` may publish to `topic`: its own node/<id>/<suffix>, directly or
    through a Basic Ingest rule."""
    if ingest_rule(topic) is not None:
        topic = topic.split("/", 3)[3]
    prefix = f"node/{node_id}/"
    return topic.startswith(prefix) and len(topic) > len(prefix)


def node_may_subscribe(node_id: str, topic_filter: str) -> bool:
    """Whether node `node_id` may subscribe to `topic_filter`: filters under its own
    node/<id>/ only (a wildcard may not stand for the node id)."""
    prefix = f"node/{node_id}/"
    return topic_filter.startswith(prefix) and len(topic_filter) > len(prefix)


# The Basic Ingest rule ESP RainMaker's firmware names for the mapping request (esp-rainmaker
# v1.16.0 components/esp_rainmaker/src/core/esp_rmaker_mqtt_topics.h, USER_MAPPING_TOPIC_RULE).
USER_MAPPING_RULE = "esp_user_node_mapping"


def is_user_mapping(node_id: str, topic: str) -> bool:
    """Whether `topic` is node `node_id`'s user-node mapping request: node/<id>/user/mapping,
    directly or through the firmware's Basic Ingest rule."""
    rule = ingest_rule(topic)
    if rule is not None:
        if rule != USER_MAPPING_RULE:
            return False
        topic = topic.split("/", 3)[3]
    return topic == f"node/{node_id}/user/mapping"
