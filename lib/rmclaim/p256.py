"""NIST P-256 arithmetic and ECDSA (RFC 6979 nonces) on integers: no bytes formats, no DER."""

# NO SIDE-CHANNEL PROTECTION. Python big integers are not constant-time, and the table reads,
# branches and allocations below depend on secret scalars. Use it where nobody can time or
# probe the device while it makes its key and signs its CSR (python-ecdsa's README says the
# same of its own code).
#
# Public points are (x, y) tuples of affine integers. Inside, Jacobian triples (X, Y, Z) stand
# for (X/Z^2, Y/Z^3), and Z == 0 is the point at infinity. Doubling uses the a = -3 formula
# (4M + 4S), addition is mixed Jacobian + affine (8M + 3S), and a result costs one final
# inversion: extended Euclid where pow(x, -1, m) is missing (MicroPython returns 0 for it).
#
# k*G is a Lim-Lee comb: 8 teeth, 2 tables of 255 affine points, so 32 additions and 15
# doublings. The tables are the plain file p256g.bin next to this module (32 640 bytes, made
# by tools/rmbench/codegen_p256.py), read one point at a time into a reused buffer, so they
# cost no GC heap; as a bytes constant in an .mpy they would be copied into the heap on
# import. Without the file k*G falls back to the generic NAF multiplication (about 6x slower).

import hashlib
import os

from micropython import const

_P = const(0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF)
_N = const(0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551)
_B = const(0x5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B)
_GX = const(0x6B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C296)
_GY = const(0x4FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5)

# Comb layout: scalar bit 32*r + c is tooth r (0..7) of column c (0..31). Table g (0, 1) holds,
# at entry b (1..255), the sum over the set bits r of b of 2^(32*r + 16*g) * G, as x || y
# (32 bytes each, big-endian) at offset (255*g + b - 1) * 64.
_COLUMNS = const(16)  # columns per table
# (k >> c) & _TEETH keeps bits c, 32 + c, ..., 224 + c; times _GATHER they land, with no
# carries (each partial product has a bit of its own), on bits 224..231: the table index.
_TEETH = const(0x100000001000000010000000100000001000000010000000100000001)
_GATHER = const(0x100000002000000040000000800000010000000200000004000000080)
# HMAC-SHA256 pads for a 32-byte key shifted into the top of a 64-byte block.
_IPAD = const(
    0x36363636363636363636363636363636363636363636363636363636363636363636363636363636363636363636363636363636363636363636363636363636
)
_OPAD = const(
    0x5C5C5C5C5C5C5C5C5C5C5C5C5C5C5C5C5C5C5C5C5C5C5C5C5C5C5C5C5C5C5C5C5C5C5C5C5C5C5C5C5C5C5C5C5C5C5C5C5C5C5C5C5C5C5C5C5C5C5C5C5C5C5C5C
)

try:
    _TABLE = __file__[: __file__.rfind("/") + 1] + "p256g.bin"
except NameError:  # frozen into firmware: no file beside us
    _TABLE = ""

# Point operations done so far: [mixed additions, doublings, inversions], read by the benchmark.
STATS = [0, 0, 0]
# The last public_key() result as (d, x, y): making a key and then its CSR needs Q twice.
_last = (0, 0, 0)


def _inv_euclid(a, m):
    # a^-1 mod m for a prime m and a not divisible by m; keeps x1 * a == u (mod m).
    STATS[2] += 1
    u = a % m
    v = m
    x1 = 1
    x2 = 0
    while u > 1:
        q, r = divmod(v, u)
        v = u
        u = r
        x1, x2 = x2 - q * x1, x1
    if not u:
        raise ZeroDivisionError("p256: no inverse of 0")
    return x1 % m


def _inv_pow(a, m):
    STATS[2] += 1
    return pow(a, -1, m)


# Chosen once: CPython's built-in inverse where it works, Euclid on MicroPython.
try:
    _inv = _inv_pow if pow(3, -1, 7) == 5 else _inv_euclid
except ValueError:
    _inv = _inv_euclid


def _double(X, Y, Z):
    # dbl-2001-b with a = -3: 4M + 4S.
    if not Z or not Y:
        return 1, 1, 0
    p = _P
    STATS[1] += 1
    delta = Z * Z % p
    gamma = Y * Y % p
    beta = X * gamma % p
    alpha = 3 * (X - delta) * (X + delta) % p
    X3 = (alpha * alpha - 8 * beta) % p
    return X3, (alpha * (4 * beta - X3) - 8 * gamma * gamma) % p, 2 * Y * Z % p


def _madd(X, Y, Z, x, y):
    # (X, Y, Z) + affine (x, y): 8M + 3S; handles infinity, P + P and P + (-P).
    if not Z:
        return x, y, 1
    p = _P
    STATS[0] += 1
    zz = Z * Z % p
    h = x * zz % p - X
    r = y * Z % p * zz % p - Y
    if not h:
        if r:
            return 1, 1, 0
        return _double(x, y, 1)
    hh = h * h % p
    hhh = h * hh % p
    v = X * hh % p
    X3 = (r * r - hhh - 2 * v) % p
    return X3, (r * (v - X3) - Y * hhh) % p, Z * h % p


def _mul(k, x, y):
    # k * (x, y) for any point, k >= 0: left-to-right binary NAF (about 256 doublings and
    # 85 additions). Returns a Jacobian triple.
    naf = bytearray(260)
    i = 0
    while k:
        if k & 1:
            if k & 2:
                naf[i] = 2  # digit -1
                k += 1
            else:
                naf[i] = 1
                k -= 1
        k >>= 1
        i += 1
    ny = _P - y
    X, Y, Z = 1, 1, 0
    while i:
        i -= 1
        X, Y, Z = _double(X, Y, Z)
        digit = naf[i]
        if digit == 1:
            X, Y, Z = _madd(X, Y, Z, x, y)
        elif digit:
            X, Y, Z = _madd(X, Y, Z, x, ny)
    return X, Y, Z


def _mul_g(k):
    # k * G for 0 <= k < 2^256 by the comb tables. Returns a Jacobian triple.
    try:
        f = open(_TABLE, "rb")
    except OSError:
        return _mul(k, _GX, _GY)
    p = _P
    teeth = _TEETH
    gather = _GATHER
    buf = bytearray(64)
    mv = memoryview(buf)
    bx = mv[:32]
    by = mv[32:]
    adds = 0
    X, Y, Z = 1, 1, 0
    try:
        for c in range(_COLUMNS - 1, -1, -1):
            if Z:
                # Doubling inline (see _double).
                delta = Z * Z % p
                gamma = Y * Y % p
                beta = X * gamma % p
                alpha = 3 * (X - delta) * (X + delta) % p
                X = (alpha * alpha - 8 * beta) % p
                Z = 2 * Y * Z % p
                Y = (alpha * (4 * beta - X) - 8 * gamma * gamma) % p
                STATS[1] += 1
            for g in (0, 1):
                b = ((k >> (c + (g << 4)) & teeth) * gather >> 224) & 0xFF
                if not b:
                    continue
                f.seek((255 * g + b - 1) << 6)
                if f.readinto(buf) != 64:
                    raise OSError("p256: table file too short")
                x = int.from_bytes(bx, "big")
                y = int.from_bytes(by, "big")
                if not Z:
                    X, Y, Z = x, y, 1
                    continue
                # Mixed addition inline (see _madd).
                zz = Z * Z % p
                h = x * zz % p - X
                r = y * Z % p * zz % p - Y
                if not h:
                    X, Y, Z = _madd(X, Y, Z, x, y)
                    continue
                hh = h * h % p
                hhh = h * hh % p
                v = X * hh % p
                X = (r * r - hhh - 2 * v) % p
                Y = (r * (v - X) - Y * hhh) % p
                Z = Z * h % p
                adds += 1
    finally:
        f.close()
    STATS[0] += adds
    return X, Y, Z


def _affine(X, Y, Z):
    # Jacobian to affine; None for infinity.
    if not Z:
        return None
    p = _P
    zi = _inv(Z, p)
    zz = zi * zi % p
    return X * zz % p, Y * zz % p * zi % p


def _on_curve(x, y):
    p = _P
    return 0 <= x < p and 0 <= y < p and (y * y - (x * x - 3) * x - _B) % p == 0


def public_key(d):
    # Q = d * G as (x, y) for a private key d in [1, n - 1].
    global _last
    if not isinstance(d, int) or not 0 < d < _N:
        raise ValueError("p256: private key out of range [1, n-1]")
    last = _last
    if last[0] == d:
        return last[1], last[2]
    q = _affine(*_mul_g(d))
    # A damaged table file would give a wrong point, which is almost surely off the curve.
    if q is None or not _on_curve(q[0], q[1]):
        raise ValueError("p256: k*G left the curve (damaged p256g.bin?)")
    _last = (d, q[0], q[1])
    return q


def generate_private_key():
    # Uniform in [1, n - 1] by rejection sampling of 256-bit strings (a rejection happens
    # with probability about 2^-32).
    while True:
        d = int.from_bytes(os.urandom(32), "big")
        if 0 < d < _N:
            return d


def _hmac(key, data):
    # HMAC-SHA256 with a 32-byte key.
    k = int.from_bytes(key, "big") << 256
    inner = hashlib.sha256((k ^ _IPAD).to_bytes(64, "big"))
    inner.update(data)
    outer = hashlib.sha256((k ^ _OPAD).to_bytes(64, "big"))
    outer.update(inner.digest())
    return outer.digest()


def sign(d, digest):
    # ECDSA signature (r, s) of a 32-byte SHA-256 digest, nonce by RFC 6979 section 3.2
    # (qlen = hlen = 256, so bits2int needs no shift and bits2octets is h mod n).
    if not isinstance(d, int) or not 0 < d < _N:
        raise ValueError("p256: private key out of range [1, n-1]")
    if len(digest) != 32:
        raise ValueError("p256: wanted a 32-byte digest, got %d bytes" % len(digest))
    n = _N
    e = int.from_bytes(digest, "big")
    seed = d.to_bytes(32, "big") + (e % n).to_bytes(32, "big")
    v = b"\x01" * 32
    k = _hmac(b"\x00" * 32, v + b"\x00" + seed)
    v = _hmac(k, v)
    k = _hmac(k, v + b"\x01" + seed)
    v = _hmac(k, v)
    while True:
        v = _hmac(k, v)
        nonce = int.from_bytes(v, "big")
        if 0 < nonce < n:
            X, _, Z = _mul_g(nonce)
            p = _P
            r = X * _inv(Z * Z % p, p) % p % n
            if r:
                s = _inv(nonce, n) * (e + r * d) % n
                if s:
                    return r, s
        k = _hmac(k, v + b"\x00")
        v = _hmac(k, v)


def verify(public, digest, signature):
    # True when signature (r, s) is valid for digest under public (x, y); False for anything
    # else: r or s outside [1, n - 1], a point off the curve or at infinity, wrong types.
    try:
        x, y = public
        r, s = signature
        e = int.from_bytes(bytes(digest[:32]), "big")
    except (TypeError, ValueError):
        return False
    for v in (x, y, r, s):
        if not isinstance(v, int):
            return False
    n = _N
    if not (0 < r < n and 0 < s < n and _on_curve(x, y)):
        return False
    w = _inv(s, n)
    X, Y, Z = _mul(r * w % n, x, y)
    q = _affine(X, Y, Z)
    if q is None:
        return False
    X, Y, Z = _mul_g(e * w % n)
    X, Y, Z = _madd(X, Y, Z, q[0], q[1])
    if not Z:
        return False
    # x(R) mod n == r without an inversion: X == r' * Z^2 (mod p) for r' = r or r + n < p.
    p = _P
    zz = Z * Z % p
    if (X - r * zz) % p == 0:
        return True
    return r + n < p and (X - (r + n) * zz) % p == 0
