"""The claiming API over real TLS (server-ca.pem pinned): every behaviour and every refusal."""

from __future__ import annotations

import asyncio
import datetime
import http.client
import json
import re
import secrets
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from rmbench.service import client
from rmbench.service.app import create_app
from rmbench.service.ca import load_or_create_authorities
from rmbench.service.harness import RunningService, running_service
from rmbench.service.logic import ClaimService, Settings
from rmbench.service.store import Store

from .helpers import (
    PrivateKey,
    call,
    challenge_response,
    failure,
    make_csr,
    split_chain,
)

NO_QUOTA = "User does not have available quota. Please contact Administrator"
MAC_TEXT = "mac_addr must be 12 uppercase hex digits with no separators (e.g. 7CDFA100033B)"


def new_mac() -> str:
    return secrets.token_hex(6).upper()


def new_token() -> str:
    return "tok-" + secrets.token_urlsafe(12)


def registered(svc: RunningService) -> tuple[str, bytes]:
    mac, uid = new_mac(), secrets.token_bytes(16)
    svc.register(mac, uid)
    return mac, uid


def initiate_self(svc: RunningService, mac: str, platform: str = "esp32s3") -> dict[str, str]:
    r = call(svc, "POST", "/claim/initiate", {"mac_addr": mac, "platform": platform})
    assert r.status == 200, r.body
    body: dict[str, str] = r.json()
    return body


def initiate_token(svc: RunningService, token: str, mac: str, platform: str = "host") -> str:
    r = call(
        svc,
        "POST",
        "/claim/initiate",
        {"mac_addr": mac, "platform": platform},
        headers={"Authorization": token},
    )
    assert r.status == 200, r.body
    node_id: str = r.json()["node_id"]
    return node_id


def verify_token(
    svc: RunningService, token: str, csr: str, query: str = "", **extra: object
) -> tuple[int, dict[str, str]]:
    r = call(
        svc,
        "POST",
        "/claim/verify" + query,
        {"csr": csr, **extra},
        headers={"Authorization": token},
    )
    body: dict[str, str] = r.json()
    return r.status, body


def check_device_certificate(chain: str, key: PrivateKey, cn: str, claim_ca_pem: str) -> None:
    """What the real service issues (a verify reply seen from it, Oct 2024): the device
    certificate (CN = node id, signed by the claim CA, the device's key) then the CA itself."""
    assert chain.count("-----BEGIN CERTIFICATE-----") == 2
    device, issuer = split_chain(chain)
    assert chain.endswith(claim_ca_pem)
    ca_cert = x509.load_pem_x509_certificate(claim_ca_pem.encode())
    assert issuer == ca_cert
    assert device.subject == x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    assert device.issuer == ca_cert.subject
    device.verify_directly_issued_by(ca_cert)
    assert device.public_key() == key.public_key()
    ku = device.extensions.get_extension_for_class(x509.KeyUsage)
    assert ku.critical
    assert ku.value.digital_signature
    assert not (ku.value.key_cert_sign or ku.value.crl_sign or ku.value.key_encipherment)
    eku = device.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    ski = device.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert ski == x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    aki = device.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == ca_ski.digest
    life = device.not_valid_after_utc - device.not_valid_before_utc
    assert datetime.timedelta(days=4 * 365) <= life <= datetime.timedelta(days=4 * 366)
    now = datetime.datetime.now(datetime.UTC)
    assert device.not_valid_before_utc <= now <= device.not_valid_after_utc


# --- self-claim ---------------------------------------------------------------------------------


def test_self_claim_issues_the_certificate_the_real_service_would(
    svc: RunningService, tmp_path: Path
) -> None:
    mac, uid = registered(svc)
    init = initiate_self(svc, mac)
    assert set(init) == {"auth_id", "challenge"}
    assert re.fullmatch(r"[A-Za-z0-9]{1,63}", init["auth_id"])
    assert re.fullmatch(r"[A-Za-z0-9]{1,128}", init["challenge"])
    csr, key = make_csr(mac)
    body = {
        "auth_id": init["auth_id"],
        "challenge_response": challenge_response(uid, init["challenge"]),
        "csr": csr,
    }
    r = call(svc, "POST", "/claim/verify", body)
    assert r.status == 200, r.body
    # The device un-escapes only \n: no \/, \r or \u escapes in the reply.
    for escape in (b"\\/", b"\\r", b"\\u"):
        assert escape not in r.body
    reply = r.json()
    assert set(reply) == {"certificate"}
    check_device_certificate(reply["certificate"], key, mac, svc.claim_ca_pem)
    # An independent check of the chain: openssl, with the client-auth purpose.
    device_pem = tmp_path / "device.pem"
    device_pem.write_text(reply["certificate"])
    openssl = ["openssl", "verify", "-CAfile", str(svc.claim_ca_file), "-purpose", "sslclient"]
    out = subprocess.run(
        [*openssl, str(device_pem)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0 and out.stdout.strip().endswith(": OK"), out.stdout + out.stderr
    # The service keeps what it issued.
    store = Store.open(svc.state_dir)
    issued = store.certificates(mac)
    store.close()
    assert [pem for _, _, pem in issued] == [reply["certificate"].removesuffix(svc.claim_ca_pem)]


@pytest.mark.parametrize("platform", ["esp32s2", "esp32s3", "esp32c3", "esp32c6", "ESP32H2"])
def test_self_claim_platforms_case_insensitive(svc: RunningService, platform: str) -> None:
    mac, _ = registered(svc)
    first = initiate_self(svc, mac, platform)
    second = initiate_self(svc, mac, platform)
    assert first["auth_id"] != second["auth_id"]
    assert first["challenge"] != second["challenge"]


@pytest.mark.parametrize("platform", ["esp32", "esp32c2", "host", "esp8266", ""])
def test_self_claim_platform_invalid(svc: RunningService, platform: str) -> None:
    mac, _ = registered(svc)
    r = call(svc, "POST", "/claim/initiate", {"mac_addr": mac, "platform": platform})
    assert failure(r) == (400, "Platform is invalid")


def test_self_claim_needs_a_registered_mac(svc: RunningService) -> None:
    mac = new_mac()
    r = call(svc, "POST", "/claim/initiate", {"mac_addr": mac, "platform": "esp32s3"})
    assert failure(r) == (403, f"MAC {mac} is not registered for self-claiming (rmbench register)")


@pytest.mark.parametrize(
    "mac", ["7cdfa100033b", "7C:DF:A1:00:03:3B", "7CDFA100033", "7CDFA100033B0", "7CDFA10003GB"]
)
def test_mac_format(svc: RunningService, mac: str) -> None:
    r = call(svc, "POST", "/claim/initiate", {"mac_addr": mac, "platform": "esp32s3"})
    status, text = failure(r)
    assert status == 400
    assert text == f"{MAC_TEXT}, got {mac!r}"


@pytest.mark.parametrize("content_type", [None, "application/json", "text/plain"])
def test_content_type_is_not_needed(svc: RunningService, content_type: str | None) -> None:
    mac, _ = registered(svc)
    headers = {"Content-Type": content_type} if content_type else {}
    # The firmware sends printf-made JSON with no spaces and no Content-Type.
    raw = f'{{"mac_addr":"{mac}","platform":"esp32c3"}}'.encode()
    r = call(svc, "POST", "/claim/initiate", raw=raw, headers=headers)
    assert r.status == 200
    assert set(r.json()) == {"auth_id", "challenge"}


def _verify_self(svc: RunningService, auth_id: str, response: str, csr: str) -> tuple[int, str]:
    body = {"auth_id": auth_id, "challenge_response": response, "csr": csr}
    r = call(svc, "POST", "/claim/verify", body)
    return r.status, r.body.decode()


def test_self_verify_refusals(svc: RunningService) -> None:
    mac, uid = registered(svc)
    csr, _ = make_csr(mac)
    fake = "A" * 128
    status, text = _verify_self(svc, "NoSuchAuthId", fake, csr)
    assert (status, json.loads(text)["description"]) == (
        401,
        "auth_id is unknown; call /claim/initiate first",
    )
    # A wrong response spends the challenge: the right one afterwards is refused too.
    init = initiate_self(svc, mac)
    assert _verify_self(svc, init["auth_id"], fake, csr) == (
        401,
        '{"status":"failure","description":"challenge_response is wrong"}',
    )
    right = challenge_response(uid, init["challenge"])
    status, text = _verify_self(svc, init["auth_id"], right, csr)
    assert (status, json.loads(text)["description"]) == (
        401,
        "auth_id was already used; call /claim/initiate again",
    )
    # The right HMAC in lower or mixed case is refused: the firmware writes each byte "%02X"
    # (ESP RainMaker v1.16.0 esp_rmaker_claim.c), and so must a device that claims here. So
    # are other lengths and non-hex digits.
    variants: list[Callable[[str], str]] = [
        str.lower,
        lambda r: r[:64] + r[64:].lower(),
        lambda r: r[:126],
        lambda r: r + "00",
        lambda r: "Z" + r[1:],
        lambda r: "\uff10" + r[1:],  # FULLWIDTH DIGIT ZERO: a digit, not a hex digit
    ]
    for variant in variants:
        init = initiate_self(svc, mac)
        right = challenge_response(uid, init["challenge"])
        wrong = variant(right)
        assert wrong != right
        status, text = _verify_self(svc, init["auth_id"], wrong, csr)
        assert (status, json.loads(text)["description"]) == (
            400,
            "challenge_response must be 128 uppercase hex digits",
        ), wrong
        # The challenge was spent by the refused answer: the right one comes too late.
        status, text = _verify_self(svc, init["auth_id"], right, csr)
        assert (status, json.loads(text)["description"]) == (
            401,
            "auth_id was already used; call /claim/initiate again",
        )
    # A replay of a successful verify is refused.
    init = initiate_self(svc, mac)
    right = challenge_response(uid, init["challenge"])
    assert _verify_self(svc, init["auth_id"], right, csr)[0] == 200
    status, text = _verify_self(svc, init["auth_id"], right, csr)
    assert (status, json.loads(text)["description"]) == (
        401,
        "auth_id was already used; call /claim/initiate again",
    )
    # The HMAC of another key.
    init = initiate_self(svc, mac)
    other = challenge_response(bytes(16), init["challenge"])
    assert _verify_self(svc, init["auth_id"], other, csr)[0] == 401
    # The CSR must name the MAC.
    init = initiate_self(svc, mac)
    wrong_csr, _ = make_csr("AABBCCDDEEFF")
    right = challenge_response(uid, init["challenge"])
    status, text = _verify_self(svc, init["auth_id"], right, wrong_csr)
    assert (status, json.loads(text)["description"]) == (
        400,
        f"csr common name 'AABBCCDDEEFF' must be the MAC address {mac}",
    )


def test_self_claim_challenge_expires(tmp_path: Path) -> None:
    with running_service(tmp_path / "svc", extra_args=["--challenge-ttl", "0.2"]) as svc:
        mac, uid = registered(svc)
        init = initiate_self(svc, mac)
        time.sleep(0.4)
        csr, _ = make_csr(mac)
        status, text = _verify_self(
            svc, init["auth_id"], challenge_response(uid, init["challenge"]), csr
        )
        assert (status, json.loads(text)["description"]) == (
            401,
            "auth_id has expired; call /claim/initiate again",
        )


def test_firmware_style_csr_without_final_newline(svc: RunningService) -> None:
    mac, uid = registered(svc)
    init = initiate_self(svc, mac)
    csr, key = make_csr(mac)
    # The firmware drops the final newline and sends the rest with \n escapes.
    raw = (
        f'{{"auth_id":"{init["auth_id"]}","challenge_response":'
        f'"{challenge_response(uid, init["challenge"])}","csr":"'
        + csr.rstrip("\n").replace("\n", "\\n")
        + '"}'
    ).encode()
    r = call(svc, "POST", "/claim/verify", raw=raw)
    assert r.status == 200, r.body
    check_device_certificate(r.json()["certificate"], key, mac, svc.claim_ca_pem)


# --- token (authenticated) claims ---------------------------------------------------------------


def test_token_claim_node_ids(svc: RunningService) -> None:
    alice, bob = new_token(), new_token()
    svc.add_user(alice)
    svc.add_user(bob)
    mac = new_mac()
    node = initiate_token(svc, alice, mac)
    assert re.fullmatch(r"[A-Za-z0-9]{22}", node)
    # Stable per (MAC, user), whatever the header form; different for another user or MAC.
    assert initiate_token(svc, alice, mac, "esp32") == node
    assert initiate_token(svc, "Bearer " + alice, mac) == node
    assert initiate_token(svc, bob, mac) != node
    assert initiate_token(svc, alice, new_mac()) != node


@pytest.mark.parametrize(
    "platform",
    ["esp32", "esp32s2", "esp32c3", "esp32s3", "esp32c2", "esp32c6", "esp32h2", "host", "HOST"],
)
def test_token_claim_platforms(svc: RunningService, platform: str) -> None:
    token = new_token()
    svc.add_user(token)
    assert initiate_token(svc, token, new_mac(), platform)


def test_token_claim_platform_invalid(svc: RunningService) -> None:
    token = new_token()
    svc.add_user(token)
    body = {"mac_addr": new_mac(), "platform": "esp8266"}
    r = call(svc, "POST", "/claim/initiate", body, headers={"Authorization": token})
    assert failure(r) == (400, "Platform is invalid")


def test_token_claim_certificate_and_mqtt_host(svc: RunningService) -> None:
    token = new_token()
    svc.add_user(token)
    node = initiate_token(svc, token, new_mac())
    csr, key = make_csr(node)
    status, reply = verify_token(svc, "Bearer " + token, csr)
    assert status == 200 and set(reply) == {"certificate"}
    check_device_certificate(reply["certificate"], key, node, svc.claim_ca_pem)
    # As the assisted flow sends it: send_mqtt_host adds the MQTT endpoints.
    status, reply = verify_token(svc, token, csr, send_mqtt_host=True, node_policies="videostream")
    assert status == 200
    assert reply["mqtt_host"] == "mqtt.rainmaker.espressif.com"
    assert "mqtt_cred_host" in reply
    status, reply = verify_token(svc, token, csr, send_mqtt_host=False)
    assert status == 200 and set(reply) == {"certificate"}
    status, reply = verify_token(svc, token, csr, send_mqtt_host="yes")
    assert (status, reply["description"]) == (400, "send_mqtt_host must be true or false")


def test_token_refusals(svc: RunningService) -> None:
    alice, bob = new_token(), new_token()
    svc.add_user(alice)
    svc.add_user(bob)
    mac = new_mac()
    for header in ("not-a-token", "Bearer not-a-token", "", "Bearer "):
        r = call(
            svc,
            "POST",
            "/claim/initiate",
            {"mac_addr": mac, "platform": "host"},
            headers={"Authorization": header},
        )
        assert failure(r) == (401, "Unauthorized")
    node = initiate_token(svc, alice, mac)
    csr, _ = make_csr(node)
    assert verify_token(svc, "not-a-token", csr)[1]["description"] == "Unauthorized"
    # No token and no auth_id: a token claim without a token.
    r = call(svc, "POST", "/claim/verify", {"csr": csr})
    assert failure(r) == (401, "Unauthorized")
    # The node was initiated by alice: bob's token cannot claim it.
    status, reply = verify_token(svc, bob, csr)
    assert (status, reply["description"]) == (
        400,
        f"CSR common name {node!r} is not a node id this user initiated; "
        "call /claim/initiate first",
    )
    # A CN that is not a node at all.
    csr, _ = make_csr("0123456789abcdefABCDEF")
    assert verify_token(svc, alice, csr)[0] == 400


def test_quota(svc: RunningService) -> None:
    token = new_token()
    user_id = svc.add_user(token, quota=2)
    nodes = [initiate_token(svc, token, new_mac()) for _ in range(3)]
    csrs = [make_csr(n)[0] for n in nodes]
    assert verify_token(svc, token, csrs[0])[0] == 200
    assert verify_token(svc, token, csrs[1])[0] == 200
    # Re-claiming an existing node costs nothing; a third node is refused.
    assert verify_token(svc, token, csrs[0])[0] == 200
    status, reply = verify_token(svc, token, csrs[2])
    assert (status, reply["description"]) == (403, NO_QUOTA)
    store = Store.open(svc.state_dir)
    user = store.user(user_id)
    store.close()
    assert user is not None and (user.quota, user.claimed) == (2, 2)
    # Raising the quota lets the third node through.
    svc.add_user(token, quota=3)
    assert verify_token(svc, token, csrs[2])[0] == 200


def test_default_quota_is_five(svc: RunningService) -> None:
    token = new_token()
    svc.add_user(token)
    codes = []
    for _ in range(6):
        node = initiate_token(svc, token, new_mac())
        codes.append(verify_token(svc, token, make_csr(node)[0])[0])
    assert codes == [200] * 5 + [403]


# --- CSR checks and query flags -----------------------------------------------------------------


@pytest.fixture(scope="module")
def node_and_token(svc: RunningService) -> tuple[str, str]:
    token = new_token()
    svc.add_user(token, quota=1)
    return initiate_token(svc, token, new_mac()), token


def _csr_with_bad_signature(cn: str) -> str:
    csr, _ = make_csr(cn)
    der = bytearray(x509.load_pem_x509_csr(csr.encode()).public_bytes(serialization.Encoding.DER))
    der[-3] ^= 0x01  # inside the ECDSA signature's last integer
    body = x509.load_der_x509_csr(bytes(der)).public_bytes(serialization.Encoding.PEM)
    return body.decode()


def _csr_two_cns(cn: str) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME, cn), x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    )
    csr = x509.CertificateSigningRequestBuilder().subject_name(name).sign(key, hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.PEM).decode()


@pytest.mark.parametrize(
    ("kind", "query", "expected"),
    [
        ("ec-p256", "", 200),
        ("rsa-2048", "", 200),
        ("rsa-4096", "", 200),
        ("rsa-1024", "", "csr RSA key must be 2048 to 4096 bits, got 1024 bits"),
        ("ec-p384", "", "csr EC key must be P-256, got secp384r1"),
        ("ed25519", "", "csr key must be EC P-256 or RSA 2048..4096"),
        ("ec-p256", "?matter=true", 200),
        ("ec-p256", "?matter=True&test=True", 200),
        ("ec-p256", "?matter=False&test=whatever", 200),
        ("ec-p256", "?matter=false", 200),
        ("rsa-2048", "?matter=True", "matter=true needs an EC P-256 key, got RSA"),
        ("rsa-2048", "?matter=False", 200),
        ("ec-p256", "?matter=maybe", "matter must be true or false, got 'maybe'"),
        ("garbage", "", "csr is not a PEM certificate signing request"),
        ("bad-signature", "", "csr signature is invalid"),
        ("two-cns", "", "csr subject must hold exactly one common name (CN)"),
    ],
)
def test_csr_checks(
    svc: RunningService, node_and_token: tuple[str, str], kind: str, query: str, expected: object
) -> None:
    node, token = node_and_token
    keys: dict[str, PrivateKey] = {}
    if kind.startswith("rsa-"):
        keys[kind] = rsa.generate_private_key(65537, int(kind[4:]))
    if kind == "ec-p384":
        keys[kind] = ec.generate_private_key(ec.SECP384R1())
    if kind == "garbage":
        csr = "-----BEGIN CERTIFICATE REQUEST-----\nnot base64\n-----END CERTIFICATE REQUEST-----"
    elif kind == "bad-signature":
        csr = _csr_with_bad_signature(node)
    elif kind == "two-cns":
        csr = _csr_two_cns(node)
    elif kind == "ed25519":
        key = ed25519.Ed25519PrivateKey.generate()
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, node)])
        built = x509.CertificateSigningRequestBuilder().subject_name(name).sign(key, None)
        csr = built.public_bytes(serialization.Encoding.PEM).decode()
    else:
        csr, _ = make_csr(node, keys.get(kind))
    status, reply = verify_token(svc, token, csr, query)
    if expected == 200:
        assert status == 200, reply
    else:
        assert (status, reply["description"]) == (400, expected)


# --- bodies, framing and routes -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "description"),
    [
        (b"", "Request body is empty; a JSON object is required"),
        (b'{"mac_addr": "7CDFA100033B",', "Request body is not valid JSON"),
        (b"\xff\xfe{}", "Request body is not valid JSON"),
        (b'{"mac_addr": NaN}', "Request body is not valid JSON"),
        (b"[1, 2]", "Request body must be a JSON object"),
        (b'"text"', "Request body must be a JSON object"),
        (b'{"platform": "esp32s3"}', "mac_addr is required"),
        (b'{"mac_addr": 123, "platform": "esp32s3"}', "mac_addr must be a string, got int"),
        (b'{"mac_addr": "7CDFA100033B", "platform": null}', "platform is required"),
        (
            b'{"mac_addr": "7CDFA100033B", "platform": ["x"]}',
            "platform must be a string, got list",
        ),
        (b"[" * 10_000, None),  # over 8 KB: refused before parsing
    ],
)
def test_initiate_bad_bodies(svc: RunningService, raw: bytes, description: str | None) -> None:
    r = call(svc, "POST", "/claim/initiate", raw=raw)
    if description is None:
        assert failure(r) == (413, "Request body is larger than 8192 bytes")
    else:
        assert failure(r) == (400, description)


@pytest.mark.parametrize(
    ("body", "description"),
    [
        (
            {"auth_id": 5, "challenge_response": "A", "csr": "x"},
            "auth_id must be a string, got int",
        ),
        ({"auth_id": "x", "csr": "x"}, "challenge_response is required"),
        ({"auth_id": "x", "challenge_response": "A"}, "csr is required"),
        ({"csr": 7}, "csr must be a string, got int"),
    ],
)
def test_verify_wrong_field_types(svc: RunningService, body: object, description: str) -> None:
    token = new_token()
    svc.add_user(token)
    r = call(svc, "POST", "/claim/verify", body, headers={"Authorization": token})
    assert failure(r) == (400, description)


def test_body_size_limit(svc: RunningService) -> None:
    mac, _ = registered(svc)
    base = {"mac_addr": mac, "platform": "esp32s3", "pad": ""}
    pad = 8192 - len(json.dumps(base).encode())
    exact = json.dumps({**base, "pad": "x" * pad}).encode()
    assert len(exact) == 8192
    assert call(svc, "POST", "/claim/initiate", raw=exact).status == 200
    over = json.dumps({**base, "pad": "x" * (pad + 1)}).encode()
    r = call(svc, "POST", "/claim/initiate", raw=over)
    assert failure(r) == (413, "Request body is larger than 8192 bytes")


def test_body_size_limit_without_content_length(svc: RunningService) -> None:
    port = int(svc.base_url.rsplit(":", 1)[1])
    conn = http.client.HTTPSConnection(
        "localhost", port, context=client.pinned_context(svc.server_ca_file), timeout=10
    )
    # A chunked request body: the limit must hold while streaming, not only on Content-Length.
    chunks = iter([b'{"pad": "' + b"x" * 5000, b"x" * 5000 + b'"}'])
    conn.request("POST", "/claim/initiate", body=chunks, encode_chunked=True)
    resp = conn.getresponse()
    body = resp.read()
    conn.close()
    assert resp.status == 413
    assert json.loads(body)["description"] == "Request body is larger than 8192 bytes"


def test_routes(svc: RunningService) -> None:
    assert failure(call(svc, "GET", "/claim/initiate")) == (405, "Method Not Allowed")
    assert failure(call(svc, "POST", "/claim/nothing", {})) == (404, "Not Found")
    r = call(svc, "GET", "/mqtt_host")
    assert r.json() == {
        "mqtt_host": "mqtt.rainmaker.espressif.com",
        "mqtt_cred_host": "c10yordfvrjdjb.credentials.iot.us-east-1.amazonaws.com",
    }
    # The OpenAPI document is no claim reply: it may exceed 3000 bytes.
    doc = client.request(svc.base_url, "GET", "/openapi.json", ca_file=svc.server_ca_file)
    schema = doc.json()
    assert set(schema["paths"]) == {
        "/claim/initiate",
        "/claim/verify",
        "/mqtt_host",
        "/v1/user/nodes/mapping/initiate",
        "/v1/user/nodes/mapping/verify",
        "/v1/user/nodes/mapping",
        "/v1/user/nodes",
    }


def test_no_fault_endpoint_in_a_normal_run(tmp_path: Path) -> None:
    with running_service(tmp_path / "svc", faults=False) as svc:
        r = call(svc, "POST", "/_rmbench/faults", {"kind": "chunked"})
        assert failure(r) == (404, "Not Found")
        assert call(svc, "GET", "/mqtt_host").status == 200


def test_an_internal_error_keeps_the_failure_shape(tmp_path: Path) -> None:
    # In-process with a store that fails: the reply is still a framed failure, not a bare 500.
    class BrokenStore(Store):
        def unique_id(self, mac: str) -> bytes | None:
            raise RuntimeError("disk on fire")

    authorities = load_or_create_authorities(tmp_path)
    app = create_app(ClaimService(BrokenStore(tmp_path / "db"), authorities.claim, Settings()))

    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://svc") as c:
            body = {"mac_addr": "7CDFA100033B", "platform": "esp32s3"}
            return await c.post("/claim/initiate", json=body)

    r = asyncio.run(go())
    assert r.status_code == 500
    assert r.headers["content-length"] == str(len(r.content))
    assert r.json() == {
        "status": "failure",
        "description": "Internal error in the local claiming service",
    }
