"""PKCS#10 requests for a P-256 key, the SEC1 private-key format, and PEM armour."""

# The request (RFC 2986) holds version 0, the subject (CN first, then any extra attributes,
# one per RDN, all UTF8String), the P-256 SubjectPublicKeyInfo, empty attributes (A0 00) and
# an ecdsa-with-SHA256 signature with an RFC 6979 nonce, so the same key and subject always
# give the same bytes. The key is stored as SEC1 ECPrivateKey (RFC 5915) with the [0] curve
# OID, which MicroPython's tls.SSLContext.load_cert_chain needs, and the [1] public key.

import binascii
import hashlib

from rmclaim import p256
from rmclaim.asn1 import (
    decode_all,
    decode_bit_string,
    decode_context,
    decode_integer,
    decode_octet_string,
    decode_oid,
    decode_sequence,
    encode_bit_string,
    encode_ecdsa_signature,
    encode_oid,
    encode_sequence,
    encode_set,
    encode_utf8_string,
)
from rmclaim.errors import DERError

_P256_OID = "1.2.840.10045.3.1.7"
# SEQUENCE { SEQUENCE { id-ecPublicKey, prime256v1 }, BIT STRING (66 bytes: 00 04 x y) }
_SPKI_PREFIX = b"0Y0\x13\x06\x07*\x86H\xce=\x02\x01\x06\x08*\x86H\xce=\x03\x01\x07\x03B\x00"
# [0] { OID prime256v1 } in an ECPrivateKey
_CURVE_PARAM = b"\xa0\n\x06\x08*\x86H\xce=\x03\x01\x07"
# SEQUENCE { ecdsa-with-SHA256 } (no parameters, RFC 5758)
_ECDSA_SHA256 = b"0\n\x06\x08*\x86H\xce=\x04\x03\x02"
_CN_OID = b"\x06\x03U\x04\x03"
_B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def public_point(d):
    # The 65-byte uncompressed point 04 || x || y of the key d.
    x, y = p256.public_key(d)
    return b"\x04" + x.to_bytes(32, "big") + y.to_bytes(32, "big")


def _check_text(what, value):
    # 1 to 64 bytes of UTF-8 (ub-common-name, counted as cryptography and so the service do).
    if not isinstance(value, str) or not 1 <= len(value.encode()) <= 64:
        raise ValueError("csr: %s must be 1 to 64 bytes of text, got %r" % (what, value))


def build_csr(d, common_name, extra_subject=None):
    # DER CertificationRequest for key d with subject CN=common_name, then each (oid, value)
    # of extra_subject, e.g. [("1.3.6.1.4.1.37244.2.1", "131B")] for a Matter vendor id.
    _check_text("common name", common_name)
    rdns = [encode_set(encode_sequence(_CN_OID, encode_utf8_string(common_name)))]
    if extra_subject:
        for oid, value in extra_subject:
            _check_text("subject attribute " + str(oid), value)
            rdns.append(encode_set(encode_sequence(encode_oid(oid), encode_utf8_string(value))))
    info = encode_sequence(
        b"\x02\x01\x00", encode_sequence(*rdns), _SPKI_PREFIX + public_point(d), b"\xa0\x00"
    )
    r, s = p256.sign(d, hashlib.sha256(info).digest())
    return encode_sequence(info, _ECDSA_SHA256, encode_bit_string(encode_ecdsa_signature(r, s)))


def encode_private_key(d):
    # SEC1 ECPrivateKey DER (121 bytes): version 1, d, [0] prime256v1, [1] public key.
    point = encode_bit_string(public_point(d))
    return encode_sequence(
        b"\x02\x01\x01",
        b"\x04\x20" + d.to_bytes(32, "big"),
        _CURVE_PARAM,
        b"\xa1" + bytes((len(point),)) + point,
    )


def decode_private_key(der):
    # d from SEC1 ECPrivateKey DER: version 1, a 32-byte key in [1, n-1], the P-256 curve
    # OID (required) and, when present, a public key that must be d's.
    body = decode_all(der, decode_sequence)
    version, body = decode_integer(body)
    if version != 1:
        raise DERError("csr: wanted ECPrivateKey version 1, got %d" % version)
    secret, body = decode_octet_string(body)
    if len(secret) != 32:
        raise DERError("csr: wanted a 32-byte private key, got %d bytes" % len(secret))
    d = int.from_bytes(secret, "big")
    params, body = decode_context(body, 0)
    oid = decode_all(params, decode_oid)
    if oid != _P256_OID:
        raise DERError("csr: wanted curve %s, got %s" % (_P256_OID, oid))
    try:
        point = public_point(d)
    except ValueError:
        raise DERError("csr: private key out of range [1, n-1]") from None
    if body:
        public, body = decode_context(body, 1)
        if decode_all(public, decode_bit_string) != point:
            raise DERError("csr: the public key stored with the private key does not match it")
        if body:
            raise DERError("csr: %d bytes after the public key" % len(body))
    return d


def pem_encode(der, label):
    lines = ["-----BEGIN %s-----\n" % label]
    for i in range(0, len(der), 48):
        lines.append(binascii.b2a_base64(der[i : i + 48]).decode())
    lines.append("-----END %s-----\n" % label)
    return "".join(lines)


def pem_decode(text, label):
    # The DER of the first "-----BEGIN label-----" block of text (str or bytes); DERError if
    # there is none or its body is not clean base64.
    if not isinstance(text, str):
        try:
            text = bytes(text).decode()
        except UnicodeError:
            raise DERError("pem: %s text is not UTF-8" % label) from None
    begin = "-----BEGIN %s-----" % label
    end = "-----END %s-----" % label
    start = text.find(begin)
    if start < 0:
        raise DERError("pem: no %s found" % begin)
    start += len(begin)
    stop = text.find(end, start)
    if stop < 0:
        raise DERError("pem: %s without %s" % (begin, end))
    body = "".join(text[start:stop].split())
    pad = len(body) - len(body.rstrip("="))
    if not body or len(body) % 4 or pad > 2:
        raise DERError("pem: %s body is not base64 (length %d)" % (label, len(body)))
    b64 = _B64
    for i in range(len(body) - pad):
        if body[i] not in b64:
            raise DERError("pem: character %r in the %s body" % (body[i], label))
    return binascii.a2b_base64(body)
