"""rmclaim.asn1: strict DER, checked against openssl's DER generator and `cryptography`'s
ECDSA signature codec, with malformed inputs and hypothesis-made bytes, on both interpreters."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rmbench.micropython import Interpreter

RunJSON = Callable[..., list[Any]]  # the run_json fixture (conftest.py)

# Runs one decoder (by name) on one input per line; prints ["ok", value] / ["ValueError",
# message] / ["other", what]. Values: {"i": hex} for ints, {"b": hex} for bytes, lists.
DECODE_SCRIPT = """
import sys, json
import make_der
from rmclaim import asn1
def conv(v):
    if isinstance(v, (bytes, bytearray, memoryview)):
        return {"b": bytes(v).hex()}
    if isinstance(v, bool) or v is None or isinstance(v, str):
        return v
    if isinstance(v, int):
        return {"i": "%x" % v}
    return [conv(x) for x in v]
decoders = {
    "tlv": asn1.decode_tlv, "integer": asn1.decode_integer,
    "integer_content": asn1.integer_content, "sequence": asn1.decode_sequence,
    "set": asn1.decode_set, "context0": lambda d: asn1.decode_context(d, 0),
    "oid": asn1.decode_oid, "boolean": asn1.decode_boolean, "null": asn1.decode_null,
    "bit_string": asn1.decode_bit_string, "octet_string": asn1.decode_octet_string,
    "string": asn1.decode_string, "time": asn1.decode_time,
    "ecdsa_signature": asn1.decode_ecdsa_signature,
}
for line in sys.stdin:
    name, data = json.loads(line)
    try:
        print(json.dumps(["ok", conv(decoders[name](bytes.fromhex(data)))]))
    except ValueError as e:
        print(json.dumps(["ValueError", str(e)]))
    except Exception as e:
        print(json.dumps(["other", "%s: %s" % (type(e).__name__, e)]))
"""
DECODERS = [
    "tlv",
    "integer",
    "integer_content",
    "sequence",
    "set",
    "context0",
    "oid",
    "boolean",
    "null",
    "bit_string",
    "octet_string",
    "string",
    "time",
    "ecdsa_signature",
]


def i(value: int) -> dict[str, str]:
    return {"i": f"{value:x}"}


def b(hexdata: str) -> dict[str, str]:
    return {"b": hexdata}


def t(*values: int) -> list[dict[str, str]]:
    return [i(v) for v in values]


# (decoder, input hex, expected value with rest, or None for "must raise ValueError")
CASES: list[tuple[str, str, Any]] = [
    # lengths: minimal short and long forms only
    ("tlv", "", None),
    ("tlv", "04", None),
    ("tlv", "0481", None),
    ("tlv", "048100", None),  # long form for 0
    ("tlv", "04817f" + "00" * 127, None),  # long form for a short length (BER)
    ("tlv", "048180" + "00" * 128, [i(4), b("00" * 128), b("")]),
    ("tlv", "04820080" + "00" * 128, None),  # leading zero in the length
    ("tlv", "04820100" + "00" * 255, None),  # 256 announced, 255 present
    ("tlv", "048200ff" + "00" * 255, None),
    ("tlv", "0480000000", None),  # indefinite length
    ("tlv", "0484000000010a", None),  # 4 length bytes: refused outright
    ("tlv", "040501020304", None),  # length past the end
    ("tlv", "1f0100", None),  # multi-byte tag
    ("tlv", "0400ff", [i(4), b(""), b("ff")]),
    # INTEGER: minimal two's complement, non-negative where a value is wanted
    ("integer", "0200", None),
    ("integer", "020100", [i(0), b("")]),
    ("integer", "02017f", [i(127), b("")]),
    ("integer", "02020080", [i(128), b("")]),
    ("integer", "02020001", None),  # extra zero byte
    ("integer", "0203000080", None),
    ("integer", "020180", None),  # negative
    ("integer", "0201ff", None),
    ("integer", "0202ff80", None),
    ("integer", "02810100", None),
    ("integer", "0300", None),  # wrong tag
    ("integer_content", "0201ff", [b("ff"), b("")]),  # raw content allows a sign
    ("integer_content", "0202ff80", None),  # but not a redundant one
    # ECDSA-Sig-Value: the whole input, strict
    ("ecdsa_signature", "3006020101020102", [i(1), i(2)]),
    ("ecdsa_signature", "3006020100020101", [i(0), i(1)]),  # DER-valid; verify rejects 0
    ("ecdsa_signature", "3006020180020101", None),  # missing zero: negative r
    ("ecdsa_signature", "300702020001020101", None),  # extra zero
    ("ecdsa_signature", "300602010102010100", None),  # trailing byte after the SEQUENCE
    ("ecdsa_signature", "3009020101020101020101", None),  # third INTEGER inside
    ("ecdsa_signature", "30050201010201", None),  # truncated inside
    ("ecdsa_signature", "308106020101020101", None),  # BER long-form length
    ("ecdsa_signature", "3106020101020101", None),  # SET, not SEQUENCE
    ("ecdsa_signature", "3003020101", None),  # s missing
    # other types
    ("sequence", "3000", [b(""), b("")]),
    ("set", "3000", None),
    ("context0", "a0020500", [b("0500"), b("")]),
    ("context0", "a1020500", None),
    ("boolean", "010100", [False, b("")]),
    ("boolean", "0101ff", [True, b("")]),
    ("boolean", "010101", None),
    ("boolean", "01020000", None),
    ("null", "0500", [None, b("")]),
    ("null", "050100", None),
    ("bit_string", "0300", None),  # no unused-bits byte
    ("bit_string", "030100", [b(""), b("")]),
    ("bit_string", "03020780", None),  # unused bits
    ("octet_string", "0403010203", [b("010203"), b("")]),
    ("oid", "0600", None),
    ("oid", "0603550403", ["2.5.4.3", b("")]),
    ("oid", "06022a03", ["1.2.3", b("")]),
    ("oid", "060181", None),  # ends inside a sub-identifier
    ("oid", "0603558003", None),  # 0x80 first: not minimal
    ("oid", "06028837", ["2.999", b("")]),
    ("string", "0c03616263", ["abc", b("")]),
    ("string", "0c02c328", None),  # bad UTF-8
    ("string", "1301ff", None),  # non-ASCII PrintableString
    ("string", "1e0400410042", ["AB", b("")]),
    ("string", "1e03004100", None),  # odd-length BMPString
    ("string", "1403616263", None),  # T61String: not supported
    ("string", "0203616263", None),
    # times: UTCTime YYMMDDHHMMSSZ, GeneralizedTime YYYYMMDDHHMMSSZ, nothing else
    ("time", "170d3439313233313233353935395a", [t(2049, 12, 31, 23, 59, 59), b("")]),
    ("time", "170d3530303130313030303030305a", [t(1950, 1, 1, 0, 0, 0), b("")]),
    ("time", "180f32303530303130313030303030305a", [t(2050, 1, 1, 0, 0, 0), b("")]),
    ("time", "180f32303234303232393132303030305a", [t(2024, 2, 29, 12, 0, 0), b("")]),
    ("time", "180f32303233303232393132303030305a", None),  # 2023-02-29
    ("time", "180f32313030303232393132303030305a", None),  # 2100-02-29
    ("time", "180f32303030303232393132303030305a", [t(2000, 2, 29, 12, 0, 0), b("")]),
    ("time", "170d3439313333313233353935395a", None),  # month 13
    ("time", "170d3439313233313234353935395a", None),  # hour 24
    ("time", "170d3439313233313233363035395a", None),  # minute 60
    ("time", "170b343931323331323335395a", None),  # no seconds
    ("time", "170d343931323331323335393539", None),  # no Z (13 digits)
    ("time", "1711343931323331323335393539", None),
    ("time", "1711" + b"491231235959+0000".hex(), None),  # offset
    ("time", "1811" + b"20500101000000.5Z".hex(), None),  # fraction
    ("time", "170d3439313233312333353935395a", None),  # non-digit
    ("time", "0c0d3439313233313233353935395a", None),  # wrong tag
]


def test_strict_decoding(interp: Interpreter, run_json: RunJSON) -> None:
    results = run_json(interp, DECODE_SCRIPT, [[name, data] for name, data, _ in CASES])
    for (name, data, want), (status, value) in zip(CASES, results, strict=True):
        if want is None:
            assert status == "ValueError", (name, data, value)
            assert value.startswith("asn1: "), value
        else:
            assert (status, value) == ("ok", want), (name, data)


def openssl_der(genstr: str, tmp_path: Path) -> str:
    out = tmp_path / "genstr.der"
    subprocess.run(
        ["openssl", "asn1parse", "-genstr", genstr, "-out", str(out), "-noout"], check=True
    )
    return out.read_bytes().hex()


ENCODE_SCRIPT = """
import sys, json
import make_der
from rmclaim import asn1, csr
for line in sys.stdin:
    call, arg = json.loads(line)
    if call == "integer":
        arg = int(arg, 16)
    elif call in ("octet_string", "bit_string"):
        arg = bytes.fromhex(arg)
    elif call == "time":
        arg = tuple(arg)
    # OIDs: the device's own encoder (rmclaim.csr writes Matter subject OIDs); the rest: the
    # tests' DER encoders, which build the decoders' inputs.
    encode = csr.encode_oid if call == "oid" else getattr(make_der, "encode_" + call)
    print(json.dumps((encode() if arg is None else encode(arg)).hex()))
"""

# (encoder, argument, openssl -genstr equivalent)
ENCODINGS: list[tuple[str, Any, str]] = [
    *[
        ("integer", f"{v:x}", f"INTEGER:{v}")
        for v in (0, 1, 127, 128, 255, 256, 65535, 1 << 255, (1 << 256) - 1, 1 << 1023)
    ],
    ("oid", "2.5.4.3", "OID:2.5.4.3"),
    ("oid", "1.2.840.10045.3.1.7", "OID:1.2.840.10045.3.1.7"),
    ("oid", "1.3.6.1.4.1.37244.2.1", "OID:1.3.6.1.4.1.37244.2.1"),
    ("oid", "2.999.3", "OID:2.999.3"),
    ("oid", "1.2.840.113549.1.1.11", "OID:1.2.840.113549.1.1.11"),
    ("boolean", True, "BOOLEAN:TRUE"),
    ("boolean", False, "BOOLEAN:FALSE"),
    ("utf8_string", "dev-0001", "UTF8String:dev-0001"),
    ("utf8_string", "h\u00e9llo \u2603", "FORMAT:UTF8,UTF8String:h\u00e9llo \u2603"),
    ("octet_string", "", "OCTETSTRING:"),
    *[("octet_string", "ab" * n, f"FORMAT:HEX,OCTETSTRING:{'ab' * n}") for n in (127, 128, 300)],
    ("octet_string", "cd" * 2000, f"FORMAT:HEX,OCTETSTRING:{'cd' * 2000}"),
    ("bit_string", "0102", "FORMAT:HEX,BITSTRING:0102"),
    ("time", [2049, 12, 31, 23, 59, 59], "UTCTIME:491231235959Z"),
    ("time", [1950, 1, 1, 0, 0, 0], "UTCTIME:500101000000Z"),
    ("time", [2050, 1, 1, 0, 0, 0], "GENTIME:20500101000000Z"),
    ("time", [1949, 12, 31, 23, 59, 59], "GENTIME:19491231235959Z"),
]


def test_encoders_match_openssl(interp: Interpreter, run_json: RunJSON, tmp_path: Path) -> None:
    items = [[call, arg] for call, arg, _ in ENCODINGS]
    got = run_json(interp, ENCODE_SCRIPT, items)
    expected = {str(arg): openssl_der(genstr, tmp_path) for _, arg, genstr in ENCODINGS}
    for (_, arg), der in zip(items, got, strict=True):
        assert der == expected[str(arg)], arg
    assert run_json(interp, ENCODE_SCRIPT, [["null", None]]) == ["0500"]


ROUNDTRIP_SCRIPT = """
import sys, json
import make_der
from rmclaim import asn1
for line in sys.stdin:
    r, s = (int(v, 16) for v in json.loads(line))
    der = make_der.encode_ecdsa_signature(r, s)
    print(json.dumps([der.hex(), ["%x" % v for v in asn1.decode_ecdsa_signature(der)]]))
"""


def test_ecdsa_signature_codec_matches_cryptography(
    interp: Interpreter, run_json: RunJSON
) -> None:
    values = [0, 1, 127, 128, 255, 256, (1 << 255) - 1, 1 << 255, (1 << 256) - 1]
    pairs = [(r, s) for r in values for s in values[::2]]
    got = run_json(interp, ROUNDTRIP_SCRIPT, [[f"{r:x}", f"{s:x}"] for r, s in pairs])
    for (r, s), (der, decoded) in zip(pairs, got, strict=True):
        assert bytes.fromhex(der) == encode_dss_signature(r, s)
        assert [int(v, 16) for v in decoded] == [r, s]


def test_encode_rejects_what_it_cannot_encode(interp: Interpreter, run_json: RunJSON) -> None:
    script = """
import json
import make_der
from rmclaim import asn1, csr
out = []
for call, arg in (("integer", -1), ("oid", "3.1"), ("oid", "1.40"), ("oid", "1"),
                  ("oid", "1.2.-3")):
    try:
        (csr.encode_oid if call == "oid" else getattr(make_der, "encode_" + call))(arg)
        out.append("accepted")
    except ValueError:
        out.append("ValueError")
print(json.dumps(out))
"""
    assert run_json(interp, script, []) == [["ValueError"] * 5]


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.binary(max_size=48), min_size=40, max_size=40))
def test_property_decoders_raise_only_value_error(
    mpy: Interpreter, run_json: RunJSON, blobs: list[bytes]
) -> None:
    # Random bytes, and the same bytes behind each tag: every decoder either returns or
    # raises ValueError (DERError), never anything else.
    tagged = [bytes([tag, len(blob)]) + blob for tag in b"\x020\x06\x17" for blob in blobs[:10]]
    items = [[name, data.hex()] for data in blobs + tagged for name in DECODERS]
    results = run_json(mpy, DECODE_SCRIPT, items)
    for (name, data), (status, value) in zip(items, results, strict=True):
        assert status in ("ok", "ValueError"), (name, data, value)


def mutations(der: bytes) -> st.SearchStrategy[bytes]:
    position = st.integers(min_value=0, max_value=len(der) - 1)
    byte = st.integers(min_value=0, max_value=255)
    return st.one_of(
        st.builds(lambda i, v: der[:i] + bytes([v]) + der[i + 1 :], position, byte),
        st.builds(lambda i, v: der[:i] + bytes([v]) + der[i:], position, byte),
        st.builds(lambda i: der[:i] + der[i + 1 :], position),
        st.builds(lambda i: der[:i], position),
        st.builds(lambda tail: der + tail, st.binary(min_size=1, max_size=3)),
    )


SIGNATURE = encode_dss_signature((1 << 255) + 12345, 0x7F << 240)


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(mutations(SIGNATURE), min_size=60, max_size=60))
def test_property_mutated_signatures_agree_with_cryptography(
    mpy: Interpreter, run_json: RunJSON, variants: list[bytes]
) -> None:
    # A DER decoder that accepts only canonical encodings: whatever it accepts re-encodes to
    # the same bytes, and it accepts exactly what cryptography's decoder accepts.
    items = [["ecdsa_signature", der.hex()] for der in variants]
    for der, (status, value) in zip(variants, run_json(mpy, DECODE_SCRIPT, items), strict=True):
        try:
            want: tuple[int, int] | None = decode_dss_signature(der)
        except ValueError:
            want = None
        if status == "ok":
            r, s = (int(v["i"], 16) for v in value)
            assert encode_dss_signature(r, s) == der
            assert want == (r, s)
        else:
            assert status == "ValueError" and want is None, (der.hex(), value)


def test_encode_length_is_minimal(interp: Interpreter, run_json: RunJSON) -> None:
    script = """
import sys, json
import make_der
from rmclaim import asn1
for line in sys.stdin:
    n = json.loads(line)
    header = make_der.encode_length(n)
    tag, content, rest = asn1.decode_tlv(b"\\x04" + header + bytes(n))
    print(json.dumps([header.hex(), tag, len(content), len(rest)]))
"""
    lengths = [0, 1, 127, 128, 255, 256, 65535, 65536]
    want = ["00", "01", "7f", "8180", "81ff", "820100", "82ffff", "83010000"]
    got = run_json(interp, script, lengths, heap="1M")
    assert got == [[h, 4, n, 0] for h, n in zip(want, lengths, strict=True)]


TEXT_SCRIPT = """
import sys, json
import make_der
from rmclaim import asn1
for line in sys.stdin:
    value, rest = asn1.decode_integer(bytes.fromhex(json.loads(line)))
    loaded = "rmclaim.asn1_text" in sys.modules
    try:
        asn1.decode_integer(b"\\x02\\x02\\x00\\x05")
    except ValueError as e:
        print(json.dumps([value, loaded, "rmclaim.asn1_text" in sys.modules, str(e)]))
"""


def test_error_texts_come_onto_the_heap_only_with_an_error(
    interp: Interpreter, run_json: RunJSON
) -> None:
    # Reading DER needs no message texts (about 0.9 KB): they load with the first error.
    assert run_json(interp, TEXT_SCRIPT, ["020105"]) == [
        [5, False, True, "asn1: wanted a minimal INTEGER, got b'\\x00\\x05'"]
    ]
