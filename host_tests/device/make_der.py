"""DER encoders for the tests (run under MicroPython too): they build what rmclaim.asn1 reads.

The device writes no general DER (rmclaim.csr writes its fixed structures itself, and the
OBJECT IDENTIFIERs: csr.encode_oid), so these live with the tests. Minimal lengths and
INTEGERs, as DER wants; checked against openssl in test_asn1.
"""

_INTEGER = 0x02
_SEQUENCE = 0x30


def encode_length(n: int) -> bytes:
    if n < 0x80:
        return bytes((n,))
    size = 0
    m = n
    while m:
        m >>= 8
        size += 1
    return bytes((0x80 | size,)) + n.to_bytes(size, "big")


def encode_tlv(tag: int, content: bytes) -> bytes:
    return bytes((tag,)) + encode_length(len(content)) + content


def encode_sequence(*items: bytes) -> bytes:
    return encode_tlv(_SEQUENCE, b"".join(items))


def encode_set(*items: bytes) -> bytes:
    # DER sorts SET OF by encoding; SETs here hold one item, so no sorting is needed.
    return encode_tlv(0x31, b"".join(items))


def encode_context(number: int, content: bytes) -> bytes:
    # [number] EXPLICIT (constructed), content already encoded.
    return encode_tlv(0xA0 | number, content)


def encode_integer(value: int) -> bytes:
    # Non-negative INTEGER: minimal big-endian, a 0x00 in front when the top bit is set.
    if value < 0:
        raise ValueError("asn1: negative INTEGER %d not supported" % value)
    size = 1
    m = value >> 8
    while m:
        m >>= 8
        size += 1
    body = value.to_bytes(size, "big")
    if body[0] & 0x80:
        body = b"\x00" + body
    return encode_tlv(_INTEGER, body)


def encode_boolean(value: bool) -> bytes:
    return encode_tlv(0x01, b"\xff" if value else b"\x00")


def encode_null() -> bytes:
    return b"\x05\x00"


def encode_octet_string(value: bytes) -> bytes:
    return encode_tlv(0x04, value)


def encode_bit_string(value: bytes) -> bytes:
    # Whole bytes only (0 unused bits): keys and signatures.
    return encode_tlv(0x03, b"\x00" + value)


def encode_utf8_string(text: str) -> bytes:
    return encode_tlv(0x0C, text.encode())


def encode_time(t: tuple[int, ...]) -> bytes:
    # UTCTime for 1950..2049 (RFC 5280 section 4.1.2.5), GeneralizedTime otherwise.
    year = t[0]
    text = "%02d%02d%02d%02d%02dZ" % tuple(t[1:6])
    if 1950 <= year < 2050:
        return encode_tlv(0x17, ("%02d" % (year % 100) + text).encode())
    return encode_tlv(0x18, ("%04d" % year + text).encode())


def encode_ecdsa_signature(r: int, s: int) -> bytes:
    return encode_sequence(encode_integer(r), encode_integer(s))
