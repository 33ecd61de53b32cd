"""SHA-512 and HMAC-SHA512: hashlib's sha512 when the firmware has one, else pure Python."""

# Stock ESP32 firmware (and the Unix port) has only sha256, sha1 and md5 in hashlib, and the
# self-claim challenge needs HMAC-SHA512, hence the fallback (FIPS 180-4 section 6.4). It
# keeps one message schedule per call, reads each 128-byte block straight from the input
# through a memoryview and builds no per-block lists. Words are plain ints masked to 64 bits.

from micropython import const

_M = const(0xFFFFFFFFFFFFFFFF)

# First 64 bits of the fractional parts of the cube roots of the first 80 primes.
_K = (
    0x428A2F98D728AE22,
    0x7137449123EF65CD,
    0xB5C0FBCFEC4D3B2F,
    0xE9B5DBA58189DBBC,
    0x3956C25BF348B538,
    0x59F111F1B605D019,
    0x923F82A4AF194F9B,
    0xAB1C5ED5DA6D8118,
    0xD807AA98A3030242,
    0x12835B0145706FBE,
    0x243185BE4EE4B28C,
    0x550C7DC3D5FFB4E2,
    0x72BE5D74F27B896F,
    0x80DEB1FE3B1696B1,
    0x9BDC06A725C71235,
    0xC19BF174CF692694,
    0xE49B69C19EF14AD2,
    0xEFBE4786384F25E3,
    0x0FC19DC68B8CD5B5,
    0x240CA1CC77AC9C65,
    0x2DE92C6F592B0275,
    0x4A7484AA6EA6E483,
    0x5CB0A9DCBD41FBD4,
    0x76F988DA831153B5,
    0x983E5152EE66DFAB,
    0xA831C66D2DB43210,
    0xB00327C898FB213F,
    0xBF597FC7BEEF0EE4,
    0xC6E00BF33DA88FC2,
    0xD5A79147930AA725,
    0x06CA6351E003826F,
    0x142929670A0E6E70,
    0x27B70A8546D22FFC,
    0x2E1B21385C26C926,
    0x4D2C6DFC5AC42AED,
    0x53380D139D95B3DF,
    0x650A73548BAF63DE,
    0x766A0ABB3C77B2A8,
    0x81C2C92E47EDAEE6,
    0x92722C851482353B,
    0xA2BFE8A14CF10364,
    0xA81A664BBC423001,
    0xC24B8B70D0F89791,
    0xC76C51A30654BE30,
    0xD192E819D6EF5218,
    0xD69906245565A910,
    0xF40E35855771202A,
    0x106AA07032BBD1B8,
    0x19A4C116B8D2D0C8,
    0x1E376C085141AB53,
    0x2748774CDF8EEB99,
    0x34B0BCB5E19B48A8,
    0x391C0CB3C5C95A63,
    0x4ED8AA4AE3418ACB,
    0x5B9CCA4F7763E373,
    0x682E6FF3D6B2B8A3,
    0x748F82EE5DEFB2FC,
    0x78A5636F43172F60,
    0x84C87814A1F0AB72,
    0x8CC702081A6439EC,
    0x90BEFFFA23631E28,
    0xA4506CEBDE82BDE9,
    0xBEF9A3F7B2C67915,
    0xC67178F2E372532B,
    0xCA273ECEEA26619C,
    0xD186B8C721C0C207,
    0xEADA7DD6CDE0EB1E,
    0xF57D4F7FEE6ED178,
    0x06F067AA72176FBA,
    0x0A637DC5A2C898A6,
    0x113F9804BEF90DAE,
    0x1B710B35131C471B,
    0x28DB77F523047D84,
    0x32CAAB7B40C72493,
    0x3C9EBE0A15C9BEBC,
    0x431D67C49C100D4C,
    0x4CC5D4BECB3E42B6,
    0x597F299CFC657E2A,
    0x5FCB6FAB3AD6FAEC,
    0x6C44198C4A475817,
)
# Same for the square roots of the first 8 primes: the initial hash value.
_H = (
    0x6A09E667F3BCC908,
    0xBB67AE8584CAA73B,
    0x3C6EF372FE94F82B,
    0xA54FF53A5F1D36F1,
    0x510E527FADE682D1,
    0x9B05688C2B3E6C1F,
    0x1F83D9ABFB41BD6B,
    0x5BE0CD19137E2179,
)


def _compress(h, w, block, offset):
    # One 128-byte block of block[offset:] into the state h, with w as the schedule.
    m = _M
    for i in range(16):
        j = offset + 8 * i
        w[i] = int.from_bytes(block[j : j + 8], "big")
    for i in range(16, 80):
        x = w[i - 15]
        y = w[i - 2]
        s0 = ((x >> 1 | x << 63) ^ (x >> 8 | x << 56) ^ x >> 7) & m
        s1 = ((y >> 19 | y << 45) ^ (y >> 61 | y << 3) ^ y >> 6) & m
        w[i] = (w[i - 16] + s0 + w[i - 7] + s1) & m
    a, b, c, d, e, f, g, hh = h
    k = _K
    for i in range(80):
        t1 = (
            hh
            + (((e >> 14 | e << 50) ^ (e >> 18 | e << 46) ^ (e >> 41 | e << 23)) & m)
            + (g ^ (e & (f ^ g)))
            + k[i]
            + w[i]
        )
        t2 = (((a >> 28 | a << 36) ^ (a >> 34 | a << 30) ^ (a >> 39 | a << 25)) & m) + (
            (a & b) | (c & (a | b))
        )
        hh = g
        g = f
        f = e
        e = (d + t1) & m
        d = c
        c = b
        b = a
        a = (t1 + t2) & m
    h[0] = (h[0] + a) & m
    h[1] = (h[1] + b) & m
    h[2] = (h[2] + c) & m
    h[3] = (h[3] + d) & m
    h[4] = (h[4] + e) & m
    h[5] = (h[5] + f) & m
    h[6] = (h[6] + g) & m
    h[7] = (h[7] + hh) & m


def _sha512_py(data):
    h = list(_H)
    w = [0] * 80
    n = len(data)
    full = n - n % 128
    view = memoryview(data)
    for offset in range(0, full, 128):
        _compress(h, w, view, offset)
    # Padding: 0x80, zeros, then the message length in bits as a 128-bit big-endian number.
    tail = bytearray(256 if n - full >= 112 else 128)
    tail[: n - full] = view[full:]
    tail[n - full] = 0x80
    tail[-16:] = (8 * n).to_bytes(16, "big")
    for offset in range(0, len(tail), 128):
        _compress(h, w, tail, offset)
    out = bytearray(64)
    for i in range(8):
        out[8 * i : 8 * i + 8] = h[i].to_bytes(8, "big")
    return bytes(out)


# Chosen once, at import.
try:
    from hashlib import sha512 as _builtin  # type: ignore[attr-defined]
except ImportError:
    _builtin = None


def sha512(data):
    if _builtin is None:
        return _sha512_py(data)
    return _builtin(data).digest()


def _hash2(first, second):
    # SHA-512 of first || second.
    if _builtin is None:
        return _sha512_py(first + second)
    ctx = _builtin(first)
    ctx.update(second)
    return ctx.digest()


def hmac_sha512(key, msg):
    # HMAC (RFC 2104) with SHA-512: 128-byte blocks, keys longer than that are hashed first.
    if len(key) > 128:
        key = sha512(key)
    k = int.from_bytes(key, "big") << (8 * (128 - len(key)))
    ones = ((1 << 1024) - 1) // 255  # 0x01 in each of 128 bytes
    ipad = (k ^ 0x36 * ones).to_bytes(128, "big")
    opad = (k ^ 0x5C * ones).to_bytes(128, "big")
    return _hash2(opad, _hash2(ipad, bytes(msg)))
