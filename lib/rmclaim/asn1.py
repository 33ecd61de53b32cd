"""Minimal strict DER decoding: each decoder returns (value, remaining bytes)."""

# Strict in both directions: lengths and INTEGERs must be minimal, no BER long forms or
# indefinite lengths, no multi-byte tags, no negative INTEGERs where a non-negative one is
# wanted, nothing past the end of the input. Any violation raises DERError (a ValueError)
# naming what was wanted and what was found. Values are bytes; no module above needs more.
# The device reads DER (certificates, signatures) but writes none in general: rmclaim.csr
# writes its fixed structures itself.

from micropython import const

from rmclaim.errors import DERError

TAG_BOOLEAN = const(0x01)
TAG_INTEGER = const(0x02)
TAG_BIT_STRING = const(0x03)
TAG_OCTET_STRING = const(0x04)
TAG_NULL = const(0x05)
TAG_OID = const(0x06)
TAG_UTF8_STRING = const(0x0C)
TAG_PRINTABLE_STRING = const(0x13)
TAG_IA5_STRING = const(0x16)
TAG_UTC_TIME = const(0x17)
TAG_GENERALIZED_TIME = const(0x18)
TAG_BMP_STRING = const(0x1E)
TAG_SEQUENCE = const(0x30)
TAG_SET = const(0x31)

_MAX_LENGTH_BYTES = const(3)  # lengths up to 16 MB; nothing here comes near
_DAYS = b"\x1f\x1c\x1f\x1e\x1f\x1e\x1f\x1f\x1e\x1f\x1e\x1f"  # days per month, February 28

# The error messages are in rmclaim.asn1_text, one per line, picked by number: they come onto
# the heap only when an error is raised, not while a certificate is read.
# _fail(_E_..., args) raises "asn1: <line % args>".
_E_SHORT = const(0)
_E_TAG_FORM = const(1)
_E_INDEFINITE = const(2)
_E_CUT = const(3)
_E_LENGTH = const(4)
_E_OVERRUN = const(5)
_E_WANTED = const(6)
_E_TRAILING = const(7)
_E_INTEGER = const(8)
_E_NEGATIVE = const(9)
_E_BOOLEAN = const(10)
_E_NULL = const(11)
_E_BITS = const(12)
_E_OID = const(13)
_E_BMP = const(14)
_E_ASCII = const(15)
_E_UTF8 = const(16)
_E_STRING = const(17)
_E_TIME = const(18)
_E_DATE = const(19)


def _fail(number, *args):
    from rmclaim.asn1_text import MESSAGES

    return DERError("asn1: " + MESSAGES.split("\n")[number] % args)


def decode_tlv(data):
    # (tag, content, rest) of the first element of data.
    n = len(data)
    if n < 2:
        raise _fail(_E_SHORT, n)
    tag = data[0]
    if tag & 0x1F == 0x1F:
        raise _fail(_E_TAG_FORM, tag)
    length = data[1]
    start = 2
    if length & 0x80:
        count = length & 0x7F
        if not count or count > _MAX_LENGTH_BYTES:
            # 0x80 is BER's indefinite length; more than 3 length bytes is more than we take.
            raise _fail(_E_INDEFINITE, tag, length)
        start = 2 + count
        if n < start:
            raise _fail(_E_CUT, tag)
        length = int.from_bytes(data[2:start], "big")
        if not data[2] or length < 0x80:
            # A leading zero length byte, or the long form for a length the short one holds.
            raise _fail(_E_LENGTH, tag, length, count)
    end = start + length
    if end > n:
        raise _fail(_E_OVERRUN, tag, length, n - start)
    return tag, data[start:end], data[end:]


def decode_tag(data, tag):
    # (content, rest) of the first element, which must have this tag.
    if not data or data[0] != tag:
        raise _fail(_E_WANTED, tag, "0x%02x" % data[0] if data else "end of data")
    _, content, rest = decode_tlv(data)
    return content, rest


def decode_all(data, decoder):
    # decoder(data) for a buffer that must hold exactly one element.
    value, rest = decoder(data)
    if rest:
        raise _fail(_E_TRAILING, len(rest))
    return value


def decode_sequence(data):
    return decode_tag(data, TAG_SEQUENCE)


def decode_set(data):
    return decode_tag(data, TAG_SET)


def decode_context(data, number):
    return decode_tag(data, 0xA0 | number)


def integer_content(data):
    # (raw content, rest) of an INTEGER, checked to be minimal; any sign.
    content, rest = decode_tag(data, TAG_INTEGER)
    if not content:
        raise _fail(_E_INTEGER, b"")
    if len(content) > 1:
        first = content[0]
        top = content[1] & 0x80
        if (first == 0 and not top) or (first == 0xFF and top):
            raise _fail(_E_INTEGER, bytes(content[:2]))
    return content, rest


def decode_integer(data):
    # (non-negative int, rest).
    content, rest = integer_content(data)
    if content[0] & 0x80:
        raise _fail(_E_NEGATIVE)
    return int.from_bytes(content, "big"), rest


def decode_boolean(data):
    content, rest = decode_tag(data, TAG_BOOLEAN)
    if content == b"\xff":
        return True, rest
    if content == b"\x00":
        return False, rest
    raise _fail(_E_BOOLEAN, bytes(content))


def decode_null(data):
    content, rest = decode_tag(data, TAG_NULL)
    if content:
        raise _fail(_E_NULL, len(content))
    return None, rest


def decode_octet_string(data):
    return decode_tag(data, TAG_OCTET_STRING)


def decode_bit_string(data):
    # (bytes, rest): whole bytes only (0 unused bits), as keys and signatures are.
    content, rest = decode_tag(data, TAG_BIT_STRING)
    if not content or content[0]:
        raise _fail(_E_BITS, bytes(content[:1]))
    return content[1:], rest


def decode_oid(data):
    # (dotted string, rest).
    content, rest = decode_tag(data, TAG_OID)
    # Not empty, no sub-identifier cut off at the end, none with a leading 0x80 (not minimal).
    if not content or content[-1] & 0x80:
        raise _fail(_E_OID, bytes(content))
    arcs = []
    value = 0
    start = True
    for b in content:
        if start and b == 0x80:
            raise _fail(_E_OID, bytes(content))
        value = (value << 7) | (b & 0x7F)
        start = not b & 0x80
        if start:
            arcs.append(value)
            value = 0
    first = arcs[0]
    head = 0 if first < 40 else 1 if first < 80 else 2
    parts = [str(head), str(first - 40 * head)]
    for arc in arcs[1:]:
        parts.append(str(arc))
    return ".".join(parts), rest


def decode_string(data):
    # (str, rest) for UTF8String, PrintableString, IA5String or BMPString.
    if not data:
        raise _fail(_E_STRING, "end of data")
    tag, content, rest = decode_tlv(data)
    content = bytes(content)
    if tag == TAG_BMP_STRING:
        if len(content) & 1:
            raise _fail(_E_BMP, len(content))
        chars = []
        for i in range(0, len(content), 2):
            chars.append(chr(content[i] << 8 | content[i + 1]))
        return "".join(chars), rest
    if tag == TAG_UTF8_STRING or tag == TAG_PRINTABLE_STRING or tag == TAG_IA5_STRING:
        if tag != TAG_UTF8_STRING:
            for b in content:
                if b > 0x7E or b < 0x20 and tag == TAG_PRINTABLE_STRING:
                    raise _fail(_E_ASCII, b, tag)
        try:
            return content.decode(), rest
        except UnicodeError:
            raise _fail(_E_UTF8) from None
    raise _fail(_E_STRING, "tag 0x%02x" % tag)


def _digits(content, start, count):
    value = 0
    for i in range(start, start + count):
        b = content[i]
        if not 0x30 <= b <= 0x39:
            raise _fail(_E_DATE, bytes(content))
        value = value * 10 + b - 0x30
    return value


def decode_time(data):
    # ((year, month, day, hour, minute, second), rest) from UTCTime "YYMMDDHHMMSSZ" or
    # GeneralizedTime "YYYYMMDDHHMMSSZ", the DER forms RFC 5280 allows (UTC, with seconds).
    if not data:
        raise _fail(_E_TIME, "end of data")
    tag, content, rest = decode_tlv(data)
    if tag == TAG_UTC_TIME:
        size = 13
    elif tag == TAG_GENERALIZED_TIME:
        size = 15
    else:
        raise _fail(_E_TIME, "tag 0x%02x, not UTCTime (0x17) or GeneralizedTime (0x18)" % tag)
    if len(content) != size or content[-1] != 0x5A:
        raise _fail(_E_TIME, "%r, not %d bytes ending in Z" % (bytes(content), size))
    if tag == TAG_UTC_TIME:
        year = _digits(content, 0, 2)
        year += 1900 if year >= 50 else 2000
        i = 2
    else:
        year = _digits(content, 0, 4)
        i = 4
    month = _digits(content, i, 2)
    day = _digits(content, i + 2, 2)
    hour = _digits(content, i + 4, 2)
    minute = _digits(content, i + 6, 2)
    second = _digits(content, i + 8, 2)
    days = _DAYS[month - 1] if 1 <= month <= 12 else 0
    if month == 2 and year % 4 == 0 and (year % 100 or year % 400 == 0):
        days = 29
    if not 1 <= day <= days or hour > 23 or minute > 59 or second > 59:
        raise _fail(_E_DATE, bytes(content))
    return (year, month, day, hour, minute, second), rest


def decode_ecdsa_signature(der):
    # (r, s) from a DER Ecdsa-Sig-Value that makes up all of der.
    body = decode_all(der, decode_sequence)
    r, body = decode_integer(body)
    s, body = decode_integer(body)
    if body:
        raise _fail(_E_TRAILING, len(body))
    return r, s
