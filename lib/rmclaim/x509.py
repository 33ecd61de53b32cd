"""X.509 certificates: parse the fields claiming needs, split PEM chains, check signatures."""

# parse_certificate() checks the DER structure strictly (DERError on anything malformed) and
# keeps the raw parts a signature check needs; it does not judge validity dates or names.
# verify_signature() supports issuers with EC P-256 keys (ecdsa-with-SHA256) and RSA keys of
# 2048 to 4096 bits with a public exponent below 2^32 (sha256WithRSAEncryption, PKCS#1 v1.5,
# as the ESP RainMaker CA uses).

import hashlib

from micropython import const

from rmclaim import p256
from rmclaim.asn1 import (
    decode_all,
    decode_bit_string,
    decode_boolean,
    decode_context,
    decode_ecdsa_signature,
    decode_integer,
    decode_null,
    decode_octet_string,
    decode_oid,
    decode_sequence,
    decode_set,
    decode_string,
    decode_time,
    decode_tlv,
    integer_content,
)
from rmclaim.errors import DERError

ECDSA_SHA256 = "1.2.840.10045.4.3.2"
RSA_SHA256 = "1.2.840.113549.1.1.11"
_EC_KEY = "1.2.840.10045.2.1"
_P256 = "1.2.840.10045.3.1.7"
_RSA_KEY = "1.2.840.113549.1.1.1"
_CN = "2.5.4.3"
_BASIC_CONSTRAINTS = "2.5.29.19"
_MIN_RSA_BYTES = const(256)
_MAX_RSA_BYTES = const(512)  # 4096 bits: more would take the device minutes
# DigestInfo { sha256, NULL } header before the 32-byte hash (RFC 8017 section 9.2 note 1).
_SHA256_INFO = b"010\r\x06\t`\x86H\x01e\x03\x04\x02\x01\x05\x00\x04 "


class Certificate:
    # Fields: der, tbs (the signed TBSCertificate, whole TLV), version (1..3), serial (int),
    # signature_algorithm and tbs_signature_algorithm (dotted OIDs), signature (bytes),
    # issuer and subject (raw Name DER), issuer_cn and subject_cn (str or None),
    # subject_attributes (list of (oid, str or None)), not_before and not_after
    # ((year, month, day, hour, minute, second) UTC), public_key_algorithm (OID),
    # public_key_point (65 bytes for EC P-256, else None), rsa_modulus and rsa_exponent (for
    # RSA keys, else None), extensions ({oid: (critical, value DER)}), ca (the basic
    # constraints cA flag, None without that extension), path_length (int or None).
    def __init__(self, der):
        der = bytes(der)
        self.der = der
        body = decode_all(der, decode_sequence)
        tbs_body, rest = decode_sequence(body)
        self.tbs = body[: len(body) - len(rest)]
        self.signature_algorithm, params, rest = _algorithm(rest)
        if params and params != b"\x05\x00":
            raise DERError("x509: unexpected signature algorithm parameters")
        self.signature = decode_all(rest, decode_bit_string)

        body = tbs_body
        self.version = 1
        if body and body[0] == 0xA0:
            version, body = decode_context(body, 0)
            version = decode_all(version, decode_integer)
            if version not in (1, 2):  # v1 is encoded by leaving the field out (DER DEFAULT)
                raise DERError("x509: wanted version v2 or v3, got %d" % version)
            self.version = version + 1
        serial, body = integer_content(body)
        self.serial = int.from_bytes(serial, "big")
        if serial[0] & 0x80:
            self.serial -= 1 << (8 * len(serial))
        self.tbs_signature_algorithm, _, body = _algorithm(body)
        self.issuer, issuer_attributes, body = _name(body)
        self.issuer_cn = _common_name(issuer_attributes)
        validity, body = decode_sequence(body)
        self.not_before, validity = decode_time(validity)
        self.not_after, validity = decode_time(validity)
        if validity:
            raise DERError("x509: %d bytes after the validity period" % len(validity))
        self.subject, self.subject_attributes, body = _name(body)
        self.subject_cn = _common_name(self.subject_attributes)
        key, body = decode_sequence(body)
        (
            self.public_key_algorithm,
            self.public_key_point,
            self.rsa_modulus,
            self.rsa_exponent,
        ) = _public_key(key)
        for number in (1, 2):  # issuerUniqueID, subjectUniqueID: [n] IMPLICIT BIT STRING
            if body and body[0] in (0x80 | number, 0xA0 | number):
                _, _, body = decode_tlv(body)
        self.extensions = {}
        if body and body[0] == 0xA3:
            extensions, body = decode_context(body, 3)
            self.extensions = _extensions(extensions)
        if body:
            raise DERError("x509: unexpected tag 0x%02x at the end of the certificate" % body[0])
        self.ca, self.path_length = _basic_constraints(self.extensions)


def _algorithm(data):
    # (OID, raw parameters or b"") of an AlgorithmIdentifier, and the rest.
    body, rest = decode_sequence(data)
    oid, params = decode_oid(body)
    return oid, params, rest


def _name(data):
    # (raw Name DER, [(oid, value or None)], rest); value is None for non-string types.
    body, rest = decode_sequence(data)
    raw = data[: len(data) - len(rest)]
    attributes = []
    while body:
        rdn, body = decode_set(body)
        if not rdn:
            raise DERError("x509: empty RelativeDistinguishedName")
        while rdn:
            atv, rdn = decode_sequence(rdn)
            oid, value = decode_oid(atv)
            try:
                text, extra = decode_string(value)
            except DERError:
                text = None
                _, _, extra = decode_tlv(value)
            if extra:
                raise DERError("x509: %d bytes after the value of %s" % (len(extra), oid))
            attributes.append((oid, text))
    return raw, attributes, rest


def _common_name(attributes):
    for oid, value in attributes:
        if oid == _CN:
            return value
    return None


def _public_key(body):
    # (algorithm OID, P-256 point or None, RSA modulus or None, RSA exponent or None) of the
    # content of a SubjectPublicKeyInfo.
    oid, params, body = _algorithm(body)
    key = decode_all(body, decode_bit_string)
    if oid == _EC_KEY:
        curve = decode_all(params, decode_oid)
        if curve == _P256 and len(key) == 65 and key[0] == 4:
            return oid, bytes(key), None, None
    elif oid == _RSA_KEY:
        decode_all(params, decode_null)
        body = decode_all(key, decode_sequence)
        modulus, body = decode_integer(body)
        exponent, body = decode_integer(body)
        if body:
            raise DERError("x509: %d bytes after the RSA public exponent" % len(body))
        return oid, None, modulus, exponent
    return oid, None, None, None


def _extensions(data):
    # {oid: (critical, value DER)} of the Extensions SEQUENCE in data.
    seen = {}
    body = decode_all(data, decode_sequence)
    if not body:
        raise DERError("x509: empty extensions")
    while body:
        ext, body = decode_sequence(body)
        oid, ext = decode_oid(ext)
        critical = False
        if ext and ext[0] == 0x01:
            critical, ext = decode_boolean(ext)
        value = decode_all(ext, decode_octet_string)
        if oid in seen:
            raise DERError("x509: extension %s twice" % oid)
        seen[oid] = (critical, bytes(value))
    return seen


def _basic_constraints(extensions):
    # (cA flag, path length) from basic constraints; (None, None) without the extension.
    if _BASIC_CONSTRAINTS not in extensions:
        return None, None
    body = decode_all(extensions[_BASIC_CONSTRAINTS][1], decode_sequence)
    ca = False
    length = None
    if body and body[0] == 0x01:
        ca, body = decode_boolean(body)
    if body:
        length, body = decode_integer(body)
    if body:
        raise DERError("x509: %d bytes after basic constraints" % len(body))
    return ca, length


def parse_certificate(der):
    # A Certificate from one DER certificate filling all of der; DERError when malformed.
    return Certificate(der)


def split_pem_chain(text):
    # The DER of every CERTIFICATE block in text, in order; DERError if there is none.
    from rmclaim.csr import pem_decode

    if not isinstance(text, str):
        try:
            text = bytes(text).decode()
        except UnicodeError:
            raise DERError("pem: certificate text is not UTF-8") from None
    chain = []
    begin = "-----BEGIN CERTIFICATE-----"
    start = text.find(begin)
    while start >= 0:
        stop = text.find("-----END CERTIFICATE-----", start)
        if stop < 0:
            raise DERError("pem: %s without its END line" % begin)
        chain.append(pem_decode(text[start : stop + 25], "CERTIFICATE"))
        start = text.find(begin, stop)
    if not chain:
        raise DERError("pem: no %s found" % begin)
    return chain


def _rsa_verify(modulus, exponent, signature, digest):
    size = 0
    m = modulus
    while m:
        m >>= 8
        size += 1
    if not _MIN_RSA_BYTES <= size <= _MAX_RSA_BYTES or len(signature) != size:
        return False
    if exponent < 3 or not exponent & 1 or exponent >> 32:
        return False
    s = int.from_bytes(signature, "big")
    if s >= modulus:
        return False
    info = _SHA256_INFO + digest
    expected = b"\x00\x01" + b"\xff" * (size - 3 - len(info)) + b"\x00" + info
    return pow(s, exponent, modulus).to_bytes(size, "big") == expected


def verify_signature(cert, issuer):
    # True when cert (a Certificate or DER) carries a valid signature by issuer's key;
    # False for anything else, malformed input included. Names and dates are not checked.
    try:
        if not isinstance(cert, Certificate):
            cert = parse_certificate(cert)
        if not isinstance(issuer, Certificate):
            issuer = parse_certificate(issuer)
        algorithm = cert.signature_algorithm
        if algorithm != cert.tbs_signature_algorithm:
            return False
        digest = hashlib.sha256(cert.tbs).digest()
        if algorithm == ECDSA_SHA256:
            point = issuer.public_key_point
            if point is None:
                return False
            x = int.from_bytes(point[1:33], "big")
            y = int.from_bytes(point[33:], "big")
            return p256.verify((x, y), digest, decode_ecdsa_signature(cert.signature))
        if algorithm == RSA_SHA256 and issuer.rsa_modulus is not None:
            return _rsa_verify(issuer.rsa_modulus, issuer.rsa_exponent, cert.signature, digest)
    except (ValueError, TypeError, AttributeError, IndexError):
        return False
    return False
