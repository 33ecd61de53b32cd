"""rmclaim.x509: certificates that `cryptography` issues (EC and RSA CAs, several validity
periods, short and long subjects) parse to the fields cryptography reads, and signatures
verify only for the right issuer and untouched bytes, on both interpreters at a 64 KB heap."""

from __future__ import annotations

import datetime
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from rmbench import certs
from rmbench.micropython import Interpreter

RunJSON = Callable[..., list[Any]]  # the run_json fixture (conftest.py)
IssuerKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
DER = serialization.Encoding.DER
PEM = serialization.Encoding.PEM
UTC = datetime.UTC


def when(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime.datetime:
    return datetime.datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def name(cn: str | None, **extra: str) -> x509.Name:
    oids = {"C": NameOID.COUNTRY_NAME, "ST": NameOID.STATE_OR_PROVINCE_NAME}
    oids |= {"L": NameOID.LOCALITY_NAME, "O": NameOID.ORGANIZATION_NAME}
    oids |= {"OU": NameOID.ORGANIZATIONAL_UNIT_NAME}
    attributes = [x509.NameAttribute(oids[k], v) for k, v in extra.items()]
    if cn is not None:
        attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    return x509.Name(attributes)


@dataclass
class CA:
    key: IssuerKey
    cert: x509.Certificate


def make_ca(
    key: IssuerKey, subject: x509.Name, start: datetime.datetime, end: datetime.datetime
) -> CA:
    return CA(key, certs.self_signed(key, subject, start, end, [certs.ca_constraints(0)]))


def issue(
    ca: CA,
    subject: x509.Name,
    start: datetime.datetime,
    end: datetime.datetime,
    public: Any = None,
    rainmaker_extensions: bool = False,
) -> x509.Certificate:
    public = public or ec.generate_private_key(ec.SECP256R1()).public_key()
    extensions = []
    if rainmaker_extensions:
        extensions = [
            certs.key_usage(certificate_signing=False),
            certs.client_auth(),
            certs.subject_key_id(public),
        ]
    return certs.certificate(subject, public, ca.cert.subject, ca.key, start, end, extensions)


@pytest.fixture(scope="module")
def pki() -> dict[str, Any]:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    espressif = name("ESP-RainMaker", C="IN", ST="MH", L="Pune", O="Espressif")
    rsa_ca = make_ca(rsa_key, espressif, when(2020, 4, 24), when(2030, 4, 24))
    rsa_impostor = make_ca(
        rsa.generate_private_key(public_exponent=65537, key_size=2048),
        espressif,
        when(2020, 4, 24),
        when(2030, 4, 24),
    )
    weak = make_ca(
        rsa.generate_private_key(public_exponent=65537, key_size=1024),
        name("Weak RSA CA"),
        when(2020, 1, 1),
        when(2030, 1, 1),
    )
    ec_ca = make_ca(
        ec.generate_private_key(ec.SECP256R1()),
        name("Test EC CA"),
        when(2001, 1, 1),
        when(2099, 1, 1),
    )
    ec_impostor = make_ca(
        ec.generate_private_key(ec.SECP256R1()),
        name("Test EC CA"),
        when(2001, 1, 1),
        when(2099, 1, 1),
    )
    long_subject = name(
        "n" * 64, C="DE", ST="Bayern", L="M\u00fcnchen", O="Long Org " * 7, OU="Unit"
    )
    device_rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    leaves = {
        "rainmaker": issue(
            rsa_ca,
            name("VtXfecXiRKazHoBZkkLAHX"),
            when(2024, 10, 2, 10, 11, 12),
            when(2028, 10, 2, 10, 11, 12),
            rainmaker_extensions=True,
        ),
        "short": issue(ec_ca, name("a"), when(1950, 1, 1), when(2049, 12, 31, 23, 59, 59)),
        "long": issue(ec_ca, long_subject, when(2000, 2, 29, 12), when(2050, 1, 1)),
        "forever": issue(
            ec_ca, name("dev-0001"), when(2024, 1, 1), when(9999, 12, 31, 23, 59, 59)
        ),
        "unicode": issue(rsa_ca, name("Ger\u00e4t \u2603"), when(2025, 6, 1), when(2026, 6, 1)),
        "no_cn": issue(ec_ca, name(None, O="No CN Org"), when(2025, 1, 1), when(2026, 1, 1)),
        "rsa_key": issue(
            ec_ca, name("rsa-device"), when(2025, 1, 1), when(2026, 1, 1), device_rsa
        ),
        "weak_signed": issue(weak, name("weak"), when(2025, 1, 1), when(2026, 1, 1)),
    }
    return {
        "rsa_ca": rsa_ca.cert,
        "rsa_impostor": rsa_impostor.cert,
        "weak_ca": weak.cert,
        "ec_ca": ec_ca.cert,
        "ec_impostor": ec_impostor.cert,
        **leaves,
    }


PARSE_SCRIPT = """
import sys, json, hashlib
from rmclaim import x509
def h(data):
    # SHA-256 of long values keeps each printed line small at a 64 KB heap.
    return hashlib.sha256(data).digest().hex()
for line in sys.stdin:
    cert = x509.parse_certificate(bytes.fromhex(json.loads(line)))
    point = cert.public_key_point
    print(json.dumps({
        "subject_cn": cert.subject_cn, "issuer_cn": cert.issuer_cn,
        "not_before": cert.not_before, "not_after": cert.not_after,
        "point": point.hex() if point is not None else None,
        "tbs": h(cert.tbs), "serial": "%x" % cert.serial, "version": cert.version,
        "signature_algorithm": cert.signature_algorithm, "signature": h(cert.signature),
        "issuer": h(cert.issuer), "subject": h(cert.subject), "ca": cert.ca,
        "path_length": cert.path_length,
        "rsa": None if cert.rsa_modulus is None else [
            h(cert.rsa_modulus.to_bytes(256, "big")), cert.rsa_exponent],
        "extensions": sorted(cert.extensions),
        "attributes": cert.subject_attributes,
    }))
"""


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fields(cert: x509.Certificate) -> dict[str, Any]:
    """What PARSE_SCRIPT should print, read by cryptography."""

    def cn(n: x509.Name) -> str | None:
        found = n.get_attributes_for_oid(NameOID.COMMON_NAME)
        return str(found[0].value) if found else None

    def stamp(t: datetime.datetime) -> list[int]:
        return [t.year, t.month, t.day, t.hour, t.minute, t.second]

    public = cert.public_key()
    point: str | None = None
    rsa_numbers: list[Any] | None = None
    if isinstance(public, ec.EllipticCurvePublicKey):
        point = public.public_bytes(DER.X962, serialization.PublicFormat.UncompressedPoint).hex()
    elif isinstance(public, rsa.RSAPublicKey):
        numbers = public.public_numbers()
        rsa_numbers = [sha256(numbers.n.to_bytes(256, "big")), numbers.e]
    ca: bool | None = None
    path_length: int | None = None
    try:
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
        ca, path_length = constraints.ca, constraints.path_length
    except x509.ExtensionNotFound:
        pass
    return {
        "subject_cn": cn(cert.subject),
        "issuer_cn": cn(cert.issuer),
        "not_before": stamp(cert.not_valid_before_utc),
        "not_after": stamp(cert.not_valid_after_utc),
        "point": point,
        "tbs": sha256(cert.tbs_certificate_bytes),
        "serial": f"{cert.serial_number:x}",
        "version": cert.version.value + 1,
        "signature_algorithm": cert.signature_algorithm_oid.dotted_string,
        "signature": sha256(cert.signature),
        "issuer": sha256(cert.issuer.public_bytes()),
        "subject": sha256(cert.subject.public_bytes()),
        "ca": ca,
        "path_length": path_length,
        "rsa": rsa_numbers,
        "extensions": sorted(e.oid.dotted_string for e in cert.extensions),
        "attributes": [[a.oid.dotted_string, a.value] for a in cert.subject],
    }


def test_parse_matches_cryptography(
    interp: Interpreter, run_json: RunJSON, pki: dict[str, Any]
) -> None:
    certs = list(pki.values())
    results = run_json(interp, PARSE_SCRIPT, [c.public_bytes(DER).hex() for c in certs])
    for cert, result in zip(certs, results, strict=True):
        assert result == fields(cert)
    by_name = dict(zip(pki, results, strict=True))
    # The cases the brief names, spelled out.
    assert by_name["short"]["not_before"] == [1950, 1, 1, 0, 0, 0]  # UTCTime, 19xx
    assert by_name["short"]["not_after"] == [2049, 12, 31, 23, 59, 59]
    assert by_name["long"]["not_after"] == [2050, 1, 1, 0, 0, 0]  # GeneralizedTime
    assert by_name["forever"]["not_after"] == [9999, 12, 31, 23, 59, 59]
    assert by_name["long"]["subject_cn"] == "n" * 64
    assert by_name["no_cn"]["subject_cn"] is None
    assert by_name["unicode"]["subject_cn"] == "Ger\u00e4t \u2603"
    assert by_name["rsa_key"]["point"] is None and by_name["rsa_key"]["rsa"][1] == 65537
    assert by_name["rsa_ca"]["ca"] is True and by_name["rainmaker"]["ca"] is None
    assert by_name["rainmaker"]["issuer_cn"] == "ESP-RainMaker"


VERIFY_SCRIPT = """
import sys, json
from rmclaim import x509
for line in sys.stdin:
    cert, issuer = json.loads(line)
    try:
        x509.parse_certificate(bytes.fromhex(cert))
        parsed = "parsed"
    except ValueError:
        parsed = "ValueError"
    cert = bytes.fromhex(cert) if isinstance(cert, str) else cert
    issuer = bytes.fromhex(issuer) if isinstance(issuer, str) else issuer
    print(json.dumps([x509.verify_signature(cert, issuer), parsed]))
"""


def flip(der: bytes, needle: bytes) -> str:
    """der with one bit flipped in the middle of `needle` (which must occur in it)."""
    at = der.index(needle) + len(needle) // 2
    return (der[:at] + bytes([der[at] ^ 0x04]) + der[at + 1 :]).hex()


def test_verify_signature(interp: Interpreter, run_json: RunJSON, pki: dict[str, Any]) -> None:
    der = {k: v.public_bytes(DER) for k, v in pki.items()}
    h = {k: v.hex() for k, v in der.items()}
    point = (
        pki["short"]
        .public_key()
        .public_bytes(DER.X962, serialization.PublicFormat.UncompressedPoint)
    )
    cases: list[tuple[str, Any, Any, bool, str]] = [
        ("EC CA signs", h["short"], h["ec_ca"], True, "parsed"),
        ("EC CA, long", h["long"], h["ec_ca"], True, "parsed"),
        ("EC CA, 9999", h["forever"], h["ec_ca"], True, "parsed"),
        ("EC CA, RSA key", h["rsa_key"], h["ec_ca"], True, "parsed"),
        ("RSA CA signs", h["rainmaker"], h["rsa_ca"], True, "parsed"),
        ("RSA CA, unicode", h["unicode"], h["rsa_ca"], True, "parsed"),
        ("self-signed RSA", h["rsa_ca"], h["rsa_ca"], True, "parsed"),
        ("self-signed EC", h["ec_ca"], h["ec_ca"], True, "parsed"),
        ("EC impostor", h["short"], h["ec_impostor"], False, "parsed"),
        ("RSA impostor", h["rainmaker"], h["rsa_impostor"], False, "parsed"),
        ("RSA for EC", h["short"], h["rsa_ca"], False, "parsed"),
        ("EC for RSA", h["rainmaker"], h["ec_ca"], False, "parsed"),
        ("leaf as issuer", h["short"], h["long"], False, "parsed"),
        ("RSA-1024 issuer", h["weak_signed"], h["weak_ca"], False, "parsed"),
        ("bit in TBS key", flip(der["short"], point), h["ec_ca"], False, "parsed"),
        (
            "bit in TBS CN",
            flip(der["rainmaker"], b"VtXfecXiRKazHoBZkkLAHX"),
            h["rsa_ca"],
            False,
            "parsed",
        ),
        ("bit in EC sig", flip(der["short"], der["short"][-8:]), h["ec_ca"], False, "parsed"),
        (
            "bit in RSA sig",
            flip(der["rainmaker"], der["rainmaker"][-8:]),
            h["rsa_ca"],
            False,
            "parsed",
        ),
        (
            "bit in issuer key",
            h["short"],
            flip(
                der["ec_ca"],
                pki["ec_ca"]
                .public_key()
                .public_bytes(DER.X962, serialization.PublicFormat.UncompressedPoint),
            ),
            False,
            "parsed",
        ),
        ("truncated", h["short"][:-2], h["ec_ca"], False, "ValueError"),
        ("trailing", h["short"] + "00", h["ec_ca"], False, "ValueError"),
        ("truncated RSA", h["rainmaker"][:-2], h["rsa_ca"], False, "ValueError"),
        ("trailing RSA", h["rainmaker"] + "00", h["rsa_ca"], False, "ValueError"),
        ("issuer truncated", h["short"], h["ec_ca"][:-2], False, "parsed"),
        ("issuer trailing", h["short"], h["ec_ca"] + "00", False, "parsed"),
        ("empty", "", h["ec_ca"], False, "ValueError"),
        ("junk", "3003020101", h["ec_ca"], False, "ValueError"),
        ("issuer None", h["short"], None, False, "parsed"),
        ("issuer number", h["short"], 5, False, "parsed"),
    ]
    results = run_json(interp, VERIFY_SCRIPT, [[c, i] for _, c, i, _, _ in cases])
    for (label, _, _, ok, parsed), result in zip(cases, results, strict=True):
        assert result == [ok, parsed], label


CHAIN_SCRIPT = """
import sys, json
from rmclaim import x509
for line in sys.stdin:
    text = json.loads(line)
    if isinstance(text, dict):
        text = bytes.fromhex(text["hex"])
    try:
        ders = x509.split_pem_chain(text)
    except ValueError as e:
        print(json.dumps("ValueError: " + str(e)))
        continue
    # The JSON list written piece by piece: at 64K its string whole would not always fit.
    del text
    sep = "["
    while ders:
        sys.stdout.write(sep + '"' + ders.pop(0).hex() + '"')
        sep = ","
    print("]")
"""


def test_split_pem_chain(interp: Interpreter, run_json: RunJSON, pki: dict[str, Any]) -> None:
    leaf = pki["rainmaker"].public_bytes(PEM).decode()
    ca = pki["rsa_ca"].public_bytes(PEM).decode()
    body = ca.splitlines()[3]
    texts: list[Any] = [
        leaf + ca,  # what the claim service returns: device certificate, then the CA
        "intro\r\n" + leaf.replace("\n", "\r\n") + "between\n" + ca + "\n\n",
        leaf,
        {"hex": leaf.encode().hex()},  # bytes work too
        "",
        "no certificates here",
        {"hex": "ff" + leaf.encode().hex()},  # not UTF-8
        leaf + ca.replace("-----END CERTIFICATE-----", ""),
        leaf + ca.replace(body, body[:10] + "!" + body[11:]),
        leaf.replace("CERTIFICATE", "CERTIFICATE REQUEST"),
    ]
    results = run_json(interp, CHAIN_SCRIPT, texts)
    two = [pki["rainmaker"].public_bytes(DER).hex(), pki["rsa_ca"].public_bytes(DER).hex()]
    assert results[:4] == [two, two, two[:1], two[:1]]
    for result in results[4:]:
        assert isinstance(result, str) and result.startswith("ValueError: pem: "), result
