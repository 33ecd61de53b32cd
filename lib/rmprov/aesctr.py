"""AES in CTR mode (NIST SP 800-38A) built on cryptolib.aes ECB: one keystream across calls."""

# Stock ESP32 firmware has no CTR mode in cryptolib (mode 6 needs MICROPY_PY_CRYPTOLIB_CTR,
# which ports/esp32 leaves off in every release), so this asks cryptolib for ECB (mode 1)
# only, encrypts counter blocks with it and XORs the keystream in. The counter block is one
# 128-bit big-endian number, incremented per block and wrapping at 2^128, as mbedTLS's
# mbedtls_aes_crypt_ctr (what ESP-IDF's protocomm uses) and OpenSSL do.
#
# The stream continues from call to call: security 1 encrypts every request and reply of a
# session, in both directions, with the next bytes of one keystream. Unused bytes of the last
# block are kept for the next call. Work is done in chunks of _CHUNK bytes, so the heap an
# input of any length needs stays small.

from micropython import const

_ECB = const(1)  # cryptolib.aes mode: MODE_ECB
_CHUNK = const(128)  # keystream bytes made per cryptolib call (8 blocks)
_MASK = const(0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF)


class CTR:
    # CTR(key, counter): key of 16, 24 or 32 bytes (AES-128/192/256), counter the initial
    # 16-byte counter block. crypt() encrypts and decrypts alike.

    def __init__(self, key, counter):
        from cryptolib import aes  # imported here: the module also loads where none exists

        if len(counter) != 16:
            raise ValueError("aesctr: wanted a 16-byte counter block, got %d" % len(counter))
        self._aes = aes(key, _ECB)
        self._ctr = int.from_bytes(counter, "big")
        self._blocks = bytearray(_CHUNK)  # counter blocks, then their keystream
        self._left = b""  # keystream bytes made but not used yet

    def crypt(self, data):
        # data XOR the next len(data) bytes of the keystream, as new bytes.
        n = len(data)
        out = bytearray(n)
        mv = memoryview(data)
        done = 0
        left = self._left
        if left:
            done = min(len(left), n)
            out[:done] = _xor(mv[:done], left[:done])
            self._left = left[done:]
        blocks = self._blocks
        while done < n:
            count = min(n - done + 15, _CHUNK) >> 4
            ctr = self._ctr
            for i in range(count):
                blocks[i << 4 : (i + 1) << 4] = ((ctr + i) & _MASK).to_bytes(16, "big")
            self._ctr = (ctr + count) & _MASK
            size = count << 4
            # ECB over several blocks at once, in place: the counters become the keystream.
            self._aes.encrypt(memoryview(blocks)[:size], blocks)
            take = min(size, n - done)
            out[done : done + take] = _xor(mv[done : done + take], blocks[:take])
            done += take
            if take < size:
                self._left = bytes(blocks[take:size])
        return bytes(out)


def _xor(a, b):
    # a XOR b for equal lengths, through one big-integer XOR (no per-byte loop).
    n = len(a)
    return (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).to_bytes(n, "big")
