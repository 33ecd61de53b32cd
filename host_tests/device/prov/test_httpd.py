"""rmprov.httpd on real loopback sockets under MicroPython (64 KB heap), driven by
esp-rainmaker-cli's own client (its transport_http, Security0/1 and provision_device flow, in
its venv, driven by rmbench's cli_field.py) and by raw sockets sending malformed requests.

The endpoint handlers in the device script are test fixtures (a board that stores what it is
sent and reports itself connected): what is under test is the transport (cookies, one
session, limits, dispatch, errors) with the real security sessions and codec underneath.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from rmbench import LIB_DIR
from rmbench.micropython import Interpreter
from rmbench.rainmaker_cli import FIELD_DRIVER

from .support import PRELUDE, STOP_CHECK, ask_stop

VERSION = {"prov": {"ver": "v1.1", "sec_ver": 1, "cap": ["wifi_scan"]}, "rmaker": {"ver": "1.0"}}

DEVICE = """
install_ecb_only()
import gc
from rmprov import httpd, pb, proto
from rmprov.errors import ProtoError
ARGS = json.loads(sys.stdin.readline())
STATE = {"ssid": b"", "passphrase": b"", "applied": 0, "user": "", "secret": "", "resets": 0}

# Dispatch on msg, as ESP-IDF's wifi_config.c does: the CLI's CmdApplyConfig request carries
# msg = 4 and no payload at all.
def prov_config(data):
    m = pb.decode(proto.WIFI_CONFIG, data)
    if m["msg"] == 2 and m.get("cmd_set_config") is not None:
        STATE["ssid"] = m["cmd_set_config"]["ssid"]
        STATE["passphrase"] = m["cmd_set_config"]["passphrase"]
        reply = {"msg": 3, "resp_set_config": {"status": 0}}
    elif m["msg"] == 4:
        STATE["applied"] += 1
        reply = {"msg": 5, "resp_apply_config": {"status": 0}}
    elif m["msg"] == 0:
        connected = {"ip4_addr": "192.168.1.20", "ssid": STATE["ssid"], "channel": 6}
        reply = {"msg": 1, "resp_get_status": {"sta_state": 0, "connected": connected}}
    else:
        raise ProtoError("test: no command")
    return pb.encode(proto.WIFI_CONFIG, reply)

def user_assoc(data):
    m = pb.decode(proto.USER_MAPPING, data)["cmd_set_user_mapping"]
    STATE["user"] = m["UserID"]
    STATE["secret"] = m["SecretKey"]
    reply = {"Status": 0, "NodeId": "VtXfecXiRKazHoBZkkLAHX"}
    return pb.encode(proto.USER_MAPPING, {"msg": 1, "resp_set_user_mapping": reply})

def ctrl(data):
    pb.decode(proto.WIFI_CTRL, data)
    STATE["resets"] += 1
    return pb.encode(proto.WIFI_CTRL, {"msg": 2, "resp_ctrl_reset": {}})

handlers = {"prov-config": prov_config, "cloud_user_assoc": user_assoc, "prov-ctrl": ctrl}
srv = httpd.Server(handlers, security=ARGS["sec"], pop=ARGS["pop"], version=ARGS["version"],
                   port=ARGS["port"], host="127.0.0.1", timeout_s=1)
srv.start()
answer({"listening": ARGS["port"]})
# HEAP[requests handled so far] = GC heap in use after a collection. A fixed-size list: a
# growing record would show up as growth itself.
HEAP = [0] * 400
def done():
    gc.collect()
    n = srv.stats[0] + srv.stats[1]
    if n < len(HEAP):
        HEAP[n] = gc.mem_alloc()
    return stop_asked()
srv.serve(done, 50)
srv.close()
report = {"stats": srv.stats, "state": STATE, "last_error": srv.last_error}
srv = handlers = None
gc.collect()
sys.stdout.write(json.dumps(tohex(report))[:-1] + ', "heap": [')
sep = ""
for k in range(len(HEAP)):  # item by item: the report must fit the 64 KB heap too
    if HEAP[k]:
        sys.stdout.write("%s[%d, %d]" % (sep, k, HEAP[k]))
        sep = ", "
sys.stdout.write("]}\\n")
"""


@dataclass
class Device:
    proc: subprocess.Popen[str]
    port: int

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def running_device(
    mpy: Interpreter, prov_lib: Path, work: Path, pop: str = "abcd1234", sec: int = 1
) -> Iterator[tuple[Device, dict[str, Any]]]:
    """The device script serving on a free loopback port; yields it and, once it has been
    told to stop at the end of the block, fills the dict with its final report."""
    script = work / "device.py"
    script.write_text(PRELUDE + STOP_CHECK + DEVICE)
    env = dict(os.environ, MICROPYPATH=f"{prov_lib}:{LIB_DIR}")
    report: dict[str, Any] = {}
    for _ in range(5):
        port = free_port()
        proc = subprocess.Popen(
            [*mpy.argv, "-X", "heapsize=64K", str(script)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            text=True,
        )
        assert proc.stdin is not None and proc.stdout is not None
        args = {"port": port, "pop": pop, "sec": sec, "version": json.dumps(VERSION)}
        proc.stdin.write(json.dumps(args) + "\n")
        proc.stdin.flush()
        line = proc.stdout.readline()
        if line.startswith('{"listening"'):
            break
        proc.kill()
        proc.wait()
    else:
        pytest.fail(f"device did not start: {line}{proc.stderr.read() if proc.stderr else ''}")
    try:
        yield Device(proc, port), report
    finally:
        ask_stop(proc)
        try:
            out, err = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        lines = out.strip().splitlines()
        assert lines, f"device said nothing at exit: {err}"
        report.update(json.loads(lines[-1]))


def cli(cli_python: Path, **args: Any) -> Any:
    """rmbench's driver of the CLI's client (rmbench.rainmaker_cli.FIELD_DRIVER) in the CLI's
    venv: one scenario, its JSON result."""
    proc = subprocess.run(
        [str(cli_python), str(FIELD_DRIVER), json.dumps(args)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])["result"]


def test_the_clis_provision_flow_over_loopback(
    mpy: Interpreter, prov_lib: Path, cli_python: Path, tmp_path: Path
) -> None:
    # esp_rainmaker_prov.provision_device as `esp-rainmaker-cli provision` runs it: security 1
    # read from proto-ver, a pop, user association, Wi-Fi credentials, apply, status polls.
    with running_device(mpy, prov_lib, tmp_path) as (device, report):
        result = cli(
            cli_python,
            scenario="device",
            address=device.address,
            pop="abcd1234",
            user_id="user-42",
            secret_key="s3cret-key",
            ssid="BENCH",
            passphrase="correct horse",
        )
    assert result == ["VtXfecXiRKazHoBZkkLAHX", False], report["last_error"]
    state = report["state"]
    assert (state["ssid"], state["passphrase"], state["applied"]) == (
        {"$hex": b"BENCH".hex()},
        {"$hex": b"correct horse".hex()},
        1,
    )
    assert (state["user"], state["secret"]) == ("user-42", "s3cret-key")
    answered, refused, sessions, _ = report["stats"]
    assert refused == 0
    assert sessions == 1  # one cookie session for the whole flow
    assert answered >= 8  # proto-ver x2, 2 handshake steps, assoc, set, apply, status


@pytest.mark.parametrize("sec", [0, 1])
def test_wrong_pop_fails_and_the_board_stays_provisionable(
    mpy: Interpreter, prov_lib: Path, cli_python: Path, tmp_path: Path, sec: int
) -> None:
    # A refused handshake shuts prov-session for a second (then 2, 4, ... 32 s): a client
    # right after it is refused with 429, one a second later is served.
    with running_device(mpy, prov_lib, tmp_path, pop="abcd1234", sec=sec) as (device, report):
        wrong = cli(
            cli_python, scenario="session", address=device.address, pop="abcd9999", sec=sec
        )
        t0 = time.monotonic()
        hello = b"\x10\x01" if sec else b"\x52\x03\xa2\x01\x00"  # a command 0 / Sec0 hello
        soon = status_of(exchange(device.address, post("prov-session", hello)))
        time.sleep(max(0.0, 1.1 - (time.monotonic() - t0)))
        right = cli(
            cli_python,
            scenario="session",
            address=device.address,
            pop="abcd1234",
            sec=sec,
            user_id="user-1",
            secret_key="secret-1",
        )
    assert json.loads(right["version"]) == VERSION
    if sec == 1:
        assert wrong["session"] == "RuntimeError: Server responded with error code 500"
        assert soon == 429
    else:
        assert wrong["session"] is True  # security 0 has no pop
        assert soon == 200
    assert right["session"] is True
    assert right["status"] == "connected"
    assert right["assoc"] == [0, "VtXfecXiRKazHoBZkkLAHX"]
    assert right["cookie"].startswith("session=")
    assert report["stats"][2] == (2 if sec else 3)  # a new session for each client (429: none)


def test_client_gone_mid_handshake_then_a_new_client(
    mpy: Interpreter, prov_lib: Path, cli_python: Path, tmp_path: Path
) -> None:
    with running_device(mpy, prov_lib, tmp_path) as (device, report):
        half = cli(cli_python, scenario="half", address=device.address, pop="abcd1234")
        full = cli(cli_python, scenario="session", address=device.address, pop="abcd1234")
    assert half["reply"] > 32  # the device's key and random came back
    assert full["session"] is True and full["status"] == "connected"
    assert report["stats"][1] == 0


# --- malformed requests from raw sockets ------------------------------------------------------


def exchange(address: str, data: bytes, timeout: float = 5.0) -> bytes:
    """Send data on a new connection; everything the server sends until it closes (or a reply
    is complete on a kept-alive connection)."""
    host, port = address.split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as s:
        s.sendall(data)
        got = b""
        while True:
            try:
                chunk = s.recv(4096)
            except TimeoutError:
                return got
            if not chunk:
                return got
            got += chunk
            head, sep, body = got.partition(b"\r\n\r\n")
            if sep and b"Content-Length: %d" % len(body) in head:
                return got


def status_of(reply: bytes) -> int:
    return int(reply.split(b" ", 2)[1]) if reply.startswith(b"HTTP/1.1 ") else 0


def post(endpoint: str, body: bytes, *headers: str) -> bytes:
    lines = [f"POST /{endpoint} HTTP/1.1", "Host: 192.168.4.1", f"Content-Length: {len(body)}"]
    return ("\r\n".join([*lines, *headers]) + "\r\n\r\n").encode() + body


MALFORMED: list[tuple[str, bytes, int]] = [
    ("get", b"GET /proto-ver HTTP/1.1\r\n\r\n", 405),
    ("no version", b"POST /proto-ver\r\n\r\n", 400),
    ("unknown endpoint", post("nope", b"x"), 404),
    ("no length", b"POST /proto-ver HTTP/1.1\r\nHost: x\r\n\r\n", 411),
    ("zero length", post("proto-ver", b""), 411),
    ("bad length", b"POST /proto-ver HTTP/1.1\r\nContent-Length: -5\r\n\r\n", 400),
    (
        "two lengths",
        b"POST /proto-ver HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx",
        400,
    ),
    (
        "chunked",
        b"POST /proto-ver HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n",
        411,
    ),
    ("huge body", b"POST /prov-config HTTP/1.1\r\nContent-Length: 4097\r\n\r\n", 413),
    ("huge declared", b"POST /prov-session HTTP/1.1\r\nContent-Length: 999999999\r\n\r\n", 413),
    ("head too long", b"POST /proto-ver HTTP/1.1\r\nX: " + b"a" * 1100 + b"\r\n\r\n", 431),
    ("bad header", b"POST /proto-ver HTTP/1.1\r\nnocolon\r\n\r\n", 400),
    ("garbage session", post("prov-session", b"\xff" * 40), 500),
    ("config before session", post("prov-config", b"\x08\x00"), 500),
    ("garbage config", post("prov-config", os.urandom(64)), 500),
    ("body cut short", b"POST /prov-session HTTP/1.1\r\nContent-Length: 100\r\n\r\nabc", 500),
    ("binary junk", bytes(range(256)) + b"\r\n\r\n", 400),
]


def test_malformed_requests_get_errors_and_the_server_keeps_serving(
    mpy: Interpreter, prov_lib: Path, cli_python: Path, tmp_path: Path
) -> None:
    with running_device(mpy, prov_lib, tmp_path) as (device, report):
        baseline = cli(cli_python, scenario="session", address=device.address, pop="abcd1234")
        got = []
        for _ in range(3):
            for name, request, _ in MALFORMED:
                got.append((name, status_of(exchange(device.address, request))))
                ok = exchange(device.address, post("proto-ver", b"---"))
                assert status_of(ok) == 200 and ok.endswith(json.dumps(VERSION).encode()), name
        # A client that sends half a head and goes quiet is timed out, then others are served.
        start = time.monotonic()
        assert exchange(device.address, b"POST /proto-ver HTTP/1.1\r\n", timeout=10) in (
            b"",
            b"HTTP/1.1 500 Error\r\nContent-Type: text/plain\r\nContent-Length: 0\r\n"
            b"Connection: close\r\n\r\n",
        )
        assert time.monotonic() - start < 5
        after = cli(cli_python, scenario="session", address=device.address, pop="abcd1234")
    assert got == [(name, status) for name, _, status in MALFORMED] * 3
    assert baseline["session"] is True and after["session"] is True
    assert after["status"] == "connected"
    assert report["state"]["applied"] == 0 and report["state"]["ssid"] == {"$hex": ""}
    # GC heap in use after each request (after a collection): bounded, and no more after the
    # third round of bad requests than after the first (each round is the same 2 x
    # len(MALFORMED) requests, after the 5 of the first client's session): nothing is kept from
    # them. A leak of one GC block per request would be 2 x len(MALFORMED) blocks a round; the
    # 64 bytes allowed are the interpreter's own (a qstr pool or a dict growing once).
    heap = dict(report["heap"])
    rounds = [5 + 2 * len(MALFORMED) * r for r in (1, 2, 3)]
    assert max(heap.values()) - min(heap.values()) < 8 * 1024, heap
    assert heap[rounds[1]] - heap[rounds[0]] <= 64, heap
    assert heap[rounds[2]] - heap[rounds[0]] <= 64, heap


def test_cookies_one_session_and_a_second_client(
    mpy: Interpreter, prov_lib: Path, tmp_path: Path
) -> None:
    with running_device(mpy, prov_lib, tmp_path, sec=0) as (device, report):
        first = exchange(device.address, post("proto-ver", b"---"))
        cookie = [h for h in first.split(b"\r\n") if h.startswith(b"Set-Cookie: ")]
        assert len(cookie) == 1 and cookie[0].startswith(b"Set-Cookie: session=")
        value = cookie[0][len(b"Set-Cookie: ") :].decode()
        # The same cookie continues the session (no new cookie); another client's request
        # without it, or with a stale one, starts a new session.
        again = exchange(device.address, post("proto-ver", b"---", f"Cookie: {value}"))
        assert status_of(again) == 200 and b"Set-Cookie" not in again
        other = exchange(device.address, post("proto-ver", b"---"))
        assert b"Set-Cookie: session=" in other
        stale = exchange(device.address, post("proto-ver", b"---", f"Cookie: {value}"))
        assert b"Set-Cookie: session=" in stale
        junk = exchange(device.address, post("proto-ver", b"---", "Cookie: theme=dark"))
        assert b"Set-Cookie: session=" in junk
    assert report["stats"][2] == 4
