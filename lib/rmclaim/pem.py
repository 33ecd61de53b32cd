"""PEM armour: DER in and out of "-----BEGIN <label>-----" text, strictly."""

import binascii

from rmclaim.errors import DERError

_B64 = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_SPACE = b" \t\r\n\x0b\x0c"


def encode(der, label):
    lines = ["-----BEGIN %s-----\n" % label]
    for i in range(0, len(der), 48):
        lines.append(binascii.b2a_base64(der[i : i + 48]).decode())
    lines.append("-----END %s-----\n" % label)
    return "".join(lines)


def decode(text, label):
    # The DER of the first "-----BEGIN label-----" block of text (str or bytes); DERError if
    # there is none or its body is not clean base64.
    return _pem(text, label, True)[0]


def split(text, label):
    # The DER of every "-----BEGIN label-----" block of text, in order; DERError if there is
    # none or one is damaged.
    return _pem(text, label, False)


def _pem(text, label, first):
    # Read as bytes: iterating over a str makes each character a one-letter string, and
    # MicroPython interns those as qstrs, which stay on the heap for good (a base64 body would
    # leave 65 of them); a byte is a small int. The body is checked and decoded through a view.
    if isinstance(text, str):
        data = text.encode()
    else:
        data = bytes(text)
        try:
            data.decode()
        except UnicodeError:
            raise DERError("pem: %s text is not UTF-8" % label) from None
    begin = ("-----BEGIN %s-----" % label).encode()
    end = ("-----END %s-----" % label).encode()
    mv = memoryview(data)
    out = []
    start = data.find(begin)
    if start < 0:
        raise DERError("pem: no %s found" % begin.decode())
    while start >= 0:
        start += len(begin)
        stop = data.find(end, start)
        if stop < 0:
            raise DERError("pem: %s without %s" % (begin.decode(), end.decode()))
        # The body as it is: a2b_base64 skips the whitespace, here and on CPython (no copies
        # of it joined or stripped), after a check that nothing else is in it.
        body = mv[start:stop]
        n = pad = 0
        for c in body:
            if c in _SPACE:
                continue
            if c == 0x3D:  # "="
                pad += 1
            elif pad or c not in _B64:
                what = "character %r" % chr(c) if c < 0x80 else "byte 0x%02x" % c
                raise DERError("pem: %s in the %s body" % (what, label))
            n += 1
        if not n or n % 4 or pad > 2:
            raise DERError("pem: %s body is not base64 (length %d)" % (label, n))
        out.append(binascii.a2b_base64(body))  # type: ignore[arg-type]  # any buffer works
        if first:
            break
        start = data.find(begin, stop)
    return out
