"""Minimal strict DER: encoders return bytes, decoders return (value, remaining bytes)."""

# Strict in both directions: lengths and INTEGERs must be minimal, no BER long forms or
# indefinite lengths, no multi-byte tags, no negative INTEGERs where a non-negative one is
# wanted, nothing past the end of the input. Any violation raises DERError (a ValueError)
# naming what was wanted and what was found. Values are bytes; no module above needs more.

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


def encode_length(n):
    if n < 0x80:
        return bytes((n,))
    size = 0
    m = n
    while m:
        m >>= 8
        size += 1
    return bytes((0x80 | size,)) + n.to_bytes(size, "big")


def encode_tlv(tag, content):
    return bytes((tag,)) + encode_length(len(content)) + content


def decode_tlv(data):
    # (tag, content, rest) of the first element of data.
    n = len(data)
    if n < 2:
        raise DERError("asn1: wanted a tag and a length, got %d bytes" % n)
    tag = data[0]
    if tag & 0x1F == 0x1F:
        raise DERError("asn1: multi-byte tag 0x%02x not supported" % tag)
    length = data[1]
    start = 2
    if length & 0x80:
        count = length & 0x7F
        if not count:
            raise DERError("asn1: indefinite length (BER) after tag 0x%02x" % tag)
        if count > _MAX_LENGTH_BYTES:
            raise DERError("asn1: %d-byte length after tag 0x%02x" % (count, tag))
        start = 2 + count
        if n < start:
            raise DERError("asn1: length of tag 0x%02x cut off" % tag)
        if not data[2]:
            raise DERError("asn1: length of tag 0x%02x has a leading zero byte" % tag)
        length = int.from_bytes(data[2:start], "big")
        if length < 0x80:
            raise DERError("asn1: long-form length %d after tag 0x%02x (BER)" % (length, tag))
    end = start + length
    if end > n:
        raise DERError("asn1: tag 0x%02x wants %d bytes, %d are left" % (tag, length, n - start))
    return tag, data[start:end], data[end:]


def decode_tag(data, tag):
    # (content, rest) of the first element, which must have this tag.
    if not data:
        raise DERError("asn1: wanted tag 0x%02x, got end of data" % tag)
    if data[0] != tag:
        raise DERError("asn1: wanted tag 0x%02x, got 0x%02x" % (tag, data[0]))
    _, content, rest = decode_tlv(data)
    return content, rest


def decode_all(data, decoder):
    # decoder(data) for a buffer that must hold exactly one element.
    value, rest = decoder(data)
    if rest:
        raise DERError("asn1: %d bytes of trailing data" % len(rest))
    return value


def encode_sequence(*items):
    return encode_tlv(TAG_SEQUENCE, b"".join(items))


def decode_sequence(data):
    return decode_tag(data, TAG_SEQUENCE)


def encode_set(*items):
    # DER sorts SET OF by encoding; SETs here hold one item, so no sorting is needed.
    return encode_tlv(TAG_SET, b"".join(items))


def decode_set(data):
    return decode_tag(data, TAG_SET)


def encode_context(number, content):
    # [number] EXPLICIT (constructed), content already encoded.
    return encode_tlv(0xA0 | number, content)


def decode_context(data, number):
    return decode_tag(data, 0xA0 | number)


def encode_integer(value):
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
    return encode_tlv(TAG_INTEGER, body)


def integer_content(data):
    # (raw content, rest) of an INTEGER, checked to be minimal; any sign.
    content, rest = decode_tag(data, TAG_INTEGER)
    if not content:
        raise DERError("asn1: empty INTEGER")
    if len(content) > 1:
        first = content[0]
        top = content[1] & 0x80
        if (first == 0 and not top) or (first == 0xFF and top):
            raise DERError("asn1: INTEGER not minimal (extra leading byte 0x%02x)" % first)
    return content, rest


def decode_integer(data):
    # (non-negative int, rest).
    content, rest = integer_content(data)
    if content[0] & 0x80:
        raise DERError("asn1: wanted a non-negative INTEGER, got a negative one")
    return int.from_bytes(content, "big"), rest


def encode_boolean(value):
    return encode_tlv(TAG_BOOLEAN, b"\xff" if value else b"\x00")


def decode_boolean(data):
    content, rest = decode_tag(data, TAG_BOOLEAN)
    if content == b"\xff":
        return True, rest
    if content == b"\x00":
        return False, rest
    raise DERError("asn1: BOOLEAN must be one byte 00 or FF, got %r" % bytes(content))


def encode_null():
    return b"\x05\x00"


def decode_null(data):
    content, rest = decode_tag(data, TAG_NULL)
    if content:
        raise DERError("asn1: NULL with %d content bytes" % len(content))
    return None, rest


def encode_octet_string(value):
    return encode_tlv(TAG_OCTET_STRING, value)


def decode_octet_string(data):
    return decode_tag(data, TAG_OCTET_STRING)


def encode_bit_string(value):
    # Whole bytes only (0 unused bits): keys and signatures.
    return encode_tlv(TAG_BIT_STRING, b"\x00" + value)


def decode_bit_string(data):
    content, rest = decode_tag(data, TAG_BIT_STRING)
    if not content:
        raise DERError("asn1: BIT STRING without its unused-bits byte")
    if content[0]:
        raise DERError("asn1: wanted BIT STRING of whole bytes, got %d unused bits" % content[0])
    return content[1:], rest


def encode_oid(dotted):
    arcs = [int(a) for a in dotted.split(".")]
    if len(arcs) < 2 or arcs[0] > 2 or (arcs[0] < 2 and arcs[1] > 39) or min(arcs) < 0:
        raise ValueError("asn1: bad OID %s" % dotted)
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
    return encode_tlv(TAG_OID, bytes(out))


def decode_oid(data):
    # (dotted string, rest).
    content, rest = decode_tag(data, TAG_OID)
    if not content:
        raise DERError("asn1: empty OBJECT IDENTIFIER")
    if content[-1] & 0x80:
        raise DERError("asn1: OBJECT IDENTIFIER ends inside a sub-identifier")
    arcs = []
    value = 0
    start = True
    for b in content:
        if start and b == 0x80:
            raise DERError("asn1: OBJECT IDENTIFIER sub-identifier not minimal")
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


def encode_utf8_string(text):
    return encode_tlv(TAG_UTF8_STRING, text.encode())


def decode_string(data):
    # (str, rest) for UTF8String, PrintableString, IA5String or BMPString.
    if not data:
        raise DERError("asn1: wanted a string, got end of data")
    tag, content, rest = decode_tlv(data)
    content = bytes(content)
    if tag == TAG_BMP_STRING:
        if len(content) & 1:
            raise DERError("asn1: BMPString of odd length %d" % len(content))
        chars = []
        for i in range(0, len(content), 2):
            chars.append(chr(content[i] << 8 | content[i + 1]))
        return "".join(chars), rest
    if tag == TAG_UTF8_STRING or tag == TAG_PRINTABLE_STRING or tag == TAG_IA5_STRING:
        if tag != TAG_UTF8_STRING:
            for b in content:
                if b > 0x7E or b < 0x20 and tag == TAG_PRINTABLE_STRING:
                    raise DERError("asn1: byte 0x%02x in an ASCII string (tag 0x%02x)" % (b, tag))
        try:
            return content.decode(), rest
        except UnicodeError:
            raise DERError("asn1: UTF8String is not valid UTF-8") from None
    raise DERError("asn1: wanted a string type, got tag 0x%02x" % tag)


def _digits(content, start, count):
    value = 0
    for i in range(start, start + count):
        b = content[i]
        if not 0x30 <= b <= 0x39:
            raise DERError("asn1: non-digit 0x%02x in a time" % b)
        value = value * 10 + b - 0x30
    return value


def encode_time(t):
    # UTCTime for 1950..2049 (RFC 5280 section 4.1.2.5), GeneralizedTime otherwise.
    year = t[0]
    text = "%02d%02d%02d%02d%02dZ" % tuple(t[1:6])
    if 1950 <= year < 2050:
        return encode_tlv(TAG_UTC_TIME, ("%02d" % (year % 100) + text).encode())
    return encode_tlv(TAG_GENERALIZED_TIME, ("%04d" % year + text).encode())


def decode_time(data):
    # ((year, month, day, hour, minute, second), rest) from UTCTime "YYMMDDHHMMSSZ" or
    # GeneralizedTime "YYYYMMDDHHMMSSZ", the DER forms RFC 5280 allows (UTC, with seconds).
    if not data:
        raise DERError("asn1: wanted a time, got end of data")
    tag, content, rest = decode_tlv(data)
    if tag == TAG_UTC_TIME:
        size = 13
    elif tag == TAG_GENERALIZED_TIME:
        size = 15
    else:
        raise DERError("asn1: wanted UTCTime (0x17) or GeneralizedTime (0x18), got 0x%02x" % tag)
    if len(content) != size or content[-1] != 0x5A:
        raise DERError("asn1: time must be %d bytes ending in Z, got %r" % (size, bytes(content)))
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
    if not 1 <= month <= 12:
        raise DERError("asn1: month %d out of range" % month)
    days = _DAYS[month - 1]
    if month == 2 and year % 4 == 0 and (year % 100 or year % 400 == 0):
        days = 29
    if not 1 <= day <= days or hour > 23 or minute > 59 or second > 59:
        raise DERError("asn1: invalid date or time %r" % bytes(content))
    return (year, month, day, hour, minute, second), rest


def encode_ecdsa_signature(r, s):
    return encode_sequence(encode_integer(r), encode_integer(s))


def decode_ecdsa_signature(der):
    # (r, s) from a DER Ecdsa-Sig-Value that makes up all of der.
    body = decode_all(der, decode_sequence)
    r, body = decode_integer(body)
    s, body = decode_integer(body)
    if body:
        raise DERError("asn1: %d extra bytes inside the ECDSA signature" % len(body))
    return r, s
