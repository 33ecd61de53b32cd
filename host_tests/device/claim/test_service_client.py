"""rmclaim.api: requests byte for byte as the firmware and apps send them; replies mapped."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from rmbench.micropython import Interpreter
from rmbench.profiles import all_profiles

from .support import LocalServer, issue_server, make_ca, read_request, reply, run_device, serving

CSR = (
    "-----BEGIN CERTIFICATE REQUEST-----\n"
    "MIHGMG4CAQAwDDEKMAgGA1UEAwwBQTBZMBMGByqGSM49AgEGCCqGSM49AwEH\n"
    "A0IABA==\n-----END CERTIFICATE REQUEST-----\n"
)
CERT = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"

# Replies by request path, in order; the server answers on one kept-alive connection.
REPLIES = {
    "/claim/initiate": [
        b'{"auth_id":"A1b2","challenge":"chAL1enge"}',
        b'{"node_id":"VtXfecXiRKazHoBZkkLAHX"}',
        b'{"auth_id":"x"}',
        b'{"auth_id":"' + b"a" * 64 + b'","challenge":"c"}',
        b'{"auth_id":5,"challenge":"c"}',
        b"[1]",
    ],
    "/claim/verify": [
        json.dumps({"certificate": CERT}).encode(),
        json.dumps({"certificate": CERT, "mqtt_host": "mqtt.local"}).encode(),
        b'{"certificate":"not pem"}',
    ],
}


def _scripted(sock: socket.socket, srv: LocalServer) -> None:
    while (req := read_request(sock)) is not None:
        srv.requests.append(req)
        path = req.split(b" ")[1].decode().split("?")[0]
        sock.sendall(reply(200, REPLIES[path].pop(0)))


CLIENT = """
from rmclaim import api, config, https
cfg = config.load({"service_url": ARGS["url"], "ca": ARGS["ca"], "matter": ARGS["matter"]})

class Service:
    # The claiming API over one https.Client (initiate and verify share a TLS session while the
    # server keeps it open), as rmclaim.exchange drives it, without its heap phases.
    def __init__(self, cfg):
        self.http = https.Client(cfg.service_url, cfg.ca, cfg.timeout_s, cfg.allow_insecure_http)
        self.matter = cfg.matter

    def close(self):
        self.http.close()

    def _send(self, req):
        path, headers, body = req
        return self.http.request("POST", path, body, headers)

    def initiate_self(self, mac, platform):
        return api.initiate_reply(self._send(api.initiate_request(mac, platform)))

    def initiate_token(self, mac, platform, token):
        return api.initiate_reply(self._send(api.initiate_request(mac, platform, token)), token)

    def verify_self(self, auth_id, response, csr):
        req = api.verify_request(csr, self.matter, None, auth_id, response)
        return api.verify_reply(self._send(req))

    def verify_token(self, csr, token):
        return api.verify_reply(self._send(api.verify_request(csr, self.matter, token)))

svc = Service(cfg)
res = {}
def call(name, fn, *args):
    try:
        r = fn(*args)
        if isinstance(r, api.VerifyReply):
            r = [r.certificate, r.mqtt_host, r.mqtt_cred_host]
        res[name] = {"ok": r}
    except Exception as e:
        res[name] = err(e)
call("init_self", svc.initiate_self, "7CDFA1E25EA0", "esp32s3")
call("verify_self", svc.verify_self, "A1b2", "AB" * 64, ARGS["csr"])
call("init_token", svc.initiate_token, "7CDFA1E25EA0", "esp32", "tok en/1")
call("verify_token", svc.verify_token, ARGS["csr"], "tok en/1")
call("verify_bad_cert", svc.verify_self, "A", "B", ARGS["csr"])
call("no_challenge", svc.initiate_self, "7CDFA1E25EA0", "esp32s3")
call("long_auth_id", svc.initiate_self, "7CDFA1E25EA0", "esp32s3")
call("number_auth_id", svc.initiate_self, "7CDFA1E25EA0", "esp32s3")
call("not_object", svc.initiate_self, "7CDFA1E25EA0", "esp32s3")
res["handshakes"] = svc.http.handshakes
res["hmac"] = api.challenge_response(bytes(range(16)), ARGS["challenge"])
svc.close()
out(res)
"""


@pytest.fixture(scope="module")
def exchange(mpy: Interpreter) -> dict[str, Any]:
    ca = make_ca("service CA")
    srv = LocalServer(_scripted, issue_server(ca))
    with serving(srv):
        args = {
            "url": srv.url(),
            "ca": ca.cert_pem,
            "matter": True,
            "csr": CSR,
            "challenge": "chAL1enge/é",
        }
        res: dict[str, Any] = run_device(mpy, CLIENT, args)
    res["_requests"] = srv.requests
    res["_port"] = srv.port
    return res


def _split(req: bytes) -> tuple[list[str], bytes]:
    head, _, body = req.partition(b"\r\n\r\n")
    return head.decode().split("\r\n"), body


def test_self_claim_requests_as_the_firmware_sends_them(exchange: dict[str, Any]) -> None:
    head, body = _split(exchange["_requests"][0])
    port = exchange["_port"]
    assert head == [
        "POST /claim/initiate HTTP/1.1",
        f"Host: localhost:{port}",
        "Content-Length: 48",
        "User-Agent: rmclaim/0.1.0 (MicroPython)",
    ]  # no Authorization, no Content-Type
    assert body == b'{"mac_addr":"7CDFA1E25EA0","platform":"esp32s3"}'
    assert exchange["init_self"]["ok"] == ["A1b2", "chAL1enge"]
    head, body = _split(exchange["_requests"][1])
    assert head[0] == "POST /claim/verify?matter=true HTTP/1.1"
    assert not any(h.lower().startswith(("authorization", "content-type")) for h in head)
    # Field order as the firmware's; the CSR without its final newline, each newline as \n.
    pem = CSR.rstrip("\n").replace("\n", "\\n")
    assert (
        body
        == (
            '{"auth_id":"A1b2","challenge_response":"' + "AB" * 64 + '","csr":"' + pem + '"}'
        ).encode()
    )
    assert exchange["verify_self"]["ok"] == [CERT, None, None]


def test_token_claim_requests_as_the_apps_send_them(exchange: dict[str, Any]) -> None:
    head, body = _split(exchange["_requests"][2])
    assert "Authorization: tok en/1" in head  # the raw token, no "Bearer"
    assert "Content-Type: application/json" in head
    assert body == b'{"mac_addr":"7CDFA1E25EA0","platform":"esp32"}'
    assert exchange["init_token"]["ok"] == "VtXfecXiRKazHoBZkkLAHX"
    head, body = _split(exchange["_requests"][3])
    assert "Authorization: tok en/1" in head
    assert json.loads(body) == {"csr": CSR.rstrip("\n"), "send_mqtt_host": True}
    assert body.endswith(b'","send_mqtt_host":true}')
    assert exchange["verify_token"]["ok"] == [CERT, "mqtt.local", None]


def test_one_tls_session_for_every_request(exchange: dict[str, Any]) -> None:
    assert exchange["handshakes"] == 1


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("verify_bad_cert", "service: verify reply: certificate is not PEM"),
        ("no_challenge", "wanted challenge as a string of 1..129 characters, got None"),
        ("long_auth_id", "wanted auth_id as a string of 1..63 characters, got 'str'"),
        ("number_auth_id", "wanted auth_id as a string of 1..63 characters, got 5"),
        ("not_object", "service: initiate reply is not a JSON object"),
    ],
)
def test_unusable_success_replies(exchange: dict[str, Any], name: str, text: str) -> None:
    r = exchange[name]
    assert r["kind"] == "MalformedReply" and r["retryable"] is True
    assert text in r["error"]


def test_challenge_response_is_uppercase_hmac_sha512(exchange: dict[str, Any]) -> None:
    expected = hmac.new(bytes(range(16)), "chAL1enge/é".encode(), hashlib.sha512).hexdigest()
    assert exchange["hmac"] == expected.upper() and len(expected) == 128


# What the ESP RainMaker firmware sends, read from its source (ESP RainMaker v1.16.0,
# components/esp_rainmaker/src/core/esp_rmaker_claim.c), one rule per field:
# - claim/initiate, self and assisted claims alike (generate_claim_init_request): snprintf
#   "{\"mac_addr\":\"%02X%02X%02X%02X%02X%02X\",\"platform\":\"%s\"}" of the base MAC
#   (esp_read_mac ESP_MAC_BASE) and CONFIG_IDF_TARGET: two strings.
# - claim/verify of a self-claim (handle_self_claim_init_response, json_gen): "auth_id", the
#   string initiate returned; "challenge_response", each of the 64 bytes of HMAC-SHA512(the
#   16-byte OPTIONAL_UNIQUE_ID, the challenge string) as snprintf "%02X"; "csr", the PEM after
#   escape_new_line (its one final newline dropped, "\n" escapes); "node_policies" only when
#   built with CONFIG_ESP_RMAKER_CLAIM_VIDEOSTREAM_SUPPORT (not modelled here).
# - claim/verify of an assisted claim, relayed with the user's token (handle_assisted_claim_
#   init_response): "csr" as above and "send_mqtt_host", a JSON true (json_gen_obj_set_bool).
# The expected objects are built from these rules with hashlib/hmac, not from rmclaim.
BODIES = """
import sys

class FakeMachine:
    # The base MAC as machine.unique_id() gives it on ESP32 ports.
    @staticmethod
    def unique_id():
        return bytes.fromhex(ARGS["mac"])

sys.modules["machine"] = FakeMachine
from rmclaim import api, chip
mac = chip.base_mac()
platform = chip.lookup(ARGS["machine"]).platform
uid = bytes.fromhex(ARGS["uid"])
res = {
    "initiate_self": api.initiate_request(mac, platform)[2].decode(),
    "verify_self": api.verify_request(
        ARGS["csr"], False, None, ARGS["auth_id"],
        api.challenge_response(uid, ARGS["challenge"]))[2].decode(),
    "initiate_token": api.initiate_request(mac, platform, "tok")[2].decode(),
    "verify_token": api.verify_request(ARGS["csr"], False, "tok")[2].decode(),
}
out(res)
"""


def _csr_pem(cn: str) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    csr = x509.CertificateSigningRequestBuilder().subject_name(name).sign(key, hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.PEM).decode()


def _typed(obj: dict[str, Any]) -> dict[str, tuple[str, Any]]:
    # Compared with its JSON types: in Python True == 1, in JSON true is not 1.
    return {k: (type(v).__name__, v) for k, v in obj.items()}


@pytest.mark.parametrize("family", ["esp32s3", "esp32c3"])
def test_request_bodies_hold_what_the_firmware_sends(interp: Interpreter, family: str) -> None:
    mac = bytes.fromhex("7cdfa1e25ea0")
    uid = bytes(range(0xF0, 0x100))
    challenge = "chAL1enge/\u00e9-" + "x" * 100  # up to 128 characters, any text
    csr = _csr_pem(mac.hex().upper())
    machine = all_profiles()[family].machine
    args = {"mac": mac.hex(), "machine": machine, "uid": uid.hex(), "challenge": challenge}
    res = run_device(interp, BODIES, {**args, "csr": csr, "auth_id": "AuthId-1"})
    got = {name: json.loads(body) for name, body in res.items()}
    firmware_mac = "".join(format(b, "02X") for b in mac)  # printf "%02X", Python spelling
    firmware_csr = csr[:-1] if csr.endswith("\n") else csr  # escape_new_line
    digest = hmac.new(uid, challenge.encode(), hashlib.sha512).digest()
    firmware_initiate = {"mac_addr": firmware_mac, "platform": family}  # CONFIG_IDF_TARGET
    assert _typed(got["initiate_self"]) == _typed(firmware_initiate)
    assert _typed(got["initiate_token"]) == _typed(firmware_initiate)
    assert _typed(got["verify_self"]) == _typed(
        {
            "auth_id": "AuthId-1",
            "challenge_response": "".join(format(b, "02X") for b in digest),
            "csr": firmware_csr,
        }
    )
    assert _typed(got["verify_token"]) == _typed({"csr": firmware_csr, "send_mqtt_host": True})


MAP = """
from rmclaim import api
res = []
for step, status, body, ra in ARGS:
    e = api.error_for(step, status, body.encode(), ra)
    res.append([type(e).__name__, e.retryable, e.retry_after, e.status, str(e)])
out(res)
"""

# The local service's texts (as the real service's, where known) -> the class and retryability.
ERRORS: list[tuple[list[Any], list[Any]]] = [
    (
        [
            "verify",
            403,
            '{"status":"failure","description":"User does not have available quota. '
            'Please contact Administrator"}',
            None,
        ],
        ["QuotaExceeded", True, None, 403],
    ),
    (["initiate", 503, '{"status":"failure"}', 30], ["ServiceUnavailable", True, 30, 503]),
    (["verify", 500, "Internal Server Error", None], ["ServiceUnavailable", True, None, 500]),
    (["verify", 429, "", 2], ["ServiceUnavailable", True, 2, 429]),
    (
        ["verify", 401, '{"status":"failure","description":"challenge_response is wrong"}', None],
        ["ChallengeRejected", True, None, 401],
    ),
    (
        [
            "verify",
            401,
            '{"status":"failure","description":"auth_id has expired; call /claim/initiate again"}',
            None,
        ],
        ["ChallengeRejected", True, None, 401],
    ),
    (
        ["initiate", 400, '{"status":"failure","description":"Platform is invalid"}', None],
        ["PlatformRejected", False, None, 400],
    ),
    (
        [
            "initiate",
            403,
            '{"status":"failure","description":"MAC 7CDFA100033B is not '
            'registered for self-claiming"}',
            None,
        ],
        ["PlatformRejected", False, None, 403],
    ),
    (["initiate", 401, '{"message":"Unauthorized"}', None], ["Unauthorized", False, None, 401]),
    (
        ["verify", 400, '{"status":"failure","description":"csr signature is invalid"}', None],
        ["ServiceError", False, None, 400],
    ),
]


def test_error_replies_mapped(interp: Interpreter) -> None:
    res = run_device(interp, MAP, [args for args, _ in ERRORS])
    for (args, want), got in zip(ERRORS, res, strict=True):
        assert got[:4] == want, args
        assert got[4].startswith(f"service: {args[0]} refused (HTTP {args[1]}): ")
    assert res[0][4] == (
        "service: verify refused (HTTP 403): User does not have available quota. "
        "Please contact Administrator"
    )
    assert res[2][4] == "service: verify refused (HTTP 500): Internal Server Error"
    assert res[3][4] == "service: verify refused (HTTP 429): (empty reply)"
