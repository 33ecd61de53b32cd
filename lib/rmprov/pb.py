"""A strict protobuf (proto3) codec for schemas written as tuples: messages as dicts."""

# A schema is one flat tuple per message, name then spec for each field, in field-number
# order: ("name", spec, "name", spec, ...). A spec is a small integer made by field(number,
# kind, limit), or for a nested message a pair (field(...), its schema):
#   U32, I32 (int32 and enums), BOOL: varint (wire type 0);
#   BYTES, STR: length-delimited (wire type 2), limit = the most bytes allowed (STR: UTF-8);
#   MSG: a nested message (wire type 2), given as (field(number, MSG), schema);
#   REP: a repeated nested message, (field(number, REP, most elements), schema).
# kind | ONEOF marks the members of the message's one oneof (none of these messages has two).
# Packing keeps schemas small on the GC heap: one tuple per message, no tuple per field.
#
# Decoding returns a dict holding every field outside the oneof (a scalar's proto3 default
# when absent, None for an absent message, [] for an absent repeated one) plus the oneof member
# that was present, if any. It is strict: a truncated message, a known field with the wrong
# wire type, a singular field twice, two oneof members, a varint longer than 10 bytes or not
# minimal, a value out of its type's range (uint32 over 2^32 - 1, an int32 that is not a
# sign-extended 32-bit value, a bool other than 0 or 1), a length over the field's limit,
# invalid UTF-8, a group or a reserved wire type all raise ProtoError, and nothing is returned.
# Unknown fields of wire types 0, 1, 2 and 5 are skipped, as protobuf does (newer clients may
# add fields). Encoding gives the bytes protobuf's own encoder gives: fields in number order,
# proto3 defaults left out outside the oneof, the oneof member always written.

from micropython import const

from rmprov.errors import ProtoError

U32 = const(0)
I32 = const(1)
BOOL = const(2)
BYTES = const(3)
STR = const(4)
MSG = const(5)
REP = const(6)
ONEOF = const(8)

_KIND = const(7)
_MAX32 = const(0xFFFFFFFF)
_MAX64 = const(0xFFFFFFFFFFFFFFFF)
_MAX_FIELD = const(0x1FFFFFFF)


def field(number, kind, limit=0):
    # A field's spec: kind in bits 0-3, number in bits 4-15, limit from bit 16 (a small int on
    # every port: numbers up to 4095, limits up to 16383).
    return kind | number << 4 | limit << 16


def decode(schema, data):
    # The message `data` (bytes-like) holds, as a dict; ProtoError if it is not well formed.
    mv = memoryview(data)
    return _decode(schema, mv, 0, len(mv))


def encode(schema, msg):
    # The bytes of `msg` (a dict of field names; a missing name or None is an absent field).
    out = bytearray()
    _encode(schema, msg, out)
    return bytes(out)


def _varint(mv, pos, end):
    value = 0
    shift = 0
    while pos < end:
        b = mv[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            if not b and shift:
                raise ProtoError("pb: varint not minimal at offset %d" % (pos - 1))
            if shift == 63 and b > 1:
                raise ProtoError("pb: varint over 64 bits at offset %d" % (pos - 1))
            return value, pos
        shift += 7
        if shift > 63:
            raise ProtoError("pb: varint longer than 10 bytes at offset %d" % pos)
    raise ProtoError("pb: truncated varint at offset %d" % pos)


def _utf8_ok(mv):
    # Strict UTF-8 (RFC 3629): no overlong forms, no surrogates, nothing above U+10FFFF.
    i = 0
    n = len(mv)
    while i < n:
        b = mv[i]
        if b < 0x80:
            i += 1
            continue
        if 0xC2 <= b <= 0xDF:
            need = 1
            lo = 0x80
            hi = 0xBF
        elif 0xE0 <= b <= 0xEF:
            need = 2
            lo = 0xA0 if b == 0xE0 else 0x80
            hi = 0x9F if b == 0xED else 0xBF
        elif 0xF0 <= b <= 0xF4:
            need = 3
            lo = 0x90 if b == 0xF0 else 0x80
            hi = 0x8F if b == 0xF4 else 0xBF
        else:
            return False
        if i + need >= n:
            return False
        c = mv[i + 1]
        if c < lo or c > hi:
            return False
        for j in range(i + 2, i + need + 1):
            if mv[j] & 0xC0 != 0x80:
                return False
        i += need + 1
    return True


def _decode(schema, mv, pos, end):
    out = {}
    seen = 0
    member = None
    count = len(schema)
    while pos < end:
        at = pos
        tag, pos = _varint(mv, pos, end)
        num = tag >> 3
        wire = tag & 7
        if not num or num > _MAX_FIELD:
            raise ProtoError("pb: bad field number %d at offset %d" % (num, at))
        i = 1
        while i < count:
            spec = schema[i]
            sub = None
            if isinstance(spec, tuple):
                spec, sub = spec
            if spec >> 4 & 0xFFF == num:
                break
            i += 2
        else:
            pos = _skip(mv, pos, end, wire, at)
            continue
        name = schema[i - 1]
        base = spec & _KIND
        limit = spec >> 16
        want = 0 if base <= BOOL else 2
        if wire != want:
            raise ProtoError(
                "pb: %s: wanted wire type %d, got %d at offset %d" % (name, want, wire, at)
            )
        if base != REP:
            if seen >> i & 1:
                raise ProtoError("pb: %s twice, at offset %d" % (name, at))
            seen |= 1 << i
        if spec & ONEOF:
            if member is not None:
                raise ProtoError("pb: %s and %s of one oneof, at offset %d" % (member, name, at))
            member = name
        value, pos = _varint(mv, pos, end)
        if wire == 0:
            if base == U32:
                if value > _MAX32:
                    raise ProtoError("pb: %s: uint32 out of range at offset %d" % (name, at))
            elif base == I32:
                if value > 0x7FFFFFFF:
                    if value < _MAX64 - 0x7FFFFFFF:
                        raise ProtoError("pb: %s: int32 out of range at offset %d" % (name, at))
                    value -= _MAX64 + 1
            else:
                if value > 1:
                    raise ProtoError("pb: %s: bool %d at offset %d" % (name, value, at))
                value = value == 1
            out[name] = value
            continue
        if value > end - pos:
            raise ProtoError(
                "pb: %s: length %d past the end (%d left) at offset %d"
                % (name, value, end - pos, at)
            )
        stop = pos + value
        if base == BYTES or base == STR:
            if value > limit:
                raise ProtoError("pb: %s: %d bytes, at most %d allowed" % (name, value, limit))
            if base == BYTES:
                out[name] = bytes(mv[pos:stop])
            elif _utf8_ok(mv[pos:stop]):
                out[name] = str(bytes(mv[pos:stop]), "utf-8")
            else:
                raise ProtoError("pb: %s: not UTF-8, at offset %d" % (name, at))
        elif base == MSG:
            out[name] = _decode(sub, mv, pos, stop)
        else:
            items = out.get(name)
            if items is None:
                items = out[name] = []
            if len(items) >= limit:
                raise ProtoError("pb: %s: more than %d elements" % (name, limit))
            items.append(_decode(sub, mv, pos, stop))
        pos = stop
    for i in range(0, count, 2):
        name = schema[i]
        spec = schema[i + 1]
        if isinstance(spec, tuple):
            spec = spec[0]
        if spec & ONEOF or name in out:
            continue
        base = spec & _KIND
        if base == BOOL:
            out[name] = False
        elif base <= BOOL:
            out[name] = 0
        elif base == BYTES:
            out[name] = b""
        elif base == STR:
            out[name] = ""
        elif base == MSG:
            out[name] = None
        else:
            out[name] = []
    return out


def _skip(mv, pos, end, wire, at):
    # Past an unknown field's value.
    if wire == 0:
        return _varint(mv, pos, end)[1]
    if wire == 2:
        n, pos = _varint(mv, pos, end)
    elif wire == 1:
        n = 8
    elif wire == 5:
        n = 4
    else:
        raise ProtoError("pb: wire type %d not allowed, at offset %d" % (wire, at))
    if n > end - pos:
        raise ProtoError("pb: unknown field past the end, at offset %d" % at)
    return pos + n


def _put_varint(out, value):
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)


def _encode(schema, msg, out):
    count = len(schema)
    for key in msg:
        for i in range(0, count, 2):
            if schema[i] == key:
                break
        else:
            raise ProtoError("pb: no field %s in this message" % key)
    member = None
    for i in range(0, count, 2):
        name = schema[i]
        value = msg.get(name)
        if value is None:
            continue
        spec = schema[i + 1]
        sub = None
        if isinstance(spec, tuple):
            spec, sub = spec
        base = spec & _KIND
        oneof = spec & ONEOF
        if oneof:
            if member is not None:
                raise ProtoError("pb: %s and %s of one oneof" % (member, name))
            member = name
        tag = (spec >> 4 & 0xFFF) << 3
        limit = spec >> 16
        if base <= BOOL:
            if base == U32:
                if not isinstance(value, int) or not 0 <= value <= _MAX32:
                    raise ProtoError("pb: %s: wanted a uint32, got %r" % (name, value))
            elif base == I32:
                if not isinstance(value, int) or not -0x80000000 <= value <= 0x7FFFFFFF:
                    raise ProtoError("pb: %s: wanted an int32, got %r" % (name, value))
                value &= _MAX64
            elif value is not True and value is not False:
                raise ProtoError("pb: %s: wanted a bool, got %r" % (name, value))
            else:
                value = 1 if value else 0
            if value or oneof:  # a proto3 default is not written, unless a oneof member
                _put_varint(out, tag)
                _put_varint(out, value)
            continue
        if base == REP:
            if len(value) > limit:
                raise ProtoError("pb: %s: more than %d elements" % (name, limit))
            for item in value:
                _put_varint(out, tag | 2)
                _put_part(out, encode(sub, item))
            continue
        if base == MSG:
            data = encode(sub, value)
        else:
            if base == STR:
                if not isinstance(value, str):
                    raise ProtoError("pb: %s: wanted a str, got %r" % (name, value))
                data = value.encode()
            elif isinstance(value, (bytes, bytearray, memoryview)):
                data = bytes(value)
            else:
                raise ProtoError("pb: %s: wanted bytes, got %r" % (name, value))
            if len(data) > limit:
                raise ProtoError("pb: %s: %d bytes, at most %d allowed" % (name, len(data), limit))
            if not data and not oneof:
                continue
        _put_varint(out, tag | 2)
        _put_part(out, data)


def _put_part(out, data):
    _put_varint(out, len(data))
    out.extend(data)
