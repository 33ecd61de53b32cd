"""rmclaim.csr: PKCS#10 requests, SEC1 keys and PEM, checked byte for byte against
`cryptography`, by `openssl req -verify`, and by MicroPython's own mbedTLS (load_cert_chain
and a mutual-TLS handshake with a CPython server)."""

from __future__ import annotations

import datetime
import re
import secrets
import socket
import ssl
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rmbench import certs
from rmbench.codegen_p256 import N
from rmbench.micropython import Interpreter

RunJSON = Callable[..., list[Any]]  # the run_json fixture (conftest.py)
MATTER_VID = "1.3.6.1.4.1.37244.2.1"
MATTER_PID = "1.3.6.1.4.1.37244.2.2"
DER = serialization.Encoding.DER
PEM = serialization.Encoding.PEM
SEC1 = serialization.PrivateFormat.TraditionalOpenSSL
NO_PASSWORD = serialization.NoEncryption()

BUILD_SCRIPT = """
import sys, json
from rmclaim import csr, pem
for line in sys.stdin:
    d, cn, extra = json.loads(line)
    d = int(d, 16)
    extra = [(oid, bytes.fromhex(v).decode()) for oid, v in extra] or None
    req = csr.build_csr(d, bytes.fromhex(cn).decode(), extra)
    key = csr.encode_private_key(d)
    print(json.dumps([req.hex(), key.hex(), pem.encode(req, "CERTIFICATE REQUEST"),
                      pem.encode(key, "EC PRIVATE KEY"), csr.public_point(d).hex(),
                      "%x" % csr.decode_private_key(key),
                      pem.decode(pem.encode(req, "X"), "X") == req]))
"""


def reference_csr(d: int, cn: str, extra: list[tuple[str, str]]) -> x509.CertificateSigningRequest:
    key = ec.derive_private_key(d, ec.SECP256R1())
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    attributes += [x509.NameAttribute(x509.ObjectIdentifier(oid), v) for oid, v in extra]
    builder = x509.CertificateSigningRequestBuilder().subject_name(x509.Name(attributes))
    return builder.sign(key, hashes.SHA256(), ecdsa_deterministic=True)


def check_csrs(
    run_json: RunJSON, interp: Interpreter, cases: list[tuple[int, str, list[tuple[str, str]]]]
) -> list[Any]:
    items = [
        [f"{d:x}", cn.encode().hex(), [[oid, v.encode().hex()] for oid, v in extra]]
        for d, cn, extra in cases
    ]
    results = run_json(interp, BUILD_SCRIPT, items)
    for (d, cn, extra), (req, key, req_pem, key_pem, point, d_back, pem_ok) in zip(
        cases, results, strict=True
    ):
        ref = reference_csr(d, cn, extra)
        private = ec.derive_private_key(d, ec.SECP256R1())
        # Same key, subject and RFC 6979 nonce: the very bytes cryptography makes.
        assert bytes.fromhex(req) == ref.public_bytes(DER)
        parsed = x509.load_der_x509_csr(bytes.fromhex(req))
        assert parsed.is_signature_valid
        assert parsed.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == cn
        assert parsed.signature_algorithm_oid == x509.SignatureAlgorithmOID.ECDSA_WITH_SHA256
        assert parsed.public_key() == private.public_key()
        assert len(parsed.attributes) == 0
        assert req_pem == ref.public_bytes(PEM).decode()
        # SEC1 with the curve OID and the public key: cryptography's own encoding.
        assert bytes.fromhex(key) == private.private_bytes(DER, SEC1, NO_PASSWORD)
        assert key_pem == private.private_bytes(PEM, SEC1, NO_PASSWORD).decode()
        loaded = serialization.load_der_private_key(bytes.fromhex(key), None)
        assert isinstance(loaded, ec.EllipticCurvePrivateKey)
        assert loaded.private_numbers().private_value == d
        assert bytes.fromhex(point) == private.public_key().public_bytes(
            DER.X962, serialization.PublicFormat.UncompressedPoint
        )
        assert int(d_back, 16) == d and pem_ok is True
    return results


COMMON_NAMES = [
    "dev-0001",
    "a",
    "x" * 64,
    "240AC4123456",
    "VtXfecXiRKazHoBZkkLAHX",
    "Ger\u00e4t \u2603 \U0001f600",
    "with, comma = and +plus",
]


def test_csrs_match_cryptography_and_openssl(
    interp: Interpreter, run_json: RunJSON, tmp_path: Path
) -> None:
    cases: list[tuple[int, str, list[tuple[str, str]]]] = [
        (secrets.randbelow(N - 1) + 1, cn, []) for cn in COMMON_NAMES
    ]
    cases += [(d, f"node-{d % 1000}", []) for d in (1, 2, N - 1, 1 << 255)]
    cases.append((secrets.randbelow(N - 1) + 1, "matter-node", [(MATTER_VID, "131B")]))
    cases.append(
        (
            secrets.randbelow(N - 1) + 1,
            "VtXfecXiRKazHoBZkkLAHX",
            [(MATTER_VID, "131B"), (MATTER_PID, "0002")],
        )
    )
    results = check_csrs(run_json, interp, cases)
    matter = x509.load_der_x509_csr(bytes.fromhex(results[-1][0])).subject
    assert [(a.oid.dotted_string, a.value) for a in matter] == [
        ("2.5.4.3", "VtXfecXiRKazHoBZkkLAHX"),
        (MATTER_VID, "131B"),
        (MATTER_PID, "0002"),
    ]
    for i, result in enumerate(results[:5]):
        path = tmp_path / f"req{i}.pem"
        path.write_text(result[2])
        check = subprocess.run(
            ["openssl", "req", "-in", str(path), "-verify", "-noout"],
            capture_output=True,
            text=True,
            check=True,
        )
        assert "verify OK" in check.stdout + check.stderr


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(
            st.integers(min_value=1, max_value=N - 1),
            st.text(min_size=1, max_size=64).filter(lambda cn: len(cn.encode()) <= 64),
        ),
        min_size=6,
        max_size=6,
    )
)
def test_property_csrs_match_cryptography(
    mpy: Interpreter, run_json: RunJSON, pairs: list[tuple[int, str]]
) -> None:
    check_csrs(run_json, mpy, [(d, cn, []) for d, cn in pairs])


REJECT_SCRIPT = """
import sys, json
from rmclaim import csr, pem
out = []
for line in sys.stdin:
    call, args = json.loads(line)
    try:
        if call == "build":
            d, cn, extra = args
            csr.build_csr(d, cn, extra)
        elif call == "decode_key":
            csr.decode_private_key(bytes.fromhex(args))
        else:
            pem.decode(args[0], args[1])
        print(json.dumps("accepted"))
    except ValueError as e:
        print(json.dumps("ValueError: " + str(e)))
"""


def sec1(d: bytes, params: bytes | None, public: bytes | None, version: int = 1) -> str:
    """ECPrivateKey DER made by hand (short lengths only) for the malformed-key cases."""
    body = bytes([2, 1, version, 4, len(d)]) + d
    if params is not None:
        body += bytes([0xA0, len(params)]) + params
    if public is not None:
        bits = bytes([3, len(public) + 1, 0]) + public
        body += bytes([0xA1, len(bits)]) + bits
    return (bytes([0x30, len(body)]) + body).hex()


def test_rejections(interp: Interpreter, run_json: RunJSON) -> None:
    p256 = bytes.fromhex("06082a8648ce3d030107")
    key = ec.generate_private_key(ec.SECP256R1())
    other = ec.generate_private_key(ec.SECP256R1())
    d = key.private_numbers().private_value.to_bytes(32, "big")
    point = key.public_key().public_bytes(DER.X962, serialization.PublicFormat.UncompressedPoint)
    other_point = other.public_key().public_bytes(
        DER.X962, serialization.PublicFormat.UncompressedPoint
    )
    good = key.private_bytes(DER, SEC1, NO_PASSWORD).hex()
    p384 = ec.generate_private_key(ec.SECP384R1()).private_bytes(DER, SEC1, NO_PASSWORD).hex()
    pkcs8 = key.private_bytes(DER, serialization.PrivateFormat.PKCS8, NO_PASSWORD).hex()
    csr_pem = reference_csr(5, "dev", []).public_bytes(PEM).decode()
    body = csr_pem.splitlines()[1]
    cases: list[tuple[str, Any, bool]] = [
        ("build", [5, "dev", None], True),
        ("build", [5, "", None], False),
        ("build", [5, "x" * 65, None], False),
        ("build", [5, "\u00e9" * 32, None], True),
        ("build", [5, "\u00e9" * 33, None], False),  # 33 characters, but 66 bytes
        ("build", [5, 1234, None], False),
        ("build", [0, "dev", None], False),
        ("build", [N, "dev", None], False),
        ("build", [5, "dev", [[MATTER_VID, ""]]], False),
        ("build", [5, "dev", [["3.1", "x"]]], False),
        ("decode_key", good, True),
        ("decode_key", sec1(d, p256, None), True),  # [1] is optional
        ("decode_key", sec1(d, None, point), False),  # [0] is not
        ("decode_key", sec1(d, p256, other_point), False),  # someone else's public key
        ("decode_key", sec1(d, p256, point, version=2), False),
        ("decode_key", sec1(d[1:], p256, None), False),  # 31-byte key
        ("decode_key", sec1(bytes(32), p256, None), False),  # d = 0
        ("decode_key", sec1(N.to_bytes(32, "big"), p256, None), False),  # d = n
        ("decode_key", sec1(d, bytes.fromhex("06052b81040022"), None), False),  # P-384 OID
        ("decode_key", p384, False),
        ("decode_key", pkcs8, False),
        ("decode_key", good[:-2], False),
        ("decode_key", good + "00", False),
        ("decode_key", "", False),
        ("pem", [csr_pem, "CERTIFICATE REQUEST"], True),
        ("pem", ["junk\n" + csr_pem + "junk", "CERTIFICATE REQUEST"], True),
        ("pem", [csr_pem, "CERTIFICATE"], False),
        ("pem", ["no pem here", "CERTIFICATE REQUEST"], False),
        ("pem", [csr_pem.replace("-----END", "-----FIN"), "CERTIFICATE REQUEST"], False),
        ("pem", [csr_pem.replace(body, body[:-1] + "*"), "CERTIFICATE REQUEST"], False),
        ("pem", [csr_pem.replace(body, body[:-1]), "CERTIFICATE REQUEST"], False),
        ("pem", ["-----BEGIN X-----\n=\n-----END X-----\n", "X"], False),
        ("pem", ["-----BEGIN X-----\nAA===\n-----END X-----\n", "X"], False),
        ("pem", ["-----BEGIN X-----\n\n-----END X-----\n", "X"], False),
        ("pem", ["-----BEGIN X-----\nPro: x\nAAAA\n-----END X-----\n", "X"], False),
    ]
    results = run_json(interp, REJECT_SCRIPT, [[call, args] for call, args, _ in cases])
    for (call, args, accepted), result in zip(cases, results, strict=True):
        if accepted:
            assert result == "accepted", (call, args, result)
        else:
            assert result.startswith("ValueError: "), (call, args, result)


def make_ca(name: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    start, end = now - datetime.timedelta(days=1), now + datetime.timedelta(days=30)
    return key, certs.self_signed(key, certs.cn_name(name), start, end, [certs.ca_constraints()])


def issue(
    ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate],
    public: ec.EllipticCurvePublicKey,
    cn: str,
    dns: str | None = None,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    start, end = now - datetime.timedelta(days=1), now + datetime.timedelta(days=30)
    extensions = [certs.alt_names([dns])] if dns else []
    return certs.certificate(
        certs.cn_name(cn), public, ca[1].subject, ca[0], start, end, extensions
    )


KEY_SCRIPT = """
import json
from rmclaim import csr, p256
d = p256.generate_private_key()
print(json.dumps([csr.encode_private_key(d).hex(), csr.public_point(d).hex()]))
"""

TLS_SCRIPT = """
import sys, json, socket, tls
case = json.loads(sys.stdin.readline())
cert = bytes.fromhex(case["cert"])
key = bytes.fromhex(case["key"])
ctx = tls.SSLContext(tls.PROTOCOL_TLS_CLIENT)
try:
    # Without the [0] curve OID mbedTLS refuses the key: the check below can fail.
    ctx.load_cert_chain(cert, key[:7 + 32] + key[7 + 32 + 12:])
    print(json.dumps("no-curve key accepted"))
except ValueError as e:
    print(json.dumps("no-curve key refused"))
ctx.load_cert_chain(cert, key)
ctx.load_verify_locations(bytes.fromhex(case["ca"]))
s = socket.socket()
s.connect(socket.getaddrinfo("127.0.0.1", case["port"])[0][-1])
s = ctx.wrap_socket(s, server_hostname="localhost")
print(json.dumps(s.read(64).decode()))
s.close()
"""


def test_key_works_in_micropython_tls(mpy: Interpreter, run_json: RunJSON, tmp_path: Path) -> None:
    # The device makes a key; the host issues a certificate for its public key; mbedTLS on
    # the device loads key and certificate (DER) and proves the key in a mutual-TLS handshake.
    ((key, point),) = run_json(mpy, KEY_SCRIPT, [])
    device = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), bytes.fromhex(point))
    ca = make_ca("Test Claim CA")
    cert = issue(ca, device, "dev-tls-0001")
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = issue(ca, server_key.public_key(), "localhost", dns="localhost")
    (tmp_path / "server.pem").write_bytes(
        server_key.private_bytes(PEM, SEC1, NO_PASSWORD) + server_cert.public_bytes(PEM)
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "server.pem")
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(cadata=ca[1].public_bytes(DER))
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(60)
    seen: dict[str, Any] = {}

    def serve() -> None:
        try:
            conn, _ = listener.accept()
            with context.wrap_socket(conn, server_side=True) as tls:
                peer = x509.load_der_x509_certificate(tls.getpeercert(binary_form=True) or b"")
                seen["cn"] = peer.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
                tls.sendall(b"hello " + str(seen["cn"]).encode())
        except (OSError, ssl.SSLError) as e:
            seen["error"] = repr(e)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    request = {
        "cert": cert.public_bytes(DER).hex(),
        "key": key,
        "ca": ca[1].public_bytes(DER).hex(),
        "port": listener.getsockname()[1],
    }
    try:
        out = run_json(mpy, TLS_SCRIPT, [request])
    finally:
        if thread.is_alive() and "cn" not in seen:
            # The device never got through: a connection of our own ends accept().
            socket.create_connection(listener.getsockname(), timeout=5).close()
        thread.join(timeout=30)
        listener.close()
    assert out == ["no-curve key refused", "hello dev-tls-0001"]
    assert seen == {"cn": "dev-tls-0001"}


QSTR_SCRIPT = """
import sys, micropython
from rmclaim import pem
text = sys.stdin.read()
micropython.qstr_info()
der = pem.decode(text, "CERTIFICATE")
der = pem.split(text, "CERTIFICATE")[0]
micropython.qstr_info()
print(der.hex())
"""


def test_pem_parsing_leaves_no_interned_strings(mpy: Interpreter, deployed_lib: Path) -> None:
    # MicroPython interns each one-letter string that iterating over (or indexing) a str makes
    # as a qstr, which stays on the heap for good: reading a base64 body that way would leave
    # up to 65 of them. Parsing a certificate's PEM must add none.
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "qstr")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    out = mpy.run(QSTR_SCRIPT, stdin=cert.public_bytes(PEM).decode(), path=[deployed_lib])
    counts = [int(n) for n in re.findall(r"n_qstr=(\d+)", out)]
    assert len(counts) == 2 and counts[1] == counts[0], out
    assert out.splitlines()[-1] == cert.public_bytes(DER).hex()
