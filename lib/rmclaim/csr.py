"""PKCS#10 requests for a P-256 key and the SEC1 private-key format (PEM: rmclaim.pem)."""

# The request (RFC 2986) holds version 0, the subject (CN first, then any extra attributes,
# one per RDN, all UTF8String), the P-256 SubjectPublicKeyInfo, empty attributes (A0 00) and
# an ecdsa-with-SHA256 signature with an RFC 6979 nonce, so the same key and subject always
# give the same bytes. The key is stored as SEC1 ECPrivateKey (RFC 5915) with the [0] curve
# OID, which MicroPython's tls.SSLContext.load_cert_chain needs, and the [1] public key.
#
# Every structure here has a fixed shape, so this module writes and reads its DER itself and
# needs no asn1 (its heap stays free while a key is made or a CSR signed): a P-256 SEC1 key
# has exactly one strict DER encoding for each d (121 bytes with the public key, 51 without).

from rmclaim.errors import ClaimError, DERError

# SEQUENCE { SEQUENCE { id-ecPublicKey, prime256v1 }, BIT STRING (66 bytes: 00 04 x y) }
_SPKI_PREFIX = b"0Y0\x13\x06\x07*\x86H\xce=\x02\x01\x06\x08*\x86H\xce=\x03\x01\x07\x03B\x00"
# ECPrivateKey SEQUENCE (119 bytes) { INTEGER 1, OCTET STRING (32 bytes) ...
_SEC1_HEAD = b"0w\x02\x01\x01\x04 "
# ... [0] { OID prime256v1 }, [1] { BIT STRING (66 bytes: 00 04 x y) } }
_SEC1_TAIL = b"\xa0\n\x06\x08*\x86H\xce=\x03\x01\x07\xa1D\x03B\x00"
# SEQUENCE { ecdsa-with-SHA256 } (no parameters, RFC 5758)
_ECDSA_SHA256 = b"0\n\x06\x08*\x86H\xce=\x04\x03\x02"
_CN_OID = b"\x06\x03U\x04\x03"
# Matter claims carry these subject attributes (the CLI's test vendor/product ids).
_MATTER_SUBJECT = (("1.3.6.1.4.1.37244.2.1", "131B"), ("1.3.6.1.4.1.37244.2.2", "0002"))


def public_point(d):
    # The 65-byte uncompressed point 04 || x || y of the key d. (p256 is imported by the calls
    # that need it: the PEM helpers alone stay small.)
    from rmclaim import p256

    x, y = p256.public_key(d)
    return b"\x04" + x.to_bytes(32, "big") + y.to_bytes(32, "big")


def _tlv(tag, body):
    # DER tag, definite minimal length (contents here stay under 64 KB), contents.
    n = len(body)
    if n < 0x80:
        return bytes((tag, n)) + body
    if n < 0x100:
        return bytes((tag, 0x81, n)) + body
    return bytes((tag, 0x82, n >> 8, n & 0xFF)) + body


def _rdn(oid_der, what, value):
    # One RelativeDistinguishedName: SET { SEQUENCE { oid, UTF8String value } }; the value is
    # 1 to 64 bytes of UTF-8 (ub-common-name, counted as cryptography and so the service do).
    if not isinstance(value, str) or not 1 <= len(value.encode()) <= 64:
        raise ValueError("csr: %s must be 1 to 64 bytes of text, got %r" % (what, value))
    return _tlv(0x31, _tlv(0x30, oid_der + _tlv(0x0C, value.encode())))


def _integer(v):
    # A positive INTEGER below 2^256: minimal, with a 00 in front when the top bit is set.
    b = v.to_bytes(33, "big")
    i = 0
    while i < 32 and not b[i] and b[i + 1] < 0x80:
        i += 1
    return _tlv(2, b[i:])


def encode_oid(dotted):
    # The DER OBJECT IDENTIFIER for "1.3.6.1.4.1.37244.2.1"; ValueError for a bad one.
    arcs = [int(a) for a in dotted.split(".")]
    if len(arcs) < 2 or arcs[0] > 2 or (arcs[0] < 2 and arcs[1] > 39) or min(arcs) < 0:
        raise ValueError("csr: bad OID %s" % dotted)
    out = bytearray()
    arcs[1] += 40 * arcs[0]
    for arc in arcs[1:]:
        shift = 7
        while arc >> shift:
            shift += 7
        while shift > 7:
            shift -= 7
            out.append(0x80 | (arc >> shift & 0x7F))
        out.append(arc & 0x7F)
    return _tlv(0x06, bytes(out))


def build_csr(d, common_name, extra_subject=None):
    # DER CertificationRequest for key d with subject CN=common_name, then each (oid, value)
    # of extra_subject, e.g. [("1.3.6.1.4.1.37244.2.1", "131B")] for a Matter vendor id.
    subject = _rdn(_CN_OID, "common name", common_name)
    if extra_subject:
        for oid, value in extra_subject:
            subject += _rdn(encode_oid(oid), "subject attribute " + str(oid), value)
    info = _tlv(
        0x30, b"\x02\x01\x00" + _tlv(0x30, subject) + _SPKI_PREFIX + public_point(d) + b"\xa0\x00"
    )
    del subject
    import hashlib

    from rmclaim import p256

    r, s = p256.sign(d, hashlib.sha256(info).digest())
    sig = _tlv(0x30, _integer(r) + _integer(s))
    return _tlv(0x30, info + _ECDSA_SHA256 + _tlv(3, b"\x00" + sig))


def request_pem(d, node_id, matter=False):
    # The CSR of a claim as PEM: CN the node id, with the Matter subject attributes when
    # matter (rmclaim.claim offers it as build_csr_pem). ClaimError if it cannot be built.
    try:
        der = build_csr(d, node_id, _MATTER_SUBJECT if matter else None)
    except ValueError as e:
        raise ClaimError("csr: cannot build a request for node id %r: %s" % (node_id, e)) from e
    from rmclaim import pem

    return pem.encode(der, "CERTIFICATE REQUEST")


def encode_private_key(d):
    # SEC1 ECPrivateKey DER (121 bytes): version 1, d, [0] prime256v1, [1] public key.
    return _SEC1_HEAD + d.to_bytes(32, "big") + _SEC1_TAIL + public_point(d)


def decode_private_key(der):
    # d from SEC1 ECPrivateKey DER: version 1, a 32-byte key in [1, n-1], the P-256 curve
    # OID (required) and, when present, a public key that must be d's. Strict DER allows one
    # encoding of that: the 121 bytes encode_private_key makes, or (no public key) the first
    # 51 of them with the SEQUENCE length 49.
    der = bytes(der)
    n = len(der)
    if n != 121 and n != 51:
        raise DERError("csr: wanted a P-256 SEC1 key of 121 or 51 bytes, got %d" % n)
    head = _SEC1_HEAD if n == 121 else b"\x30\x31" + _SEC1_HEAD[2:]
    want = head + der[7:39] + _SEC1_TAIL
    for i in range(min(n, 56)):
        if der[i] != want[i]:
            raise DERError(
                "csr: not a P-256 SEC1 key: byte %d is 0x%02x, wanted 0x%02x"
                % (i, der[i], want[i])
            )
    d = int.from_bytes(der[7:39], "big")
    try:
        point = public_point(d)
    except ValueError:
        raise DERError("csr: private key out of range [1, n-1]") from None
    if n == 121 and der[56:] != point:
        raise DERError("csr: the public key stored with the private key is not its own")
    return d
