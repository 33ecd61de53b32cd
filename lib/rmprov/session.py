"""Protocomm security 0 and 1, device side: the prov-session handshake and record encryption."""

# Behaviour follows ESP-IDF's protocomm (components/protocomm/src/security/security0.c and
# security1.c, v5.x), the device side esp-rainmaker-cli's security1.py talks to:
# - command 0 carries the client's X25519 public key (32 bytes); the device makes a fresh key
#   pair, answers with its public key and 16 random bytes (device_random), and derives the
#   session key: the X25519 shared secret, XORed with SHA-256(pop) when a pop is set.
#   A command 0 in any state starts the handshake over;
# - command 1 carries the client's proof: the device's public key encrypted with AES-256-CTR
#   (key = session key, initial counter block = device_random). The device decrypts it with
#   the same keystream and compares (a wrong pop fails here); it answers with the client's
#   public key encrypted by the next 32 bytes of that keystream;
# - every later request and reply is en/decrypted with the next bytes of that one keystream,
#   in the order they pass (both directions share it).
# A refused step raises SecurityError (or ProtoError for a message that does not decode), the
# session falls back to waiting for command 0, and nothing is answered: protocomm's HTTP
# transport then replies with an error status, which the client takes as a failed session.

import hashlib

from rmprov import pb, proto, x25519
from rmprov.aesctr import CTR
from rmprov.errors import SecurityError


class Sec0:
    # Security 0: a one-message handshake and plaintext records.
    version = 0
    established = True  # protocomm's security 0 has no encryption: records pass from the start

    def handle(self, data):
        msg = pb.decode(proto.SESSION, data)
        if msg["sec_ver"] != 0 or msg.get("sec0") is None:
            raise SecurityError("sec0: wanted a security 0 session message")
        reply = {"msg": proto.S0_SESSION_RESPONSE, "sr": {"status": proto.SUCCESS}}
        return pb.encode(proto.SESSION, {"sec_ver": 0, "sec0": reply})

    def encrypt(self, data):
        return bytes(data)

    decrypt = encrypt


class Sec1:
    # Security 1. pop: the proof of possession (bytes, or str taken as UTF-8; empty for none;
    # esp-rainmaker-cli encodes its --pop as Latin-1, so pops printed on labels stay ASCII).
    # random(n) gives n random bytes (default os.urandom): the caller turns the radio on
    # before a session, as os.urandom is a PRNG until then on an ESP32.
    version = 1

    def __init__(self, pop=b"", random=None):
        if isinstance(pop, str):
            pop = pop.encode()
        self._pop = bytes(pop)
        if random is None:
            import os

            random = os.urandom
        self._random = random
        self._reset()

    def _reset(self):
        self.established = False
        self._state = 0  # 0: wants command 0; 1: wants command 1; 2: established
        self._key = b""
        self._device_pub = b""
        self._client_pub = b""
        self._counter = b""
        self._ctr = None

    def handle(self, data):
        # The reply to one prov-session request (bytes to send back as they are).
        try:
            msg = pb.decode(proto.SESSION, data)
            sec1 = msg.get("sec1")
            if msg["sec_ver"] != 1 or sec1 is None:
                raise SecurityError("sec1: wanted a security 1 session message")
            kind = sec1["msg"]
            if kind == proto.S1_COMMAND0 and sec1.get("sc0") is not None:
                reply = self._command0(sec1["sc0"]["client_pubkey"])
            elif kind == proto.S1_COMMAND1 and sec1.get("sc1") is not None:
                reply = self._command1(sec1["sc1"]["client_verify_data"])
            else:
                raise SecurityError("sec1: message type %d without its payload" % kind)
        except Exception:
            self._reset()
            raise
        return pb.encode(proto.SESSION, {"sec_ver": 1, "sec1": reply})

    def _command0(self, client_pub):
        self._reset()
        if len(client_pub) != 32:
            raise SecurityError("sec1: client key of %d bytes, wanted 32" % len(client_pub))
        private = self._random(32)
        device_pub = x25519.public_key(private)
        key = x25519.shared_secret(private, client_pub)
        private = None
        if self._pop:
            digest = hashlib.sha256(self._pop).digest()
            key = (int.from_bytes(key, "big") ^ int.from_bytes(digest, "big")).to_bytes(32, "big")
        counter = self._random(16)
        if len(counter) != 16:
            raise SecurityError("sec1: random source gave %d bytes, wanted 16" % len(counter))
        self._key = key
        self._device_pub = device_pub
        self._client_pub = bytes(client_pub)
        self._counter = counter
        self._state = 1
        resp = {"status": proto.SUCCESS, "device_pubkey": device_pub, "device_random": counter}
        return {"msg": proto.S1_RESPONSE0, "sr0": resp}

    def _command1(self, verify):
        if self._state != 1:
            raise SecurityError("sec1: command 1 before command 0")
        if len(verify) != 32:
            raise SecurityError("sec1: client proof of %d bytes, wanted 32" % len(verify))
        ctr = CTR(self._key, self._counter)
        check = ctr.crypt(verify)
        diff = 0
        pub = self._device_pub
        for i in range(32):
            diff |= check[i] ^ pub[i]
        if diff:
            raise SecurityError("sec1: client proof does not match (wrong pop?)")
        proof = ctr.crypt(self._client_pub)
        self._ctr = ctr
        self._key = b""
        self._state = 2
        self.established = True
        return {
            "msg": proto.S1_RESPONSE1,
            "sr1": {"status": proto.SUCCESS, "device_verify_data": proof},
        }

    def encrypt(self, data):
        # The next len(data) bytes of the session's keystream over data (decrypt is the same).
        if self._ctr is None:
            raise SecurityError("sec1: no session established")
        return self._ctr.crypt(data)

    decrypt = encrypt


def new(version, pop=b"", random=None):
    # A fresh session for security `version` (0 or 1).
    if version == 0:
        return Sec0()
    if version == 1:
        return Sec1(pop, random)
    raise SecurityError("session: security %r not supported (0 or 1)" % (version,))
