"""The board double of the frozen umqtt.simple (tools/boardsim/umqtt/simple.py) on the
MicroPython Unix port: its API per firmware release, the exact bytes it sends (expected values
written from the MQTT 3.1.1 standard), and real mutual TLS against the bench broker."""

from __future__ import annotations

import datetime
import json
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest
from rmbench import LIB_DIR
from rmbench.boardsim import SIM_DIR
from rmbench.broker.harness import RunningBroker, running_broker
from rmbench.micropython import Interpreter, compile_package
from rmbench.service.harness import RunningService

from .conftest import BoardFactory, IdentityFactory
from .support import CONTEXT, PRELUDE, HostClient, device_args, run_board

# A socket module and TLS context whose stream records every call and serves canned replies.
FAKE = """
import umqtt.simple as m
class Stream:
    def __init__(self, replies):
        self.inp = bytes.fromhex(replies)
        self.calls = []
        self.blocking = True
    def settimeout(self, t):
        self.calls.append(["settimeout", t])
    def connect(self, addr):
        self.calls.append(["connect", addr[1]])
    def setblocking(self, flag):
        self.calls.append(["setblocking", flag])
        self.blocking = flag
    def write(self, buf, n=None):
        data = buf.encode() if isinstance(buf, str) else bytes(buf)  # a str is a buffer too
        data = data if n is None else data[:n]
        self.calls.append(["write", data.hex()])
        return len(data)
    def read(self, n):
        if not self.inp and not self.blocking:
            return None
        data, self.inp = self.inp[:n], self.inp[n:]
        self.calls.append(["read", n, data.hex()])
        return data
    def close(self):
        self.calls.append(["close"])
class Sockets:
    def __init__(self, replies):
        self.stream = Stream(replies)
    def socket(self):
        return self.stream
    def getaddrinfo(self, host, port):
        self.stream.calls.append(["getaddrinfo", host, port])
        return [(2, 1, 0, "", ("127.0.0.1", port))]
class Context:
    def wrap_socket(self, sock, server_hostname=None):
        sock.calls.append(["wrap_socket", server_hostname])
        return sock
def fake(replies):
    m.socket = Sockets(replies)
    return m.socket.stream
def written(stream):
    return "".join(c[1] for c in stream.calls if c[0] == "write")
"""


def _hex(*parts: str | bytes) -> str:
    return "".join(p.hex() if isinstance(p, bytes) else p.replace(" ", "") for p in parts)


RELEASES = [("1.23", "1.4.0"), ("1.25", "1.6.0"), ("1.28", "1.7.0"), ("preview", "1.8.0")]


@pytest.mark.parametrize(("firmware", "version"), RELEASES)
def test_api_of_each_release(
    mpy: Interpreter, new_board: BoardFactory, firmware: str, version: str
) -> None:
    code = (
        FAKE
        + """
from umqtt.simple import MQTTClient
res = {"version": m.__version__, "unsubscribe": hasattr(MQTTClient, "unsubscribe")}
try:
    MQTTClient("n", "h", ssl_params={})
    res["ssl_params"] = True
except TypeError:
    res["ssl_params"] = False
s = fake("20020000")
c = MQTTClient("n", "h", ssl=Context())
try:
    c.connect(timeout=5)
    res["timeout"] = [x for x in s.calls if x[0] == "settimeout"]
except TypeError:
    res["timeout"] = None
# ssl=True: 1.4.0 calls True.wrap_socket (1.6.0+ takes the frozen ssl module's unverified
# wrap_socket, which the Unix port's path here does not have).
if m.__version__ == "1.4.0":
    fake("20020000")
    try:
        MQTTClient("n", "h", ssl=True).connect()
    except Exception as e:
        res["ssl_true"] = err(e)
out(res)
"""
    )
    got = run_board(new_board("api", firmware=firmware), mpy, code)
    new = version != "1.4.0"
    assert got["version"] == version
    assert got["unsubscribe"] is (version in ("1.7.0", "1.8.0"))
    assert got["ssl_params"] is new
    assert got["timeout"] == ([["settimeout", 5]] if new else None)
    if not new:
        assert got["ssl_true"] == {
            "kind": "AttributeError",
            "args": ["'bool' object has no attribute 'wrap_socket'"],
        }


@pytest.mark.parametrize(("firmware", "version"), RELEASES)
def test_bytes_on_the_wire(
    mpy: Interpreter, new_board: BoardFactory, firmware: str, version: str
) -> None:
    topic, remote, long_topic = "node/node1/config", "node/node1/params/remote", "t/" + "x" * 128
    replies = _hex(
        "20 02 01 00",  # CONNACK, session present
        "40 02 00 01",  # PUBACK 1
        "90 03 00 02 01",  # SUBACK 2: QoS 1 granted
        # PUBLISH QoS 1 to us: remaining 2 + 24 + 2 + 2 = 30, packet id 7, payload "{}"
        "32 1e 0018", remote.encode(), "0007", b"{}",
        "d0 00",  # PINGRESP
        "90 03 00 03 80",  # SUBACK 3: refused
    )  # fmt: skip
    code = (
        FAKE
        + """
from umqtt.simple import MQTTClient, MQTTException
s = fake(ARGS["replies"])
c = MQTTClient("node1", "broker.example", user="u", password="p", keepalive=60, ssl=Context())
c.set_last_will("node/node1/status", b"gone", retain=True, qos=1)
got = []
c.set_callback(lambda t, msg: got.append([t.decode(), msg.decode()]))
res = {"session": c.connect()}
res["connect"] = written(s); s.calls = [x for x in s.calls if x[0] != "write"]
res["calls"] = [x for x in s.calls if x[0] != "read"]; s.calls = []
c.publish(ARGS["topic"], b'{"a":1}', qos=1)
res["publish1"] = written(s); s.calls = []
c.publish(ARGS["topic"], b"x" * 200, retain=True)
res["publish0"] = written(s); s.calls = []
c.subscribe(ARGS["remote"], 1)
res["subscribe"] = written(s); s.calls = []
res["op"] = c.wait_msg()
res["received"] = got
res["puback"] = written(s); s.calls = []
c.ping()
res["ping"] = written(s); s.calls = []
res["pingresp"] = c.wait_msg()
try:
    c.subscribe(ARGS["long"])
except MQTTException as e:
    res["refused"] = e.args[0]
res["subscribe_long"] = written(s); s.calls = []
res["nodata"] = c.check_msg()
res["check_calls"] = s.calls; s.calls = []
c.disconnect()
res["disconnect"] = written(s)
out(res)
"""
    )
    args = {"replies": replies, "topic": topic, "remote": remote, "long": long_topic}
    got = run_board(new_board("wire", firmware=firmware), mpy, code, args)
    will, user = "node/node1/status", "u"
    # CONNECT (3.1): remaining = 10 + (2+5) + (2+17) + (2+4) + (2+1) + (2+1) = 48; flags
    # user+password (0xC0) | will retain (0x20) | will QoS 1 (0x08) | will (0x04) | clean (0x02).
    assert got["connect"] == _hex(
        "10 30", "0004", b"MQTT", "04", "ee", "003c", "0005", b"node1",
        "0011", will.encode(), "0004", b"gone", "0001", user.encode(), "0001", b"p",
    )  # fmt: skip
    assert got["session"] == 1
    # Port 8883 when ssl is given and no port; the context wraps with the server's name.
    # connect(timeout=None) sets a blocking socket from 1.6.0 on.
    assert got["calls"] == [["settimeout", None]] * (version != "1.4.0") + [
        ["getaddrinfo", "broker.example", 8883],
        ["connect", 8883],
        ["wrap_socket", "broker.example"],
    ]
    # PUBLISH QoS 1 (3.3): 0x32, remaining 2 + 17 + 2 + 7 = 28, packet id 1.
    assert got["publish1"] == _hex("32 1c", "0011", topic.encode(), "0001", b'{"a":1}')
    # PUBLISH QoS 0, retain: 0x31, remaining 2 + 17 + 200 = 219 = 0xdb 0x01 (two bytes).
    assert got["publish0"] == _hex("31 db 01", "0011", topic.encode(), b"x" * 200)
    # SUBSCRIBE (3.8): 0x82, remaining 2 + 2 + 24 + 1 = 29, packet id 2, QoS 1.
    assert got["subscribe"] == _hex("82 1d", "0002", "0018", remote.encode(), "01")
    assert got["op"] == 0x32 and got["received"] == [[remote, "{}"]]
    assert got["puback"] == _hex("40 02 00 07")  # the QoS 1 PUBLISH is acknowledged
    assert (got["ping"], got["pingresp"]) == (_hex("c0 00"), None)
    assert got["refused"] == 0x80
    # A 130-byte filter: remaining 2 + 2 + 130 + 1 = 135. Up to 1.7.0 it goes out as one byte
    # (0x87, which MQTT reads as "more length bytes follow"); 1.8.0 encodes it (0x87 0x01).
    length = "87 01" if version == "1.8.0" else "87"
    assert got["subscribe_long"] == _hex("82", length, "0003", "0082", long_topic.encode(), "00")
    assert got["nodata"] is None
    assert got["check_calls"] == [["setblocking", False], ["setblocking", True]]
    assert got["disconnect"] == _hex("e0 00")


def test_packet_ids_never_wrap_so_qos1_waits_past_65535(
    mpy: Interpreter, new_board: BoardFactory
) -> None:
    # Upstream keeps counting: id 65536 goes out as 0x0000, and a PUBACK 0 never matches it.
    code = (
        FAKE
        + """
from umqtt.simple import MQTTClient
s = fake("20020000" + "40020000")
c = MQTTClient("n", "h", ssl=Context())
c.connect()
c.pid = 65535
try:
    c.publish("t", b"x", qos=1)
    res = "returned"
except OSError as e:
    res = err(e)
out({"res": res, "sent": written(s)[-10:]})
"""
    )
    got = run_board(new_board("wrap"), mpy, code)
    assert got["sent"].endswith("0000" + b"x".hex())
    assert got["res"] == {"kind": "OSError", "args": [-1]}  # waited on, to the end of stream


# --- against the bench broker, with real mutual TLS ------------------------------------------

SESSION = """
from umqtt.simple import MQTTClient
a = ARGS
got = []
c = MQTTClient(a["id"], "localhost", a["port"], keepalive=30, ssl=context(a))
c.set_callback(lambda t, m: got.append([t.decode(), m.decode()]))
res = {"session": c.connect()}
c.subscribe("node/%s/params/remote" % a["id"], 1)
res["nothing"] = c.check_msg()  # the cloud waits for the mapping before it publishes
c.ping()
res["pingresp"] = c.wait_msg()
c.publish("node/%s/user/mapping" % a["id"], a["mapping"], qos=1)
res["op"] = c.wait_msg()  # the cloud's message
res["got"] = got
c.disconnect()
out(res)
"""


@pytest.mark.parametrize("firmware", ["1.23", "1.28"])
def test_session_with_the_broker(
    broker: RunningBroker,
    identity: IdentityFactory,
    mpy: Interpreter,
    new_board: BoardFactory,
    firmware: str,
) -> None:
    node = identity(f"s{firmware.replace('.', '')}")
    mapping = json.dumps({"node_id": node.cn, "user_id": "u1", "secret_key": "k1", "reset": True})
    cloud = HostClient.bench(broker, f"cloud-{node.cn}")
    assert cloud.connect(broker.bench_port, "127.0.0.1")[0] == "connack"
    cloud.subscribe(f"node/{node.cn}/#")
    board = new_board("session", firmware=firmware)
    result: dict[str, Any] = {}

    def device() -> None:
        result.update(run_board(board, mpy, SESSION, device_args(broker, node, mapping=mapping)))

    t = threading.Thread(target=device)
    t.start()
    try:
        broker.wait_for_publish(f"node/{node.cn}/user/mapping")
        assert cloud.next("message")[1:] == (f"node/{node.cn}/user/mapping", mapping.encode())
        broker.wait_for(
            lambda e: e["event"] == "subscribe" and e["client_id"] == node.cn, "the SUBSCRIBE"
        )
        cloud.publish(f"node/{node.cn}/params/remote", b'{"Light":{"Power":false}}')
    finally:
        t.join(60)
        cloud.close()
    assert result == {
        "session": 0,
        "nothing": None,
        "pingresp": None,
        "op": 0x32,
        "got": [[f"node/{node.cn}/params/remote", '{"Light":{"Power":false}}']],
    }
    (sent,) = broker.published(topic=f"node/{node.cn}/user/mapping")
    assert (sent.client_id, sent.payload, sent.qos, sent.dup) == (
        node.cn,
        mapping.encode(),
        1,
        False,
    )
    connect = [e for e in broker.events("connect") if e["client_id"] == node.cn][-1]
    assert connect["tls"] == "TLSv1.2"  # as the board's mbedTLS (no TLS 1.3 in its config)


ATTEMPT = """
from umqtt.simple import MQTTClient
a = ARGS
res = {}
def attempt(name, f):
    try:
        res[name] = ["ok", f()]
    except Exception as e:
        res[name] = err(e)
c = MQTTClient(a["client_id"], "localhost", a["port"], ssl=context(a))
c.set_callback(lambda t, m: None)
attempt("connect", c.connect)
if a.get("publish"):
    attempt("publish", lambda: c.publish(a["publish"], b"{}", qos=1))
if a.get("subscribe"):
    attempt("subscribe", lambda: c.subscribe(a["subscribe"]))
out(res)
"""


def test_what_a_board_sees_when_the_broker_refuses(
    broker: RunningBroker, identity: IdentityFactory, mpy: Interpreter, new_board: BoardFactory
) -> None:
    now = datetime.datetime.now(datetime.UTC)
    me, other = identity("me"), identity("other")
    expired = identity(
        "old", not_before=now - datetime.timedelta(days=9), not_after=now - datetime.timedelta(1)
    )
    board = new_board("refused")
    base = device_args(broker, me, client_id=me.cn)
    cases: dict[str, dict[str, Any]] = {
        # No CONNACK: read(4) gets b"" at the close, and the frozen module indexes it.
        "wrong_id": {**base, "client_id": other.cn},
        # The broker refuses the certificate in the TLS handshake: an OSError from wrap_socket
        # (its errno depends on when the alert meets the board's writes).
        "expired": device_args(broker, expired, client_id=expired.cn),
        # Closed for it, without a PUBACK / SUBACK: wait_msg() reads b"" -> OSError(-1).
        "publish": {**base, "publish": f"node/{other.cn}/params/local"},
        "subscribe": {**base, "subscribe": f"node/{other.cn}/#"},
        # The board pins the wrong CA: the handshake fails on the board's side (ValueError).
        "wrong_ca": {**base, "ca": base["cert"]},
    }
    got = {name: run_board(board, mpy, ATTEMPT, args) for name, args in cases.items()}
    assert got["wrong_id"] == {
        "connect": {"kind": "IndexError", "args": ["bytes index out of range"]}
    }
    assert got["expired"]["connect"]["kind"] == "OSError"
    for name in ("publish", "subscribe"):
        assert got[name] == {"connect": ["ok", 0], name: {"kind": "OSError", "args": [-1]}}
    assert got["wrong_ca"]["connect"]["kind"] == "ValueError"
    assert "not correctly signed by the trusted CA" in got["wrong_ca"]["connect"]["args"][0]


RECONNECT = """
from umqtt.simple import MQTTClient
a = ARGS
c = MQTTClient(a["id"], "localhost", a["port"], ssl=context(a))
res = {"first": c.connect()}
c.publish("node/%s/params/local" % a["id"], b"1", qos=1)
print("RESTART")  # the Unix port writes stdout unbuffered
while True:  # the host restarts the broker, then writes GO
    if sys.stdin.readline().strip() == "GO":
        break
try:
    c.publish("node/%s/params/local" % a["id"], b"2", qos=1)
    res["stale"] = "ok"
except OSError as e:
    res["stale"] = err(e)
c.sock.close()  # before 1.8.0, connect() would leave the old socket open
res["again"] = c.connect()
c.publish("node/%s/params/local" % a["id"], b"3", qos=1)
c.disconnect()
out(res)
"""


def test_board_reconnects_after_a_broker_restart(
    service: RunningService,
    identity: IdentityFactory,
    mpy: Interpreter,
    new_board: BoardFactory,
    tmp_path: Path,
) -> None:
    board = new_board("reconnect")
    with running_broker(tmp_path / "broker", service.state_dir) as b:
        node = identity("rc")
        args = device_args(b, node)
        env = {**board.env(), "MICROPYPATH": ":".join(map(str, [*board.path(), LIB_DIR]))}
        script = tmp_path / "reconnect.py"
        script.write_text(PRELUDE.replace('sys.stdin.read() or "null"', "sys.stdin.readline()")
                          + CONTEXT + RECONNECT)  # fmt: skip
        proc = subprocess.Popen(
            [mpy.argv[0], "-X", "heapsize=1M", str(script)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        try:
            assert proc.stdin is not None and proc.stdout is not None
            proc.stdin.write(json.dumps(args) + "\n")
            proc.stdin.flush()
            assert proc.stdout.readline().strip() == "RESTART"
            b.restart()
            proc.stdin.write("GO\n")
            proc.stdin.flush()
            stdout, _ = proc.communicate(timeout=60)
        finally:
            proc.kill()
            proc.wait()
        result = json.loads(stdout.split("RESULT:")[1])
        assert result["first"] == 0 and result["again"] == 0
        assert result["stale"]["kind"] == "OSError"
        payloads = [p.payload for p in b.published(client_id=node.cn)]
        assert payloads == [b"1", b"3"]
        assert [s["port"] for s in b.events("start")] == [b.port, b.port]


def test_virtual_board_build_has_umqtt(
    mpy: Interpreter, new_board: BoardFactory, tmp_path: Path
) -> None:
    # The virtual board runs tools/boardsim compiled with mpy-cross (rmbench.vboard): the
    # umqtt package must be in that build too, as .mpy.
    built = compile_package(SIM_DIR, tmp_path / "sim")
    board = new_board("built")
    out = mpy.run(
        "import umqtt.simple as m\nprint(m.__file__, m.__version__)",
        path=[built],
        env=board.env(),
    )
    assert out.split() == [str(built / "umqtt" / "simple.mpy"), "1.7.0"]
