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

With MICROPYTHON32 (a 32-bit Unix port: objects the size of an ESP32's), the smallest GC heap
a whole provisioning passes in, in 4 KB steps, twice at each size (the heap's layout varies
with the random keys), with rmprov.field run as the firmware runs it (rmboot loaded, the
board doubles and the libraries as .mpy; the doubles take about 7 KB a board's built-in modules
do not): field_min_heap_kb_32 for a board that will self-claim (session, cloud_user_assoc,
Wi-Fi, apply, joined), field_chresp_min_heap_kb_32 for a claimed board that also signs a
challenge.
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
from rmbench import FIRMWARE_DIR, LIB_DIR
from rmbench.board import VirtualBoard
from rmbench.boardsim import DEFAULT_WIFI, SIM_DIR
from rmbench.deploy import ClaimConfig, deploy
from rmbench.micropython import HOSTSHIMS_DIR, compile_library, compile_package, micropython32

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

    def call(self, endpoint: str, schema: Any, msg: dict[str, Any]) -> dict[str, Any]:
        pb = self.pb
        body = self.stream.update(pb.encode(schema, msg))
        reply: dict[str, Any] = pb.decode(schema, self.stream.update(self.post(endpoint, body)))
        return reply

    def wifi(self, msg: dict[str, Any]) -> dict[str, Any]:
        return self.call("prov-config", self.proto.WIFI_CONFIG, msg)


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
    board.expect_status("claim", "fail", since=since, timeout=60)  # main.py has ended
    return {
        "field_apply_to_stored_ms": float(ok.fields["apply_ms"]),
        "field_apply_to_stored_host_ms": host_ms,
        "field_session_ms": session_ms,
        "field_soft_ap_to_joined_ms": (time.monotonic() - t_open) * 1000,
    }


# The device for the heap figures: rmprov.field as the firmware steps it, with its report.
DEVICE = r"""
import json, sys
ARGS = json.loads(sys.stdin.readline())
if ARGS.get("key_pem"):
    from rmclaim import store
    store.Store().save_key(ARGS["key_pem"])
    store.Store().save_identity("(a certificate)", "VtXfecXiRKazHoBZkkLAHX", None, None)
    store = None
    from rmprov.field import unload
    unload("store")
import rmboot
from rmprov import field
p = field.Provisioner(ARGS["cfg"], lambda *a: sys.stdout.write("wait\n"), rmboot.wifi_failure)
p.start()
while not p.step(50):
    pass
p.close()
print("done", p.server.last_error)
"""
CFG = {
    "prov_name": None,
    "prov_sec": 1,
    "prov_pop": POP,
    "prov_timeout_s": 120,
    "wifi_timeout_s": 2,
    "mode": "auto",
    "access_token": None,
}


def _provisions(interp: Any, path: list[Path], work: Path, heap: str, claimed: bool) -> str:
    """ "" when a whole provisioning passes with a GC heap of `heap`, else why not."""
    import json
    import os
    import subprocess

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from rmbench.boardsim import create_board
    from rmbench.vboard.manager import free_port

    board = create_board(
        work / f"b-{heap}-{time.monotonic_ns()}", "esp32s3", name="heap", softap_port=free_port()
    )
    args: dict[str, Any] = {"cfg": CFG}
    if claimed:
        key = ec.generate_private_key(ec.SECP256R1())
        args["key_pem"] = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        ).decode()
    env = dict(os.environ, RMBENCH_BOARD_DIR=str(board.directory))
    env["MICROPYPATH"] = ":".join(map(str, path))
    script = work / "device.py"
    script.write_text(DEVICE)
    with subprocess.Popen(
        [*interp.argv, "-X", f"heapsize={heap}", str(script)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    ) as proc:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(json.dumps(args) + "\n")
        proc.stdin.flush()
        try:
            first = proc.stdout.readline().strip()
            if first != "wait":
                return f"no soft-AP: {first!r}"
            client = Client(f"127.0.0.1:{board.softap_port}", POP)
            client.handshake()
            if claimed:
                reply = client.call(
                    "ch_resp",
                    client.proto.CHAL_RESP,
                    {"msg": 0, "cmdChallengeResponsePayload": {"payload": b"challenge"}},
                )
                if reply.get("status") != 0:
                    return f"ch_resp: {reply}"
            assoc = {"msg": 0, "cmd_set_user_mapping": {"UserID": "u", "SecretKey": "k"}}
            client.call("cloud_user_assoc", client.proto.USER_MAPPING, assoc)
            ssid, password = (s.encode() for s in DEFAULT_WIFI)
            client.wifi({"msg": 2, "cmd_set_config": {"ssid": ssid, "passphrase": password}})
            if client.wifi({"msg": 4})["resp_apply_config"]["status"] != 0:
                return "apply refused"
            for _ in range(100):
                status = client.wifi({"msg": 0, "cmd_get_status": {}})["resp_get_status"]
                if status["sta_state"] != 1:
                    break
                time.sleep(0.1)
            if status["sta_state"] != 0:
                return f"not joined: {status}"
            out, _ = proc.communicate(timeout=30)
        except (OSError, RuntimeError, KeyError, http.client.HTTPException) as e:
            return f"{type(e).__name__}: {e}"
        finally:
            if proc.poll() is None:
                proc.kill()
    return "" if proc.returncode == 0 and out.strip() == "done None" else f"ended: {out!r}"


def min_heap_kb(interp: Any, path: list[Path], work: Path, claimed: bool) -> int:
    """The smallest heap (KB, 4 KB steps down from 128) a provisioning passes in twice."""
    smallest = 0
    for kb in range(128, 32, -4):
        # Twice: the second run only when the first passed; why = the first failure.
        why = _provisions(interp, path, work, f"{kb}K", claimed) or _provisions(
            interp, path, work, f"{kb}K", claimed
        )
        if why:
            if not smallest:
                raise RuntimeError(f"bench_field: no provisioning at {kb} KB: {why}")
            break
        smallest = kb
    return smallest


def main() -> None:
    runs: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as work:
        board = VirtualBoard.start("esp32s3", name="bench-field", root=Path(work))
        try:
            # No service is reached here: the claim after provisioning fails, once, and
            # main.py ends (the next run's REPL commands find no backoff under way).
            config = ClaimConfig(
                service_url="http://127.0.0.1:9",
                allow_insecure_http=True,
                prov_pop=POP,
                max_attempts=1,
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
    interp = micropython32()
    if interp is None:
        print("(set MICROPYTHON32 to a 32-bit Unix port for the heap figures)")
    else:
        with tempfile.TemporaryDirectory() as work:
            root = Path(work)
            compile_package(SIM_DIR, root / "sim")
            compile_library(root / "lib")
            compile_package(FIRMWARE_DIR, root / "fw")
            path = [root / "sim", root / "lib", root / "fw"]
            heap: dict[str, float] = {
                "field_min_heap_kb_32": min_heap_kb(interp, path, root, False),
                "field_chresp_min_heap_kb_32": min_heap_kb(interp, path, root, True),
            }
        print(f"  smallest 32-bit heap, a fresh board    {heap['field_min_heap_kb_32']:8.0f} KB")
        print(
            f"  ... a claimed one, with ch_resp        "
            f"{heap['field_chresp_min_heap_kb_32']:8.0f} KB"
        )
        figures.update(heap)
    record(figures)
