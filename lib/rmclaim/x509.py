"""X.509 certificates: parse the fields claiming needs, split PEM chains, check signatures."""

# parse_certificate() checks the DER structure strictly (DERError on anything malformed) and
# keeps the raw parts a signature check needs; it does not judge validity dates or names.
# verify_signature() supports issuers with EC P-256 keys (ecdsa-with-SHA256) and RSA keys of
# 2048 to 4096 bits with a public exponent below 2^32 (sha256WithRSAEncryption, PKCS#1 v1.5,
# as the ESP RainMaker CA uses). p256 and csr (PEM) are imported only by the calls that need
# them.

import hashlib

from micropython import const

from rmclaim.asn1 import (
    decode_all,
    decode_bit_string,
    decode_boolean,
    decode_context,
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
        # The decoders work on a memoryview of der: their pieces are views, not copies (a
        # certificate is read in a few dozen steps); fields are bytes of their own.
        body = decode_all(memoryview(der), decode_sequence)
        tbs_body, rest = decode_sequence(body)
        self.tbs = bytes(body[: len(body) - len(rest)])
        self.signature_algorithm, params, rest = _algorithm(rest)
        if params and params != b"\x05\x00":
            raise DERError("x509: unexpected signature algorithm parameters")
        self.signature = bytes(decode_all(rest, decode_bit_string))

        body = tbs_body
        del tbs_body, rest
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
        self.issuer, attributes, body = _name(body)
        self.issuer_cn = _common_name(attributes)
        validity, body = decode_sequence(body)
        self.not_before, validity = decode_time(validity)
        self.not_after, validity = decode_time(validity)
        if validity:
            raise DERError("x509: %d bytes after the validity" % len(validity))
        self.subject, self.subject_attributes, body = _name(body)
        self.subject_cn = _common_name(self.subject_attributes)

        # SubjectPublicKeyInfo: the P-256 point, or the RSA modulus and exponent.
        key, body = decode_sequence(body)
        self.public_key_algorithm, params, key = _algorithm(key)
        key = decode_all(key, decode_bit_string)
        self.public_key_point = self.rsa_modulus = self.rsa_exponent = None
        if self.public_key_algorithm == _EC_KEY:
            if decode_all(params, decode_oid) == _P256 and len(key) == 65 and key[0] == 4:
                self.public_key_point = bytes(key)
        elif self.public_key_algorithm == _RSA_KEY:
            decode_all(params, decode_null)
            key = decode_all(key, decode_sequence)
            self.rsa_modulus, key = decode_integer(key)
            self.rsa_exponent, key = decode_integer(key)
            if key:
                raise DERError("x509: %d bytes after the RSA exponent" % len(key))

        for number in (1, 2):  # issuerUniqueID, subjectUniqueID: [n] IMPLICIT BIT STRING
            if body and body[0] in (0x80 | number, 0xA0 | number):
                _, _, body = decode_tlv(body)
        self.extensions = {}  # type: dict
        if body and body[0] == 0xA3:
            # {oid: (critical, value DER)} of the Extensions SEQUENCE.
            ext, body = decode_context(body, 3)
            ext = decode_all(ext, decode_sequence)
            if not ext:
                raise DERError("x509: empty extensions")
            while ext:
                one, ext = decode_sequence(ext)
                oid, one = decode_oid(one)
                critical = False
                if one and one[0] == 0x01:
                    critical, one = decode_boolean(one)
                value = decode_all(one, decode_octet_string)
                if oid in self.extensions:
                    raise DERError("x509: extension %s twice" % oid)
                self.extensions[oid] = (critical, bytes(value))
        if body:
            raise DERError("x509: unexpected tag 0x%02x at the end" % body[0])
        # Basic constraints: (cA flag, path length); (None, None) without the extension.
        self.ca = self.path_length = None
        if _BASIC_CONSTRAINTS in self.extensions:
            body = decode_all(self.extensions[_BASIC_CONSTRAINTS][1], decode_sequence)
            self.ca = False
            if body and body[0] == 0x01:
                self.ca, body = decode_boolean(body)
            if body:
                self.path_length, body = decode_integer(body)
            if body:
                raise DERError("x509: %d bytes after basic constraints" % len(body))


def _algorithm(data):
    # (OID, raw parameters or b"") of an AlgorithmIdentifier, and the rest.
    body, rest = decode_sequence(data)
    oid, params = decode_oid(body)
    return oid, params, rest


def _name(data):
    # (raw Name DER, [(oid, value or None)], rest); value is None for non-string types.
    body, rest = decode_sequence(data)
    raw = bytes(data[: len(data) - len(rest)])
    attributes = []
    while body:
        rdn, body = decode_set(body)
        if not rdn:
            raise DERError("x509: empty RDN")
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


def parse_certificate(der):
    # A Certificate from one DER certificate filling all of der; DERError when malformed.
    return Certificate(der)


def split_pem_chain(text):
    # The DER of every CERTIFICATE block in text (str or bytes), in order; DERError if there
    # is none or one is damaged.
    from rmclaim import pem

    return pem.split(text, "CERTIFICATE")


def ec_signature(cert, issuer):
    # What an ECDSA P-256/SHA-256 check of cert (a Certificate) by issuer (a Certificate) needs,
    # as plain numbers for p256.verify: ((x, y), digest, (r, s)); None when cert is not signed
    # with ecdsa-with-SHA256 (or says so inconsistently), the issuer has no P-256 key, or the
    # signature is malformed. (A claim checks with it after the parser has left the heap.)
    point = issuer.public_key_point
    algorithm = cert.signature_algorithm
    if point is None or algorithm != ECDSA_SHA256 or algorithm != cert.tbs_signature_algorithm:
        return None
    from rmclaim.asn1 import decode_ecdsa_signature

    try:
        rs = decode_ecdsa_signature(cert.signature)
    except ValueError:
        return None
    x = int.from_bytes(point[1:33], "big")
    y = int.from_bytes(point[33:], "big")
    return (x, y), hashlib.sha256(cert.tbs).digest(), rs


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
        if algorithm == ECDSA_SHA256:
            job = ec_signature(cert, issuer)
            if job is None:
                return False
            from rmclaim import p256

            return p256.verify(*job)
        n = issuer.rsa_modulus
        if algorithm == RSA_SHA256 and n is not None:
            # PKCS#1 v1.5: s^e mod n must be 00 01 FF..FF 00 DigestInfo(sha256, digest).
            e = issuer.rsa_exponent
            signature = cert.signature
            size = 0
            m = n
            while m:
                m >>= 8
                size += 1
            if not _MIN_RSA_BYTES <= size <= _MAX_RSA_BYTES or len(signature) != size:
                return False
            if e < 3 or not e & 1 or e >> 32:
                return False
            s = int.from_bytes(signature, "big")
            if s >= n:
                return False
            info = _SHA256_INFO + hashlib.sha256(cert.tbs).digest()
            expected = b"\x00\x01" + b"\xff" * (size - 3 - len(info)) + b"\x00" + info
            return pow(s, e, n).to_bytes(size, "big") == expected
    except (ValueError, TypeError, AttributeError, IndexError):
        return False
    return False
