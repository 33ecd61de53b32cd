"""Field provisioning on a virtual ESP32-S3: CmdApplyConfig to stored credentials
(`make bench BENCH=field`).

The board runs the deployed firmware with a config that names no Wi-Fi, so each boot opens its
soft-AP (what provisioning saved is forgotten first). A security 1 client here (X25519 and
AES-256-CTR from `cryptography`, the messages encoded with rmprov.pb: the tests check the board
against esp-rainmaker-cli's own client; this one only has to be quick and steady) opens a
session, sends the bench Wi-Fi's credentials and applies them. Figures, medians over RUNS boots:
- field_apply_to_stored_ms: the board's own count from the CmdApplyConfig request to the
  credentials written to NVS, once it has joined (the "provisioning ok" line's apply_ms): the
  join, as the virtual board's Wi-Fi paces it, and one NVS write;
- field_apply_to_stored_host_ms: the same seen from the host: the apply request sent to the
  credentials found in the board's NVS file;
- field_session_ms: the security 1 handshake (2 requests; the board's X25519 on the Unix port);
- field_soft_ap_to_joined_ms: the "provisioning wait" line to the "provisioning ok" line, the
  client's pace included (it asks for the status every 100 ms).
"""

from __future__ import annotations

import hashlib
import http.client
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from rmbench import LIB_DIR
from rmbench.board import VirtualBoard
from rmbench.boardsim import DEFAULT_WIFI
from rmbench.deploy import ClaimConfig, deploy
from rmbench.micropython import HOSTSHIMS_DIR

from benchmarks.record import record

RUNS = 5
POP = "abcd1234"
FORGET = """
import rmclaim
try:
    rmclaim.nvs("rmclaim_prov").erase_key("wifi")
except OSError:
    pass
"""


class Client:
    """A security 1 protocomm client over HTTP (one connection, the session cookie kept)."""

    def __init__(self, address: str, pop: str) -> None:
        sys.path[:0] = [str(LIB_DIR), str(HOSTSHIMS_DIR)]  # rmprov.pb on CPython
        from rmprov import pb, proto  # type: ignore[import-not-found]

        self.pb: Any = pb
        self.proto: Any = proto
        host, port = address.split(":")
        self.conn = http.client.HTTPConnection(host, int(port), timeout=30)
        self.cookie = ""
        self.pop = pop.encode()
        self.stream: Any = None

    def post(self, endpoint: str, body: bytes) -> bytes:
        headers = {"Content-type": "application/x-www-form-urlencoded", "Accept": "text/plain"}
        if self.cookie:
            headers["Cookie"] = self.cookie
        self.conn.request("POST", "/" + endpoint, body, headers)
        reply = self.conn.getresponse()
        data = reply.read()
        if reply.status != 200:
            raise RuntimeError(f"{endpoint}: HTTP {reply.status}")
        cookie = reply.getheader("Set-Cookie")
        if cookie:
            self.cookie = cookie.split(";")[0]
        return data

    def handshake(self) -> None:
        pb, proto = self.pb, self.proto
        key = X25519PrivateKey.generate()
        mine = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        cmd0 = {"sec_ver": 1, "sec1": {"msg": 0, "sc0": {"client_pubkey": mine}}}
        sr0 = pb.decode(proto.SESSION, self.post("prov-session", pb.encode(proto.SESSION, cmd0)))
        theirs = sr0["sec1"]["sr0"]["device_pubkey"]
        shared = key.exchange(X25519PublicKey.from_public_bytes(theirs))
        digest = hashlib.sha256(self.pop).digest()
        session_key = bytes(a ^ b for a, b in zip(shared, digest, strict=True))
        iv = sr0["sec1"]["sr0"]["device_random"]
        self.stream = Cipher(algorithms.AES(session_key), modes.CTR(iv)).encryptor()
        verify = self.stream.update(theirs)
        cmd1 = {"sec_ver": 1, "sec1": {"msg": 2, "sc1": {"client_verify_data": verify}}}
        sr1 = pb.decode(proto.SESSION, self.post("prov-session", pb.encode(proto.SESSION, cmd1)))
        if self.stream.update(sr1["sec1"]["sr1"]["device_verify_data"]) != mine:
            raise RuntimeError("the board's proof does not match")

    def wifi(self, msg: dict[str, Any]) -> dict[str, Any]:
        pb, proto = self.pb, self.proto
        body = self.stream.update(pb.encode(proto.WIFI_CONFIG, msg))
        reply: dict[str, Any] = pb.decode(
            proto.WIFI_CONFIG, self.stream.update(self.post("prov-config", body))
        )
        return reply


def _one(board: VirtualBoard) -> dict[str, float]:
    board.exec(FORGET)
    since = board.reset()
    board.expect_status("provisioning", "wait", since=since, timeout=60)
    t_open = time.monotonic()
    client = Client(board.info.softap, POP)
    t0 = time.monotonic()
    client.handshake()
    session_ms = (time.monotonic() - t0) * 1000
    ssid, password = (s.encode() for s in DEFAULT_WIFI)
    client.wifi({"msg": 2, "cmd_set_config": {"ssid": ssid, "passphrase": password}})
    t0 = time.monotonic()
    reply = client.wifi({"msg": 4})
    if reply["resp_apply_config"]["status"] != 0:
        raise RuntimeError(f"apply refused: {reply}")
    while "wifi" not in board.nvs().get("rmclaim_prov", {}):
        if time.monotonic() - t0 > 30:
            raise RuntimeError("the credentials were not stored within 30 s")
        time.sleep(0.005)
    host_ms = (time.monotonic() - t0) * 1000
    while client.wifi({"msg": 0, "cmd_get_status": {}})["resp_get_status"]["sta_state"] != 0:
        time.sleep(0.1)
    ok = board.expect_status("provisioning", "ok", since=since, timeout=60)
    return {
        "field_apply_to_stored_ms": float(ok.fields["apply_ms"]),
        "field_apply_to_stored_host_ms": host_ms,
        "field_session_ms": session_ms,
        "field_soft_ap_to_joined_ms": (time.monotonic() - t_open) * 1000,
    }


def main() -> None:
    runs: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as work:
        board = VirtualBoard.start("esp32s3", name="bench-field", root=Path(work))
        try:
            # No service is reached here: the claim after provisioning fails and waits.
            config = ClaimConfig(
                service_url="http://127.0.0.1:9",
                allow_insecure_http=True,
                prov_pop=POP,
                backoff_base_s=30,
                backoff_cap_s=60,
            )
            deploy(board, config=config)
            for _ in range(RUNS):
                for name, value in _one(board).items():
                    runs.setdefault(name, []).append(value)
        finally:
            board.close()
    figures = {name: round(statistics.median(values), 1) for name, values in runs.items()}
    print(f"virtual ESP32-S3, medians of {RUNS} provisionings (security 1)")
    for label, name in (
        ("CmdApplyConfig to stored credentials", "field_apply_to_stored_ms"),
        ("... seen from the host", "field_apply_to_stored_host_ms"),
        ("security 1 handshake", "field_session_ms"),
        ("soft-AP open to joined", "field_soft_ap_to_joined_ms"),
    ):
        print(f"  {label:38} {figures[name]:8.1f} ms")
    record(figures)
