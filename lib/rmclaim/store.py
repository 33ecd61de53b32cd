"""Credentials in NVS (namespace rmaker_creds, RainMaker key names), in committed phases."""

from micropython import const

from rmclaim.errors import StoreError

NAMESPACE = "rmaker_creds"
# The blobs, under RainMaker's own key names and with RainMaker's contents (no trailing NUL):
#   client_key      private key PEM ("EC PRIVATE KEY", SEC1)
#   client_cert     the certificate text exactly as the service sent it (device cert + CA)
#   node_id         the node id (the MAC for self-claim), UTF-8
#   mqtt_host       MQTT endpoint from the verify reply, UTF-8 (absent when none was sent)
#   mqtt_cred_host  credentials endpoint from the verify reply, UTF-8 (usually absent)
#   random          64 random bytes made once, before the first claim (RainMaker's PoP source)
# esp32.NVS cannot tell a blob's length, so one more blob, rmclaim_lens, records them:
#   1 byte layout version (1), then one little-endian u16 per slot below, 0 = absent;
#   13 bytes in all, read with a 13-byte buffer, so no read ever guesses a size.
# rmclaim_lens is written after the blobs of a phase and committed with them: it is the
# commit record. A blob it does not list is ignored; a listed blob whose length differs is
# reported as damaged, never used. forget() erases rmclaim_lens first.
KEYS = ("client_key", "client_cert", "node_id", "mqtt_host", "mqtt_cred_host", "random")
_KEY = const(0)
_CERT = const(1)
_NODE = const(2)
_MQTT = const(3)
_MQTT_CRED = const(4)
_RANDOM = const(5)
_INDEX = "rmclaim_lens"
_INDEX_LEN = const(13)
_LAYOUT = const(1)
_NOT_FOUND = const(-4354)  # ESP_ERR_NVS_NOT_FOUND as esp32.NVS reports it
_INVALID_LENGTH = const(-4364)  # ESP_ERR_NVS_INVALID_LENGTH: the blob is longer
RANDOM_LEN = const(64)
KEY_LABEL = "EC PRIVATE KEY"


def _errno(e):
    return e.args[0] if e.args and isinstance(e.args[0], int) else 0


class Credentials:
    # A stored, checked RainMaker identity: everything MQTT needs. key_pem and cert_pem are
    # the stored PEM texts; key_der()/cert_der() give the DER that tls.load_cert_chain takes
    # on every port (some builds of the tls module parse no PEM).
    def __init__(self, node_id, key_pem, cert_pem, mqtt_host, mqtt_cred_host, random):
        self.node_id = node_id
        self.key_pem = key_pem
        self.cert_pem = cert_pem
        self.mqtt_host = mqtt_host
        self.mqtt_cred_host = mqtt_cred_host
        self.random = random

    def key_der(self):
        from rmclaim import csr

        return csr.pem_decode(self.key_pem, KEY_LABEL)

    def cert_der(self):
        from rmclaim import x509

        return x509.split_pem_chain(self.cert_pem)[0]

    def __repr__(self):
        return "Credentials(node_id=%r, mqtt_host=%r)" % (self.node_id, self.mqtt_host)


def _urandom(n):
    import os

    return os.urandom(n)


class Store:
    def __init__(self, nvs=None):
        self._nvs = nvs

    def _handle(self):
        if self._nvs is None:
            try:
                import esp32

                self._nvs = esp32.NVS(NAMESPACE)
            except ImportError:
                raise StoreError("store: this port has no esp32.NVS") from None
            except OSError as e:
                raise StoreError("store: cannot open NVS namespace %s: %s" % (NAMESPACE, e)) from e
        return self._nvs

    def lengths(self):
        # The recorded length of each slot (0 = absent), from rmclaim_lens.
        buf = bytearray(_INDEX_LEN)
        try:
            n = self._handle().get_blob(_INDEX, buf)
        except OSError as e:
            if _errno(e) == _NOT_FOUND:
                return [0] * len(KEYS)
            if _errno(e) == _INVALID_LENGTH:
                raise StoreError(
                    "store: %s is longer than layout %d knows" % (_INDEX, _LAYOUT)
                ) from e
            raise StoreError("store: reading %s failed: %s" % (_INDEX, e)) from e
        if n != _INDEX_LEN or buf[0] != _LAYOUT:
            raise StoreError(
                "store: %s holds an unknown layout (%d bytes, version %d)" % (_INDEX, n, buf[0])
            )
        out = []
        for i in range(len(KEYS)):
            out.append(buf[1 + 2 * i] | buf[2 + 2 * i] << 8)
        return out

    def _read(self, slot, length):
        # Exactly `length` bytes of a listed blob (a bytearray), or StoreError if it is not
        # that long.
        key = KEYS[slot]
        buf = bytearray(length)
        try:
            n = self._handle().get_blob(key, buf)
        except OSError as e:
            if _errno(e) in (_NOT_FOUND, _INVALID_LENGTH):
                n = -1
            else:
                raise StoreError("store: reading %s failed: %s" % (key, e)) from e
        if n != length:
            raise StoreError(
                "store: %s is damaged (recorded %d bytes, found %s); forget() and claim again"
                % (key, length, "none" if n < 0 else "%d" % n)
            )
        return buf

    def get(self, slot, lens=None):
        lens = lens or self.lengths()
        return bytes(self._read(slot, lens[slot])) if lens[slot] else None

    def _text(self, slot, lens):
        # Decoded straight from the read buffer (a certificate is kilobytes: no bytes copy).
        lens = lens or self.lengths()
        return str(self._read(slot, lens[slot]), "utf-8") if lens[slot] else None

    def is_claimed(self, lens=None):
        lens = lens or self.lengths()
        return bool(lens[_KEY] and lens[_CERT] and lens[_NODE])

    def load(self):
        # The stored identity as Credentials, or None when the board is not claimed.
        lens = self.lengths()
        if not self.is_claimed(lens):
            return None
        return Credentials(
            self._text(_NODE, lens),
            self._text(_KEY, lens),
            self._text(_CERT, lens),
            self._text(_MQTT, lens),
            self._text(_MQTT_CRED, lens),
            self.get(_RANDOM, lens),
        )

    def key_pem(self):
        # The stored private key PEM, or None.
        return self._text(_KEY, self.lengths())

    def _write(self, items):
        # One phase: set (or erase, for None) the given slots, then rmclaim_lens, then commit.
        nvs = self._handle()
        lens = self.lengths()
        try:
            for slot, data in items:
                if data is None:
                    if lens[slot]:
                        nvs.erase_key(KEYS[slot])
                    lens[slot] = 0
                else:
                    if not data or len(data) > 0xFFFF:
                        raise StoreError(
                            "store: %s of %d bytes cannot be stored" % (KEYS[slot], len(data))
                        )
                    nvs.set_blob(KEYS[slot], data)
                    lens[slot] = len(data)
            index = bytearray(_INDEX_LEN)
            index[0] = _LAYOUT
            for i, n in enumerate(lens):
                index[1 + 2 * i] = n & 0xFF
                index[2 + 2 * i] = n >> 8
            nvs.set_blob(_INDEX, index)
            nvs.commit()
        except OSError as e:
            raise StoreError("store: writing NVS failed: %s" % e) from e

    def save_key(self, key_pem, random=None):
        # Phase 1, before any network call: the key (and the random bytes, when not stored
        # yet), committed together.
        items = [(_KEY, key_pem.encode())]
        if random is not None:
            items.append((_RANDOM, random))
        self._write(items)

    def has_random(self):
        return self.lengths()[_RANDOM] == RANDOM_LEN

    def save_identity(self, certificate, node_id, mqtt_host, mqtt_cred_host):
        # Phase 2: the certificate (text as received), node id and MQTT hosts, committed
        # together; the key stays as it is. Only after check_certificate passed for the stored
        # key (the claim and the host-assisted path both check first).
        if not self.lengths()[_KEY]:
            raise StoreError("store: no key stored; refusing a certificate without its key")
        self._write(
            [
                (_CERT, certificate.encode()),
                (_NODE, node_id.encode()),
                (_MQTT, None if mqtt_host is None else mqtt_host.encode()),
                (_MQTT_CRED, None if mqtt_cred_host is None else mqtt_cred_host.encode()),
            ]
        )

    def load_or_create_key(self):
        # The stored key as d, or a new one stored and committed now, before anything else
        # happens; the 64 random bytes are made alongside when missing. -> (d, key PEM)
        from rmclaim import csr

        try:
            pem = self.key_pem()
        except StoreError:
            pem = None  # a damaged key blob with no certificate is worth nothing: replace it
        if pem is not None:
            try:
                d = csr.decode_private_key(csr.pem_decode(pem, KEY_LABEL))
            except ValueError:
                d = None
            if d is not None:
                if not self.has_random():
                    self.save_key(pem, _urandom(RANDOM_LEN))
                return d, pem
        from rmclaim import p256

        d = p256.generate_private_key()
        pem = csr.pem_encode(csr.encode_private_key(d), KEY_LABEL)
        self.save_key(pem, None if self.has_random() else _urandom(RANDOM_LEN))
        return d, pem

    def forget(self):
        # Erase everything: first the index (from then on nothing counts as stored), then the
        # blobs, including any a cut left behind unlisted.
        nvs = self._handle()
        try:
            for key in (_INDEX,) + KEYS:
                try:
                    nvs.erase_key(key)
                except OSError as e:
                    if _errno(e) != _NOT_FOUND:
                        raise
                if key == _INDEX:
                    nvs.commit()
            nvs.commit()
        except OSError as e:
            raise StoreError("store: erasing NVS failed: %s" % e) from e
