"""X25519 (RFC 7748): Curve25519 Diffie-Hellman on 32-byte strings, Montgomery ladder."""

# The ladder runs the same sequence of operations for every scalar: 255 steps of the RFC 7748
# section 5 formulas (5M + 4S + one multiplication by a24 = 121665), a conditional swap done
# by masking (no branch on a scalar bit), then an inversion by Fermat's little theorem with a
# fixed addition chain (254 squarings, 11 multiplications). Python big integers themselves
# are not constant-time (their length and the allocator vary with the values), so this is
# no defence against an attacker who can time the device closely; the keys it serves are
# ephemeral, one per provisioning session.
#
# Speed (it is on the path of every field onboarding): reducing a product mod p by `%` is a
# big-integer division and the dearest operation here, so only the four values a step hands on
# (x2, z2, x3, z3) are reduced that way. The products that feed further multiplications are
# folded once instead, t = h * 2^255 + l -> l + 19 * h (2^255 = 19 mod p): four cheap
# operations instead of a division, leaving values below 2^262 (in magnitude: differences may
# be negative, and Python's & and >> keep l + 19 * h congruent to t for those too). Bounds per
# step, with x2, z2, x3, z3 in [0, p): a, c < 2^256 and |b|, |d| < 2^255; the folded aa, bb,
# da, cb (and e = aa - bb) are below 2^262, the folded (da - cb)^2 below 2^276; the widest
# product reduced by % is (aa + a24 * e) * e < 2^542.
# The sums and differences fed to multiplications are never reduced. Scalar bits come from a
# bytearray, so the ladder shifts no big integer.

import os

from micropython import const

from rmprov.errors import SecurityError

_P = const(0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFED)  # 2^255 - 19
_LOW = const(0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF)  # 2^255 - 1
_A24 = const(121665)  # (486662 - 2) / 4
_BASE = b"\x09" + bytes(31)  # u = 9, the base point


def _sqn(x, n, p):
    # x^(2^n) mod p
    for _ in range(n):
        x = x * x % p
    return x


def _inv(z, p):
    # z^(p - 2) = z^(2^255 - 21) mod p: the inverse for z != 0, and 0 for z == 0 (as RFC 7748
    # wants for the u = 0 and low-order inputs). Exponents in the comments.
    z2 = z * z % p  # 2
    z9 = _sqn(z2, 2, p) * z % p  # 9
    z11 = z9 * z2 % p  # 11
    a = z11 * z11 % p * z9 % p  # 2^5 - 1
    b = _sqn(a, 5, p) * a % p  # 2^10 - 1
    c = _sqn(b, 10, p) * b % p  # 2^20 - 1
    c = _sqn(c, 20, p) * c % p  # 2^40 - 1
    c = _sqn(c, 10, p) * b % p  # 2^50 - 1
    d = _sqn(c, 50, p) * c % p  # 2^100 - 1
    d = _sqn(d, 100, p) * d % p  # 2^200 - 1
    d = _sqn(d, 50, p) * c % p  # 2^250 - 1
    return _sqn(d, 5, p) * z11 % p  # 2^255 - 32 + 11


def x25519(k, u):
    # The X25519 function of RFC 7748 section 5: scalar k and u-coordinate u, 32 bytes each
    # (little-endian), to 32 bytes. k is clamped; u's top bit is ignored and a value >= p is
    # taken mod p. All zeros comes back for a low-order u: shared_secret() refuses that.
    if len(k) != 32 or len(u) != 32:
        raise ValueError("x25519: wanted 32-byte scalar and u, got %d and %d" % (len(k), len(u)))
    kb = bytearray(k)
    kb[0] &= 248
    kb[31] = (kb[31] & 127) | 64
    p = _P
    low = _LOW
    x1 = int.from_bytes(u, "little") & low
    x1 %= p
    x2 = 1
    z2 = 0
    x3 = x1
    z3 = 1
    swap = 0
    for i in range(254, -1, -1):
        bit = (kb[i >> 3] >> (i & 7)) & 1
        mask = -(swap ^ bit)  # 0 or -1 (all ones)
        swap = bit
        d = mask & (x2 ^ x3)
        x2 ^= d
        x3 ^= d
        d = mask & (z2 ^ z3)
        z2 ^= d
        z3 ^= d
        a = x2 + z2
        b = x2 - z2
        c = x3 + z3
        d = x3 - z3
        t = a * a
        aa = (t & low) + (t >> 255) * 19
        t = b * b
        bb = (t & low) + (t >> 255) * 19
        t = d * a
        da = (t & low) + (t >> 255) * 19
        t = c * b
        cb = (t & low) + (t >> 255) * 19
        e = aa - bb
        x3 = da + cb
        x3 = x3 * x3 % p
        t = da - cb
        t = t * t
        z3 = ((t & low) + (t >> 255) * 19) * x1 % p
        x2 = aa * bb % p
        z2 = (aa + _A24 * e) * e % p
    mask = -swap
    x2 ^= mask & (x2 ^ x3)
    z2 ^= mask & (z2 ^ z3)
    return (x2 * _inv(z2, p) % p).to_bytes(32, "little")


def generate_private_key():
    # 32 random bytes (clamped when used). os.urandom is a PRNG on an ESP32 until the radio is
    # on (ESP-IDF "Random Number Generation"): the caller turns Wi-Fi on first.
    return os.urandom(32)


def public_key(k):
    # The public key (u-coordinate of k * 9) of private key k.
    return x25519(k, _BASE)


def shared_secret(k, peer):
    # The shared secret of private key k and the peer's public key; SecurityError for a
    # malformed key or an all-zero result (RFC 7748 section 6.1: a low-order peer key).
    if len(peer) != 32:
        raise SecurityError("x25519: wanted a 32-byte public key, got %d bytes" % len(peer))
    s = x25519(k, peer)
    if s == bytes(32):
        raise SecurityError("x25519: peer key of low order (shared secret all zeros)")
    return s
