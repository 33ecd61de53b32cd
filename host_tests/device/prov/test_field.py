"""rmprov.field and rmprov.endpoints on the MicroPython Unix port with the board doubles (a
simulated ESP32-S3 with its soft-AP's port 80 on loopback, at the board's heap, everything as
.mpy), driven over HTTP by a client made of esp-rainmaker-cli's own Security1 and protobuf
classes (client_peer.py): every endpoint's replies and refusals, the Wi-Fi join and what is
saved, challenge-response signatures checked with `cryptography`, malformed requests of every
kind, the heap, and the soft-AP's timeout.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from rmbench import FIRMWARE_DIR
from rmbench.boardsim import SIM_DIR, SimBoard, create_board
from rmbench.micropython import Interpreter, compile_library, compile_package
from rmbench.profiles import get_profile
from rmbench.vboard.manager import free_port

from .support import STOP_CHECK, Peer, ask_stop

POP = "abcd1234"
NODE_ID = "VtXfecXiRKazHoBZkkLAHX"
APS: list[dict[str, Any]] = [
    {"ssid": "far-away", "password": None, "rssi": -88, "channel": 11},
    {"ssid": "next-door", "password": "their-pass", "rssi": -40, "channel": 1},
]
CFG = {
    "prov_name": None,
    "prov_sec": 1,
    "prov_pop": POP,
    "prov_timeout_s": 1800,
    "wifi_timeout_s": 1,
    "mode": "auto",
    "access_token": None,
}

# The device: a Provisioner stepped until done (or told to stop: support.STOP_CHECK), with the
# firmware's own reason for a failed join (rmboot.wifi_failure); status lines as JSON as they
# come, then a report with the GC heap in use after each request (after a collection).
DEVICE = (
    r"""
import gc, json, sys
ARGS = json.loads(sys.stdin.readline())
"""
    + STOP_CHECK
    + r"""
def out(v):
    sys.stdout.write(json.dumps(v) + "\n")
if ARGS.get("key_pem"):
    from rmclaim import store
    st = store.Store()
    st.save_key(ARGS["key_pem"])
    st.save_identity("(a certificate)", ARGS["node_id"], None, None)
    st = store = None
    from rmprov.field import unload
    unload("store")
import rmboot
from rmprov import field
def report(step, outcome, fields):
    out({"status": [step, outcome, dict(fields)]})
p = field.Provisioner(ARGS["cfg"], report, rmboot.wifi_failure)
p.start()
HEAP = [0] * 600
done = False
while not done and not stop_asked():
    done = p.step(50)
    gc.collect()
    n = p.server.stats[0] + p.server.stats[1]
    if n < len(HEAP):
        HEAP[n] = gc.mem_alloc()
stats = p.server.stats
ap = p.ap
p.close()
import network
sys.stdout.write(json.dumps({"done": done, "stats": stats, "state": p.state,
    "last_error": p.server.last_error,
    "ap_active": network.WLAN(network.WLAN.IF_AP).active()})[:-1] + ', "heap": [')
sep = ""
for k in range(len(HEAP)):
    if HEAP[k]:
        sys.stdout.write("%s[%d, %d]" % (sep, k, HEAP[k]))
        sep = ", "
sys.stdout.write("]}\n")
"""
)


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """The board doubles, lib/rmclaim, lib/rmprov and firmware/ as .mpy: MicroPython's path."""
    root = tmp_path_factory.mktemp("field-deploy")
    compile_package(SIM_DIR, root / "sim")
    compile_library(root / "lib")
    compile_package(FIRMWARE_DIR, root / "fw")
    return [root / "sim", root / "lib", root / "fw"]


@dataclass
class Device:
    board: SimBoard
    proc: subprocess.Popen[str]
    lines: list[dict[str, Any]] = field(default_factory=list)

    @property
    def address(self) -> tuple[str, int]:
        assert self.board.softap_port is not None
        return "127.0.0.1", self.board.softap_port

    def nvs(self, namespace: str) -> dict[str, bytes | int]:
        return self.board.nvs().get(namespace, {})

    def status_lines(self) -> list[list[Any]]:
        """[step, outcome, fields] of each status line so far."""
        return [line["status"] for line in self.lines if "status" in line]


@contextmanager
def running(
    mpy: Interpreter,
    deployed: list[Path],
    tmp_path: Path,
    *,
    cfg: dict[str, Any] | None = None,
    claimed: ec.EllipticCurvePrivateKey | None = None,
    name: str = "field",
    key_pem: str | None = None,
) -> Iterator[Device]:
    """The device provisioning on a fresh simulated board; on leaving, told to stop unless it
    finished, and its final report in `lines`."""
    board = create_board(tmp_path / name, "esp32s3", name=name, aps=APS, softap_port=free_port())
    args: dict[str, Any] = {"cfg": {**CFG, **(cfg or {})}}
    if claimed is not None:
        args["key_pem"] = claimed.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        ).decode()
        args["node_id"] = NODE_ID
    if key_pem is not None:
        args["key_pem"], args["node_id"] = key_pem, NODE_ID
    env = dict(os.environ, RMBENCH_BOARD_DIR=str(board.directory))
    env["MICROPYPATH"] = ":".join(str(p) for p in deployed)
    heap = mpy.board_heap(get_profile("esp32s3").gc_heap)
    script = tmp_path / f"{name}.py"
    script.write_text(DEVICE)
    proc = subprocess.Popen(
        [*mpy.argv, "-X", f"heapsize={heap}", str(script)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        text=True,
    )
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(json.dumps(args) + "\n")
    proc.stdin.flush()
    device = Device(board, proc)
    first = proc.stdout.readline()
    assert first.startswith('{"status"'), first + proc.communicate()[1]
    device.lines.append(json.loads(first))
    raw_lines: list[str] = []

    def read() -> None:  # every later line, as it comes
        assert proc.stdout is not None
        for line in proc.stdout:
            raw_lines.append(line)
            if line.startswith("{"):
                device.lines.append(json.loads(line))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        yield device
    finally:
        ask_stop(proc)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        reader.join(10)
        err = proc.stderr.read() if proc.stderr else ""
        assert all(line.startswith("{") for line in raw_lines), "".join(raw_lines) + err
        assert "Traceback" not in err, err
        last = device.lines[-1]
        print("device report:", last.get("last_error"), last.get("stats"))  # shown on failure


def report(device: Device) -> dict[str, Any]:
    last = device.lines[-1]
    assert "stats" in last, device.lines
    return last


class Client:
    """A protocomm client over HTTP: the CLI's Security1/Security0 and protobuf classes (the
    peer) for the bytes, http.client for the transport, the session cookie kept."""

    def __init__(self, device: Device, peer: Peer, pop: str = POP, sec: int = 1) -> None:
        self.device = device
        self.address = device.address
        self.peer = peer
        self.conn = http.client.HTTPConnection(*self.address, timeout=15)
        self.cookie: str | None = None
        peer.call("security", sec=sec, pop=pop)

    def post(self, endpoint: str, body: bytes) -> tuple[int, bytes]:
        headers = {"Content-type": "application/x-www-form-urlencoded", "Accept": "text/plain"}
        if self.cookie:
            headers["Cookie"] = self.cookie
        try:
            self.conn.request("POST", "/" + endpoint, body, headers)
        except (BrokenPipeError, ConnectionResetError):
            # The server closed this connection when another client connected (one at a
            # time): a new connection, with the cookie, continues the session.
            self.conn.close()
            self.conn.request("POST", "/" + endpoint, body, headers)
        reply = self.conn.getresponse()
        data = reply.read()
        cookie = reply.getheader("Set-Cookie")
        if cookie:
            self.cookie = cookie.split(";")[0]
        if reply.getheader("Connection") == "close":
            self.conn.close()
        return reply.status, data

    def version(self) -> dict[str, Any]:
        status, body = self.post("proto-ver", b"---")
        assert status == 200
        result: dict[str, Any] = json.loads(body)
        return result

    def handshake(self) -> None:
        response = None
        while True:
            request = self.peer.call("session", response=response)
            if request is None:
                return
            status, response = self.post("prov-session", request)
            assert status == 200, status

    def call(self, endpoint: str, kind: str, msg: dict[str, Any]) -> dict[str, Any]:
        data = self.peer.call("serialize", type=kind, msg=msg)
        status, body = self.post(endpoint, self.peer.call("encrypt", data=data))
        if status != 200:
            ask_stop(self.device.proc)  # for its report (last_error)
        assert status == 200, (endpoint, msg, status)
        parsed = self.peer.call("parse", type=kind, data=self.peer.call("decrypt", data=body))
        assert "msg" in parsed, parsed
        result: dict[str, Any] = parsed["msg"]
        return result


def wifi(client: Client, msg: dict[str, Any]) -> dict[str, Any]:
    return client.call("prov-config", "WiFiConfigPayload", msg)


def set_config(client: Client, ssid: bytes, passphrase: bytes, bssid: bytes = b"") -> int:
    cmd = {"ssid": ssid, "passphrase": passphrase, "bssid": bssid}
    reply = wifi(client, {"msg": 2, "cmd_set_config": cmd})
    status: int = reply["resp_set_config"]["status"]
    return status


def apply(client: Client) -> int:
    status: int = wifi(client, {"msg": 4})["resp_apply_config"]["status"]
    return status


def get_status(client: Client) -> dict[str, Any]:
    reply: dict[str, Any] = wifi(client, {"msg": 0, "cmd_get_status": {}})["resp_get_status"]
    return reply


def wait_status(client: Client, timeout: float = 10) -> dict[str, Any]:
    """The first status other than Connecting."""
    deadline = time.monotonic() + timeout
    while True:
        status = get_status(client)
        if status["sta_state"] != 1 or time.monotonic() > deadline:
            return status
        time.sleep(0.2)


def ch_resp(client: Client, msg: dict[str, Any]) -> dict[str, Any]:
    return client.call("ch_resp", "RMakerChRespPayload", msg)


def challenge(client: Client, payload: bytes) -> dict[str, Any]:
    return ch_resp(client, {"msg": 0, "cmdChallengeResponsePayload": {"payload": payload}})


def test_endpoints_of_a_claimed_board(
    mpy: Interpreter, deployed: list[Path], client: Peer, tmp_path: Path
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    with running(mpy, deployed, tmp_path, claimed=key) as device:
        c = Client(device, client)
        # proto-ver: security 1, Wi-Fi scan, ch_resp (claimed), never "claim".
        assert c.version() == {
            "prov": {"ver": "v1.1", "sec_ver": 1, "sec_patch_ver": 0, "cap": ["wifi_scan"]},
            "rmaker_extra": {"ver": "1.0", "cap": ["ch_resp"]},
        }
        c.handshake()
        # prov-scan: a blocking scan, strongest first; a range past the results is refused.
        scan = c.call("prov-scan", "WiFiScanPayload", {"msg": 0, "cmd_scan_start": {}})
        assert (scan["msg"], scan["status"]) == (1, 0)
        st = c.call("prov-scan", "WiFiScanPayload", {"msg": 2, "cmd_scan_status": {}})
        assert st["resp_scan_status"] == {"scan_finished": True, "result_count": 3}
        msg = {"msg": 4, "cmd_scan_result": {"start_index": 0, "count": 3}}
        entries = c.call("prov-scan", "WiFiScanPayload", msg)["resp_scan_result"]["entries"]
        assert [(e["ssid"], e["rssi"], e["auth"]) for e in entries] == [
            (b"next-door", -40, 3),
            (b"rmbench", -52, 3),
            (b"far-away", -88, 0),
        ]
        msg = {"msg": 4, "cmd_scan_result": {"start_index": 2, "count": 2}}
        past = c.call("prov-scan", "WiFiScanPayload", msg)
        assert (past["status"], past["resp_scan_result"]["entries"]) == (4, [])
        # prov-config before any credentials: Connecting (the manager's initial state); apply
        # without credentials, a passphrase of 64 bytes, a 3-byte BSSID, an empty SSID: refused.
        assert get_status(c)["sta_state"] == 1
        assert apply(c) == 5
        assert set_config(c, b"rmbench", b"p" * 64) == 4
        assert set_config(c, b"rmbench", b"bench-pass", bssid=b"abc") == 4
        assert set_config(c, b"", b"bench-pass") == 4
        # prov-ctrl: nothing failed, nothing joined: both refused.
        for kind, resp in ((1, "resp_ctrl_reset"), (3, "resp_ctrl_reprov")):
            ctrl = c.call(
                "prov-ctrl", "WiFiCtrlPayload", {"msg": kind, resp.replace("resp", "cmd"): {}}
            )
            assert (ctrl["msg"], ctrl["status"]) == (kind + 1, 5)
        # cloud_user_assoc: the node id of the claimed board; an empty user id is refused.
        assoc = {"msg": 0, "cmd_set_user_mapping": {"UserID": "", "SecretKey": "s"}}
        reply = c.call("cloud_user_assoc", "RMakerConfigPayload", assoc)
        assert reply["resp_set_user_mapping"]["Status"] == 1
        assoc["cmd_set_user_mapping"] = {"UserID": "user-7", "SecretKey": "secret-7"}
        reply = c.call("cloud_user_assoc", "RMakerConfigPayload", assoc)
        assert reply["resp_set_user_mapping"] == {"Status": 0, "NodeId": NODE_ID}
        assert device.nvs("rmclaim_map") == {"user_id": b"user-7", "secret_key": b"secret-7"}
        # ch_resp: the challenge's SHA-256 signed with the claimed key (DER ECDSA) ...
        signed = challenge(c, b"challenge-1")
        assert (signed["msg"], signed["status"]) == (1, 0)
        payload = signed["respChallengeResponsePayload"]
        assert payload["node_id"] == NODE_ID
        key.public_key().verify(payload["payload"], b"challenge-1", ec.ECDSA(hashes.SHA256()))
        # ... one a every 2 s: the next one at once fails; an empty challenge is refused.
        assert challenge(c, b"challenge-2")["status"] == 1
        assert challenge(c, b"")["status"] == 2
        node = ch_resp(c, {"msg": 2, "cmdGetNodeIDPayload": {}})
        assert node["respGetNodeIDPayload"] == {"node_id": NODE_ID}
        # The disable command turns it off for good (NVS), and proto-ver stops offering it.
        off = ch_resp(c, {"msg": 4, "cmdDisableChalRespPayload": {}})
        assert (off["msg"], off["status"]) == (5, 0)
        time.sleep(2.1)
        assert challenge(c, b"challenge-3") == {"msg": 1, "status": 3}
        assert device.nvs("rmclaim_prov")["chresp_off"] == 1
        assert "rmaker_extra" not in c.version()
        # The right credentials: joined, saved, Connected; apply again refused; done 1 s after
        # a client was told Connected.
        assert device.nvs("rmclaim_prov").get("wifi") is None
        assert set_config(c, b"rmbench", b"bench-pass") == 0
        assert apply(c) == 0
        assert apply(c) == 5
        status = wait_status(c)
        assert status["sta_state"] == 0 and status["connected"]["ssid"] == b"rmbench"
        assert status["connected"]["ip4_addr"] == "127.0.0.1"
        assert device.nvs("rmclaim_prov")["wifi"] == b"\x07rmbenchbench-pass"
        told = time.monotonic()
        device.proc.wait(10)
        assert time.monotonic() - told < 5
    final = report(device)
    assert final["done"] is True and final["ap_active"] is False


def test_challenge_response_with_a_key_stored_without_its_public_key(
    mpy: Interpreter, deployed: list[Path], client: Peer, tmp_path: Path
) -> None:
    # SEC1 without the optional public key (51 bytes, a host-made key may come so): not the
    # usual layout, so rmclaim.csr's parser reads it.
    key = ec.generate_private_key(ec.SECP256R1())
    full = key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    short = b"\x30\x31" + full[2:51]
    body = base64.encodebytes(short).decode()
    pem = f"-----BEGIN EC PRIVATE KEY-----\n{body}-----END EC PRIVATE KEY-----\n"
    with running(mpy, deployed, tmp_path, key_pem=pem) as device:
        c = Client(device, client)
        c.handshake()
        signed = challenge(c, b"short-key")
        assert signed["status"] == 0, signed
        payload = signed["respChallengeResponsePayload"]["payload"]
        key.public_key().verify(payload, b"short-key", ec.ECDSA(hashes.SHA256()))


@pytest.mark.slow
def test_challenge_response_signs_at_most_five_times_a_boot(
    mpy: Interpreter, deployed: list[Path], client: Peer, tmp_path: Path
) -> None:
    # One signature every 2 s at most, 5 in a boot: the key behind it signs for anyone with the
    # pop, and its arithmetic is not constant-time (blinded, still bounded).
    key = ec.generate_private_key(ec.SECP256R1())
    with running(mpy, deployed, tmp_path, claimed=key) as device:
        c = Client(device, client)
        c.handshake()
        statuses = []
        for i in range(6):
            if i:
                time.sleep(2.05)
            reply = challenge(c, b"challenge-%d" % i)
            statuses.append(reply["status"])
            if reply["status"] == 0:
                signature = reply["respChallengeResponsePayload"]["payload"]
                message = b"challenge-%d" % i
                key.public_key().verify(signature, message, ec.ECDSA(hashes.SHA256()))
        assert statuses == [0, 0, 0, 0, 0, 1]
        # Spent for this boot: no longer offered (a client takes the secret-key way), but not
        # switched off for good (no mapping went through).
        assert "rmaker_extra" not in c.version()
    assert "chresp_off" not in device.nvs("rmclaim_prov")


def test_failed_joins_then_reset_and_retry(
    mpy: Interpreter, deployed: list[Path], client: Peer, tmp_path: Path
) -> None:
    # An unclaimed ESP32-S3 that will self-claim: its node id is its MAC, no ch_resp.
    with running(mpy, deployed, tmp_path) as device:
        c = Client(device, client)
        assert "rmaker_extra" not in c.version()
        c.handshake()
        assert challenge(c, b"x")["status"] == 1  # not claimed: nothing to sign with
        assoc = {"msg": 0, "cmd_set_user_mapping": {"UserID": "u", "SecretKey": "k"}}
        reply = c.call("cloud_user_assoc", "RMakerConfigPayload", assoc)
        assert reply["resp_set_user_mapping"] == {"Status": 0, "NodeId": device.board.mac}
        for ssid, passphrase, reason, why in (
            (b"nowhere", b"whatever", 1, "no AP found"),  # NetworkNotFound
            (b"rmbench", b"wrong-pass", 0, "wrong password"),  # AuthError
        ):
            assert set_config(c, ssid, passphrase) == 0
            assert apply(c) == 0
            status = wait_status(c)
            assert (status["sta_state"], status["fail_reason"]) == (3, reason)
            assert apply(c) == 5  # not before a reset
            assert set_config(c, b"rmbench", b"bench-pass") == 0
            assert apply(c) == 5
            reset = c.call("prov-ctrl", "WiFiCtrlPayload", {"msg": 1, "cmd_ctrl_reset": {}})
            assert reset["status"] == 0
            assert get_status(c)["sta_state"] == 3  # still failed until the next apply
            assert device.nvs("rmclaim_prov").get("wifi") is None
            assert device.status_lines()[-1][2]["reason"] == why
        assert set_config(c, b"rmbench", b"bench-pass") == 0
        assert apply(c) == 0
        assert wait_status(c)["sta_state"] == 0
        # Reprovisioning a joined board forgets the credentials it just saved.
        reprov = c.call("prov-ctrl", "WiFiCtrlPayload", {"msg": 3, "cmd_ctrl_reprov": {}})
        assert reprov["status"] == 0
        assert device.nvs("rmclaim_prov").get("wifi") is None
        assert get_status(c)["sta_state"] == 1
        assert set_config(c, b"rmbench", b"bench-pass") == 0
        assert apply(c) == 0
        assert wait_status(c)["sta_state"] == 0
        device.proc.wait(10)
    assert report(device)["done"] is True
    assert device.nvs("rmclaim_prov")["wifi"] == b"\x07rmbenchbench-pass"


def test_token_board_has_no_node_id_to_give_yet(
    mpy: Interpreter, deployed: list[Path], client: Peer, tmp_path: Path
) -> None:
    cfg = {"mode": "token", "access_token": "tok"}
    with running(mpy, deployed, tmp_path, cfg=cfg) as device:
        c = Client(device, client)
        c.handshake()
        assoc = {"msg": 0, "cmd_set_user_mapping": {"UserID": "u", "SecretKey": "k"}}
        reply = c.call("cloud_user_assoc", "RMakerConfigPayload", assoc)
        assert reply["resp_set_user_mapping"] == {"Status": 2, "NodeId": ""}  # InvalidState
    assert device.nvs("rmclaim_map") == {}


def raw(address: tuple[str, int], data: bytes, timeout: float = 5.0) -> int:
    """Send data on a new connection: the HTTP status of what comes back (0: none)."""
    with socket.create_connection(address, timeout=timeout) as s:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)  # all sent: a short body is cut short, not slow
        got = b""
        while b"\r\n\r\n" not in got:
            try:
                chunk = s.recv(4096)
            except (TimeoutError, ConnectionResetError):
                break
            if not chunk:
                break
            got += chunk
    return int(got.split(b" ", 2)[1]) if got.startswith(b"HTTP/1.1 ") else 0


def post(endpoint: str, body: bytes, *headers: str, length: int | None = None) -> bytes:
    n = len(body) if length is None else length
    lines = [f"POST /{endpoint} HTTP/1.1", "Host: 192.168.4.1", f"Content-Length: {n}"]
    return ("\r\n".join([*lines, *headers]) + "\r\n\r\n").encode() + body


ENDPOINTS = ("prov-config", "prov-scan", "prov-ctrl", "cloud_user_assoc", "ch_resp")


def test_malformed_requests_on_every_endpoint(
    mpy: Interpreter, deployed: list[Path], client: Peer, tmp_path: Path
) -> None:
    rng = __import__("random").Random(11)
    with running(mpy, deployed, tmp_path) as device:
        address = device.address
        garbage: list[int] = []
        for _ in range(3):
            got: list[int] = []
            for endpoint in ENDPOINTS:
                # No session (no cookie, a stale one), bad lengths, huge bodies.
                got.append(raw(address, post(endpoint, b"\x08\x00")))
                got.append(raw(address, post(endpoint, b"\x08\x00", "Cookie: session=1")))
                got.append(raw(address, post(endpoint, b"", length=0)))
                got.append(raw(address, post(endpoint, b"\x08", length=-1)))
                got.append(raw(address, post(endpoint, b"", length=4097)))
                got.append(raw(address, post(endpoint, b"abc", length=40)))
                # In an established session: garbage ciphertext (it decrypts to random bytes,
                # which may even be a valid message), and valid ciphertext of garbage, of
                # truncated and of wrongly typed messages (refused, ending the session).
                c = Client(device, client)
                c.handshake()
                status, _ = c.post(endpoint, rng.randbytes(rng.randrange(1, 300)))
                garbage.append(status)
                c.conn.close()
                for body in (
                    b"\xff" * rng.randrange(1, 40),  # a varint that never ends
                    b"\x08\x02\x62\xff",  # msg 2, then a field 12 longer than the message
                    b"\x08\x02\x62\x02\x0a",  # cmd_set_config with its ssid cut short
                    b"\x0a\x01\x00",  # msg with the wrong wire type
                    b"\x08\x09",  # a command no endpoint has
                ):
                    c = Client(device, client)
                    c.handshake()
                    status, _ = c.post(endpoint, client.call("encrypt", data=body))
                    got.append(status)
                    c.conn.close()
            # A second client takes over (one session at a time, as protocomm): the first
            # one's cookie is stale then, and starts a session of its own, not established.
            first = Client(device, client)
            first.handshake()
            first_peer_state = client.call("encrypt", data=b"\x08\x00")
            second = Client(device, client)
            second.handshake()
            first.conn.close()
            status, _ = first.post("prov-config", first_peer_state)
            got.append(status)
            second.conn.close()
            second = Client(device, client)
            second.handshake()
            assert get_status(second)["sta_state"] == 1
            assert all(s in (400, 411, 413, 500) for s in got), str(got)
            assert all(s in (200, 500) for s in garbage), str(garbage)
            assert device.nvs("rmclaim_prov").get("wifi") is None
            assert device.nvs("rmclaim_map") == {}
        # It still provisions.
        c = Client(device, client)
        c.handshake()
        assert set_config(c, b"rmbench", b"bench-pass") == 0
        assert apply(c) == 0
        assert wait_status(c)["sta_state"] == 0
        device.proc.wait(10)
    final = report(device)
    assert final["done"] is True
    heap = dict(final["heap"])
    # GC heap in use after each request (after a collection): bounded, and not growing from
    # round to round (the interpreter's own 64 bytes allowed, as in test_httpd).
    assert max(heap.values()) - min(heap.values()) < 12 * 1024, heap
    per_round = len(ENDPOINTS) * (6 + 6 * 3) + 9
    marks = sorted(heap)
    assert len(marks) > 2 * per_round
    assert heap[marks[2 * per_round]] - heap[marks[per_round]] <= 64 + 32 * 4, heap


RUN = r"""
import json, sys
import rmboot
from rmprov import field
from rmprov.errors import ProvError
import network
class LED:
    def __init__(self): self.states = []; self.changes = 0; self.on = None
    def state(self, name): self.states.append(name)
    def set(self, on):
        if on != self.on: self.changes += 1; self.on = on
led = LED()
lines = []
try:
    report = lambda step, outcome, fields: lines.append([step, outcome, dict(fields)])
    field.run(json.loads(sys.stdin.readline()), led, report, rmboot.wifi_failure)
    out = "returned"
except ProvError as e:
    out = str(e)
print(json.dumps({"out": out, "lines": lines, "led": [led.states, led.changes, led.on],
                  "ap": network.WLAN(network.WLAN.IF_AP).active()}))
"""


def test_the_soft_ap_closes_after_its_timeout(
    mpy: Interpreter, deployed: list[Path], tmp_path: Path
) -> None:
    board = create_board(tmp_path / "t", "esp32s3", name="timeout", softap_port=free_port())
    # No prov_pop: the pop is made from the board's random bytes, as ESP RainMaker does.
    cfg = {**CFG, "prov_timeout_s": 1, "prov_name": "MyLamp", "prov_pop": None}
    env = {"MICROPYPATH": ":".join(str(p) for p in deployed)}
    out = board.run(mpy, RUN, stdin=json.dumps(cfg) + "\n", env=env)
    got = json.loads(out.strip().splitlines()[-1])
    assert got["out"] == (
        "provisioning: no working Wi-Fi credentials within 1 s; soft-AP MyLamp closed"
    )
    random = board.nvs()["rmaker_creds"]["random"]
    assert isinstance(random, bytes) and len(random) == 64
    assert got["lines"] == [
        ["provisioning", "wait", {"ssid": "MyLamp", "pop": random[:4].hex(), "sec": 1}]
    ]
    states, changes, on = got["led"]
    assert states == ["provisioning"] and changes >= 8 and on is False  # fast blink, then off
    assert got["ap"] is False
    assert board.radio_off_urandom() == []  # the pop's random bytes: made with the radio on
    # The claim keeps them (the pop on the label stays right): its key is made beside them.
    key = "from rmclaim import store\nstore.Store().load_or_create_key()\nprint('made')"
    assert board.run(mpy, key, env=env).strip() == "made"
    assert board.nvs()["rmaker_creds"]["random"] == random
    assert "client_key" in board.nvs()["rmaker_creds"]


# The firmware's own step: rmboot.provision() on a board with no Wi-Fi in its config, then what
# it leaves on the heap for the claim.
BOOT = r"""
import gc, json, sys
import rmboot
class LED:
    def state(self, name): pass
    def set(self, on): pass
cfg = json.loads(sys.stdin.readline())
# What the boot has loaded anyway before the claim (the doubles stand for built-in modules),
# and the names (qstrs) of what provisioning loads: interned once, kept for good whatever
# happens to the modules; the test is whether the modules themselves stay.
import rmclaim, network, socket, esp32, select, hashlib, binascii, _boardsim
for m in ("rmprov.field", "rmprov.endpoints", "rmprov.httpd", "rmclaim.store", "rmclaim.chip"):
    __import__(m)
rmboot._unload("store")
rmboot._unload("chip")
network.WLAN(network.WLAN.IF_STA).status()  # the doubles' own modules, loaded per call
for ns in ("rmclaim_prov", "rmclaim_map", "rmaker_creds"):  # one handle each per boot
    try:
        rmclaim.nvs(ns).get_i32("x")
    except OSError:
        pass
for m in list(sys.modules):
    if m.startswith("rmprov"):
        sys.modules.pop(m)
m = None
gc.collect()
before = gc.mem_alloc()
rmboot.provision(cfg, LED())
def clobber(n):  # overwrite the stack the call used: the collector scans it conservatively
    a = b = c = d = e = f = g = h = 0
    if n:
        clobber(n - 1)
clobber(30)
gc.collect()
grew = gc.mem_alloc() - before
mods = sorted(m for m in sys.modules if m.startswith("rmprov") or m.startswith("rmclaim."))
mods.remove("rmclaim.errors")  # the package's own, always there
joined = network.WLAN(network.WLAN.IF_STA).isconnected()
print(json.dumps({"grew": grew, "modules": mods,
                  "ssid": cfg["wifi_ssid"].decode(), "joined": joined}))
"""


def test_the_firmware_step_leaves_no_provisioning_module_for_the_claim(
    mpy: Interpreter, deployed: list[Path], client: Peer, tmp_path: Path
) -> None:
    board = create_board(tmp_path / "boot", "esp32s3", name="boot", softap_port=free_port())
    cfg = {**CFG, "wifi_ssid": None, "wifi_password": None}
    env = dict(os.environ, RMBENCH_BOARD_DIR=str(board.directory))
    env["MICROPYPATH"] = ":".join(str(p) for p in deployed)
    script = tmp_path / "boot.py"
    script.write_text(BOOT)
    heap = mpy.board_heap(get_profile("esp32s3").gc_heap)
    with subprocess.Popen(
        [*mpy.argv, "-X", f"heapsize={heap}", str(script)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    ) as proc:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(json.dumps(cfg) + "\n")
        proc.stdin.flush()
        wait = proc.stdout.readline()
        assert wait.startswith("rmclaim: step=provisioning wait ssid=PROV_"), wait
        c = Client(Device(board, proc), client)
        c.handshake()
        assert set_config(c, b"rmbench", b"bench-pass") == 0
        assert apply(c) == 0
        assert wait_status(c)["sta_state"] == 0
        out = proc.communicate(timeout=30)[0].splitlines()
    assert out[0].startswith("rmclaim: step=provisioning ok ms=")
    got = json.loads(out[-1])
    assert got["modules"] == []  # rmprov gone, and what it loaded of rmclaim
    assert (got["ssid"], got["joined"]) == ("rmbench", True)
    # What stays is small (the credentials, some qstrs, the collector's slack, measured at 1.6
    # KB at 32 bits): less than any of rmprov's big modules (pb, proto, httpd: 4.5 KB and up),
    # and a fraction of the 30 KB they take together.
    assert got["grew"] < (2048 if mpy.bits == 32 else 3072), got
