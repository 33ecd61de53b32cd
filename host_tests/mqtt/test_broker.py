"""The bench broker, seen from host MQTT clients (paho-mqtt): mutual TLS with the claiming
service's CAs, one identity per node, a node's own topics only, restarts on the same port."""

from __future__ import annotations

import datetime
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from rmbench import certs
from rmbench.broker.harness import RunningBroker
from rmbench.broker.identities import BROKER_CERT
from rmbench.service import ca

from .conftest import IdentityFactory
from .support import HostClient


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _rogue_claim_ca() -> ca.Authority:
    # Another CA under the claim CA's very name: only its key differs.
    key = ec.generate_private_key(ec.SECP256R1())
    extensions = [
        certs.ca_constraints(path_length=0),
        certs.key_usage(certificate_signing=True),
        certs.subject_key_id(key.public_key()),
    ]
    start, end = _now() - datetime.timedelta(hours=1), _now() + datetime.timedelta(days=30)
    cert = certs.self_signed(key, ca.CLAIM_CA_NAME, start, end, extensions)
    return ca.Authority(cert, key)


def _connect_event(broker: RunningBroker, client_id: str) -> dict[str, object]:
    return broker.wait_for(
        lambda e: e["event"] == "connect" and e["client_id"] == client_id, f"CONNECT {client_id}"
    )


def test_server_certificate_is_the_services_and_names_localhost(broker: RunningBroker) -> None:
    # Checked by openssl, not by our code: chain to the service's server CA, and the names.
    cert_file = broker.state_dir / BROKER_CERT
    out = subprocess.run(
        ["openssl", "verify", "-CAfile", str(broker.server_ca_file), str(cert_file)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0 and out.stdout.strip().endswith(": OK"), out.stdout + out.stderr
    for name in ("localhost", "127.0.0.1"):
        flag = "-verify_ip" if name[0].isdigit() else "-verify_hostname"
        out = subprocess.run(
            ["openssl", "verify", "-CAfile", str(broker.server_ca_file), flag, name,
             str(cert_file)],
            capture_output=True,
            text=True,
            check=False,
        )  # fmt: skip
        assert out.returncode == 0, (name, out.stdout + out.stderr)
    cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
    assert cert.issuer == ca.SERVER_CA_NAME


def test_node_connects_publishes_and_receives_on_its_topics(
    broker: RunningBroker, identity: IdentityFactory, tmp_path: Path
) -> None:
    node = identity("a")
    cloud = HostClient.bench(broker, "cloud-a")
    assert cloud.connect(broker.bench_port, "127.0.0.1") == ("connack", "Success")
    assert cloud.subscribe(f"node/{node.cn}/#") == ("suback", ["Granted QoS 1"])
    client = HostClient.node(broker, node, tmp_path, node.cn)
    try:
        assert client.connect(broker.port) == ("connack", "Success")
        assert client.subscribe(f"node/{node.cn}/params/remote") == ("suback", ["Granted QoS 1"])
        mapping = b'{"node_id":"%s","user_id":"u1","secret_key":"s1","reset":true}' % (
            node.cn.encode()
        )
        assert client.publish(f"node/{node.cn}/user/mapping", mapping)[0] == "puback"
        assert cloud.next("message")[1:] == (f"node/{node.cn}/user/mapping", mapping)
        # cloud -> node
        cloud.publish(f"node/{node.cn}/params/remote", b'{"Light":{"Power":true}}')
        assert client.next("message")[1:] == (
            f"node/{node.cn}/params/remote",
            b'{"Light":{"Power":true}}',
        )
    finally:
        client.close()
        cloud.close()
    sent = broker.published(topic=f"node/{node.cn}/user/mapping")
    assert [(p.client_id, p.payload, p.qos, p.dup) for p in sent] == [(node.cn, mapping, 1, False)]
    connect = _connect_event(broker, node.cn)
    assert connect["accepted"] is True and connect["cn"] == node.cn


def test_client_id_must_be_the_certificates_cn(
    broker: RunningBroker, identity: IdentityFactory, tmp_path: Path
) -> None:
    victim, intruder = identity("victim"), identity("intruder")
    v = HostClient.node(broker, victim, tmp_path, victim.cn)
    assert v.connect(broker.port) == ("connack", "Success")
    assert v.subscribe(f"node/{victim.cn}/params/remote")[0] == "suback"
    # The intruder's certificate is valid, but it claims the victim's client id.
    i = HostClient.node(broker, intruder, tmp_path, victim.cn)
    try:
        assert i.connect(broker.port)[0] == "closed"  # no CONNACK at all
        refused = broker.wait_for(
            lambda e: e["event"] == "connect" and e["cn"] == intruder.cn, "the intruder's CONNECT"
        )
        assert refused["accepted"] is False
        assert refused["reason"] == (
            f"client id {victim.cn!r} is not the certificate's CN {intruder.cn!r}"
        )
        # The victim's session was not taken over: it still receives its messages.
        cloud = HostClient.bench(broker, "cloud-victim")
        assert cloud.connect(broker.bench_port, "127.0.0.1")[0] == "connack"
        cloud.publish(f"node/{victim.cn}/params/remote", b"still yours")
        assert v.next("message")[1:] == (f"node/{victim.cn}/params/remote", b"still yours")
        cloud.close()
    finally:
        i.close()
        v.close()


def test_a_new_connection_of_a_node_drops_its_old_one(
    broker: RunningBroker, identity: IdentityFactory, tmp_path: Path
) -> None:
    # As AWS IoT: the newer connection with a client id is accepted, the older one closed
    # (amqtt itself would keep both open when the new one asks for a clean session).
    node = identity("twice")
    old = HostClient.node(broker, node, tmp_path, node.cn)
    new = HostClient.node(broker, node, tmp_path, node.cn)
    try:
        assert old.connect(broker.port) == ("connack", "Success")
        assert old.subscribe(f"node/{node.cn}/params/remote")[0] == "suback"
        assert new.connect(broker.port) == ("connack", "Success")
        assert old.next("closed")[0] == "closed"
        assert new.subscribe(f"node/{node.cn}/params/remote")[0] == "suback"
        cloud = HostClient.bench(broker, f"cloud-{node.cn}")
        assert cloud.connect(broker.bench_port, "127.0.0.1")[0] == "connack"
        cloud.publish(f"node/{node.cn}/params/remote", b"to the new one")
        assert new.next("message")[1:] == (f"node/{node.cn}/params/remote", b"to the new one")
        cloud.close()
    finally:
        new.close()
        old.close()
    assert old.messages == []
    (takeover,) = [e for e in broker.events("takeover") if e["client_id"] == node.cn]
    closed = [e for e in broker.events("closed") if e.get("client_id") == node.cn]
    assert closed[0]["time"] >= takeover["time"]


@pytest.mark.parametrize(
    "topic",
    [
        "node/{other}/params/local",
        "node/{other}/user/mapping",
        "$aws/rules/esp_user_node_mapping/node/{other}/user/mapping",
        "nodes/{me}/params/local",
        "node/{me}",
    ],
)
def test_node_cannot_publish_outside_its_topics(
    broker: RunningBroker, identity: IdentityFactory, tmp_path: Path, topic: str
) -> None:
    me, other = identity("me"), identity("other")
    topic = topic.format(me=me.cn, other=other.cn)
    watcher = HostClient.bench(broker, f"watch-{me.cn}")
    assert watcher.connect(broker.bench_port, "127.0.0.1")[0] == "connack"
    watcher.subscribe("#")
    client = HostClient.node(broker, me, tmp_path, me.cn)
    try:
        assert client.connect(broker.port) == ("connack", "Success")
        # AWS IoT disconnects a client that publishes where it may not; no PUBACK.
        assert client.publish(topic, b"forged")[0] == "closed"
        # A message it may send, from a new connection, is delivered: the first one was not.
        again = HostClient.node(broker, me, tmp_path, me.cn)
        assert again.connect(broker.port)[0] == "connack"
        assert again.publish(f"node/{me.cn}/params/local", b"mine")[0] == "puback"
        assert watcher.next("message")[1:] == (f"node/{me.cn}/params/local", b"mine")
        again.close()
    finally:
        client.close()
        watcher.close()
    assert (topic, b"forged") not in watcher.messages
    refused = broker.published(topic=topic, allowed=False)
    assert [(p.client_id, p.payload) for p in refused] == [(me.cn, b"forged")]


@pytest.mark.parametrize(
    "topic_filter", ["node/{other}/params/remote", "node/+/params/remote", "#", "node/#"]
)
def test_node_cannot_subscribe_outside_its_topics(
    broker: RunningBroker, identity: IdentityFactory, tmp_path: Path, topic_filter: str
) -> None:
    me, other = identity("me"), identity("other")
    topic_filter = topic_filter.format(other=other.cn)
    client = HostClient.node(broker, me, tmp_path, me.cn)
    try:
        assert client.connect(broker.port) == ("connack", "Success")
        assert client.subscribe(topic_filter)[0] == "closed"  # no SUBACK
    finally:
        client.close()
    event = broker.wait_for(
        lambda e: e["event"] == "subscribe" and e["client_id"] == me.cn, "the SUBSCRIBE"
    )
    assert event["allowed"] is False
    assert event["reason"] == f"not authorized to subscribe to {topic_filter}"


def test_certificate_from_another_ca_is_refused(
    broker: RunningBroker, identity: IdentityFactory, tmp_path: Path
) -> None:
    rogue = identity("rogue", issuer=_rogue_claim_ca())
    client = HostClient.node(broker, rogue, tmp_path, rogue.cn)
    mark = broker.mark()
    try:
        assert client.connect(broker.port)[0] in ("closed", "error")
    finally:
        client.close()
    event = broker.wait_for(
        lambda e: e["event"] == "tls_refused", "a refused handshake", since=mark
    )
    assert event["reason"] == "certificate verify failed: unable to get local issuer certificate"
    assert not [e for e in broker.events("connect") if e["client_id"] == rogue.cn]


def test_expired_certificate_is_refused(
    broker: RunningBroker, identity: IdentityFactory, tmp_path: Path
) -> None:
    expired = identity(
        "expired",
        not_before=_now() - datetime.timedelta(days=30),
        not_after=_now() - datetime.timedelta(days=1),
    )
    client = HostClient.node(broker, expired, tmp_path, expired.cn)
    mark = broker.mark()
    try:
        assert client.connect(broker.port)[0] in ("closed", "error")
    finally:
        client.close()
    event = broker.wait_for(
        lambda e: e["event"] == "tls_refused", "a refused handshake", since=mark
    )
    assert event["reason"] == "certificate verify failed: certificate has expired"
    assert not [e for e in broker.events("connect") if e["client_id"] == expired.cn]


def test_client_without_certificate_is_refused(broker: RunningBroker, tmp_path: Path) -> None:
    c = HostClient.bench(broker, "anonymous")  # no certificate, but TLS to the boards' port
    c.client.tls_set(ca_certs=str(broker.server_ca_file))
    mark = broker.mark()
    try:
        assert c.connect(broker.port)[0] in ("closed", "error")
    finally:
        c.close()
    event = broker.wait_for(
        lambda e: e["event"] == "tls_refused", "a refused handshake", since=mark
    )
    assert event["reason"] == "PEER_DID_NOT_RETURN_A_CERTIFICATE"


def test_bench_listener_wants_its_password(broker: RunningBroker) -> None:
    c = HostClient.bench(broker, "guesser", password="guess")
    try:
        assert c.connect(broker.bench_port, "127.0.0.1")[0] == "closed"
    finally:
        c.close()
    event = _connect_event(broker, "guesser")
    assert event["accepted"] is False and event["listener"] == "bench"


def test_basic_ingest_is_acknowledged_but_reaches_no_subscriber(
    broker: RunningBroker, identity: IdentityFactory, tmp_path: Path
) -> None:
    node = identity("ingest")
    watcher = HostClient.bench(broker, f"watch-{node.cn}")
    assert watcher.connect(broker.bench_port, "127.0.0.1")[0] == "connack"
    watcher.subscribe("#")
    client = HostClient.node(broker, node, tmp_path, node.cn)
    topic = f"$aws/rules/esp_user_node_mapping/node/{node.cn}/user/mapping"
    try:
        assert client.connect(broker.port)[0] == "connack"
        assert client.publish(topic, b"{}")[0] == "puback"
        # The connection stays usable: a plain topic goes through and is delivered.
        assert client.publish(f"node/{node.cn}/params/local", b"{}")[0] == "puback"
        assert watcher.next("message")[1] == f"node/{node.cn}/params/local"
    finally:
        client.close()
        watcher.close()
    assert [t for t, _ in watcher.messages] == [f"node/{node.cn}/params/local"]
    (sent,) = broker.published(topic=topic)
    assert sent.ingest == "esp_user_node_mapping" and sent.client_id == node.cn


def test_retained_message_is_refused(
    broker: RunningBroker, identity: IdentityFactory, tmp_path: Path
) -> None:
    node = identity("retain")
    client = HostClient.node(broker, node, tmp_path, node.cn)
    try:
        assert client.connect(broker.port)[0] == "connack"
        client.client.publish(f"node/{node.cn}/params/local", b"{}", qos=1, retain=True)
        assert client.next("puback", "closed")[0] == "closed"
    finally:
        client.close()
    (event,) = [e for e in broker.events("publish") if e["client_id"] == node.cn]
    assert event["reason"] == "not authorized to retain a message"


def test_restart_on_the_same_port_drops_and_takes_connections(
    mqtt_broker: RunningBroker, tmp_path: Path
) -> None:
    from rmbench.broker.identities import client_identity

    node = client_identity(mqtt_broker.claim_ca, "restartnode")
    first = HostClient.node(mqtt_broker, node, tmp_path, node.cn)
    assert first.connect(mqtt_broker.port)[0] == "connack"
    port = mqtt_broker.port
    mqtt_broker.restart()
    assert mqtt_broker.port == port
    assert first.next("closed")[0] == "closed"
    first.close()
    second = HostClient.node(mqtt_broker, node, tmp_path, node.cn)
    try:
        assert second.connect(port) == ("connack", "Success")
        assert second.publish(f"node/{node.cn}/params/local", b"after")[0] == "puback"
    finally:
        second.close()
    starts = mqtt_broker.events("start")
    assert [s["port"] for s in starts] == [port, port]
    assert [p.payload for p in mqtt_broker.published(client_id=node.cn)] == [b"after"]
