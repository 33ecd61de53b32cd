"""ECDSA P-256 signing with blinded secrets, for a key that signs on request (on rmclaim.p256)."""

# rmclaim.p256 has no side-channel protection: its comb reads table entries chosen by the bits
# of the scalar, and big-integer arithmetic takes time that depends on its operands. That is
# acceptable for a key made and used once, unobserved, at claim time; field provisioning's
# challenge-response signs with the same key for anyone who completes a session, as often as
# they ask (within rmprov's limits). So here every signature blinds what it computes on:
# - the nonce k (RFC 6979, as p256.sign: the same digest always gives the same signature) is
#   split as k = k1 + k2 (mod n) with k1 fresh and uniform, and R = k1*G + k2*G: each comb run
#   sees a scalar that alone is uniform and unrelated to k;
# - the private key d is split as d = d1 + d2 (mod n) with d1 fresh, and s = k^-1 (e + r d)
#   is computed as (b k)^-1 (b e + b r d1 + b r d2) with a fresh b: no product or inversion
#   takes d or k alone.
# Python integers stay variable-time; what leaks is now about fresh random values, different
# at every signature, not about d or k. The random values come from `random` (os.urandom by
# default: call with a radio on, as os.urandom is a PRNG on an ESP32 until then).

from micropython import const

from rmclaim import p256

_N = const(0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551)
_P = const(0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF)


def _scalar(random):
    # Uniform in [1, n - 1] (rejection sampling, as p256.generate_private_key).
    while True:
        v = int.from_bytes(random(32), "big")
        if 0 < v < _N:
            return v


def _nonces(d, e):
    # RFC 6979 section 3.2 candidates for (d, e), in order (as p256.sign draws them). A copy of
    # p256.sign's loop on purpose: sign drawing them from a shared generator raised the smallest
    # 32-bit heap that completes a claim from 43 to 46 KB (make bench), and only this module,
    # never loaded during a claim, needs them apart from signing.
    h = p256._hmac
    seed = d.to_bytes(32, "big") + (e % _N).to_bytes(32, "big")
    v = b"\x01" * 32
    k = h(b"\x00" * 32, v + b"\x00" + seed)
    v = h(k, v)
    k = h(k, v + b"\x01" + seed)
    v = h(k, v)
    while True:
        v = h(k, v)
        yield int.from_bytes(v, "big")
        k = h(k, v + b"\x00")
        v = h(k, v)


def _r(k, random):
    # x(k*G) mod n, k*G computed as k1*G + k2*G with k1 fresh.
    while True:
        k1 = _scalar(random)
        k2 = (k - k1) % _N
        if k2:
            break
    a = p256._affine(*p256._mul_g(k2))
    X, Y, Z = p256._mul_g(k1)
    X, Y, Z = p256._madd(X, Y, Z, a[0], a[1])
    if not Z:
        return 0
    p = _P
    return X * p256._inv(Z * Z % p, p) % p % _N


def sign(d, digest, random=None):
    # ECDSA signature (r, s) of a 32-byte SHA-256 digest under private key d, blinded (see the
    # top); the same (r, s) as p256.sign and any RFC 6979 implementation.
    if not isinstance(d, int) or not 0 < d < _N:
        raise ValueError("p256blind: private key out of range [1, n-1]")
    if len(digest) != 32:
        raise ValueError("p256blind: wanted a 32-byte digest, got %d bytes" % len(digest))
    if random is None:
        import os

        random = os.urandom
    n = _N
    e = int.from_bytes(digest, "big")
    for k in _nonces(d, e):
        if not 0 < k < n:
            continue
        r = _r(k, random)
        if not r:
            continue
        b = _scalar(random)
        d1 = _scalar(random)
        d2 = (d - d1) % n
        br = b * r % n
        s = p256._inv(b * k % n, n) * ((b * e + br * d1 + br * d2) % n) % n
        if s:
            return r, s


def _der_integer(v):
    # A positive INTEGER's DER: minimal big-endian bytes, a 0 first when the top bit is set.
    b = v.to_bytes(33, "big")
    i = 0
    while i < 32 and not b[i] and b[i + 1] < 0x80:
        i += 1
    return b"\x02" + bytes((33 - i,)) + b[i:]


def sign_der(d, digest, random=None):
    # sign() as the DER ECDSA-Sig-Value (SEQUENCE of r and s, at most 72 bytes) that mbedTLS,
    # and so ESP RainMaker's challenge-response, sends.
    r, s = sign(d, digest, random)
    body = _der_integer(r) + _der_integer(s)
    return b"\x30" + bytes((len(body),)) + body
