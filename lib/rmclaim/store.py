"""Credentials in NVS (namespace rmaker_creds, RainMaker key names), in phases an index commits."""

from micropython import const

from rmclaim.errors import StoreError, UnsupportedChip

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
# NVS writes through: each set_blob/erase_key is on flash when it returns, and is atomic (a
# key holds its old or its new value after a power cut); commit() does nothing (ESP-IDF 5.x
# nvs_handle_simple.cpp, NVSHandleSimple::commit only checks the handle), so this module never
# calls it. A power cut can land between any two writes, so rmclaim_lens is the commit record:
# - only what it lists counts: a blob it does not list is ignored (a cut can leave one), and
#   erased when a phase next writes that slot as absent; a listed blob whose length differs is
#   reported as damaged, never used;
# - a phase writes its blobs first and rmclaim_lens last, so the index never lists a blob
#   before it is whole;
# - a listed blob is never overwritten: a phase that changes a listed slot first writes an
#   index without it, so a cut never pairs one phase's blob with another's;
# - forget() erases rmclaim_lens first.
# esp32.NVS has no close, and each construction takes ESP-IDF RAM for good (MicroPython
# ports/esp32/esp32_nvs.c: nvs_open, never nvs_close): the namespace is opened once per boot
# and the handle kept on the rmclaim package (its modules are dropped between claim phases;
# the package stays).
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


# Key material is made only with a radio on. os.urandom is esp_random() (MicroPython
# ports/esp32/modos.c in v1.23-v1.27; extmod/modos.c through ports/esp32/mphalport.c
# mp_hal_get_random from v1.28), and ESP-IDF's "Random Number Generation" docs (v5.x) say the
# hardware RNG gives true random numbers while an RF subsystem (Wi-Fi, Bluetooth, 802.15.4) is
# enabled, and pseudo-random ones otherwise. MicroPython turns no radio on by itself: a board fresh
# from a soft reset into the raw REPL (the host-assisted claim), or a boot that never made
# network.WLAN active, has only the PRNG. (Here rather than in a module of its own: measured, the
# claim's heap peak is lower so.) load_or_create_key makes the key and the random bytes between
# _radio_on() and _radio_off().


def _radio_on():
    # Turns a radio on unless one is on already: the Wi-Fi station (active is enough, no
    # association: esp_wifi_start, network_wlan.c), or Bluetooth LE where the build has no WLAN
    # (the ESP32-H2 preview: MICROPY_PY_NETWORK_WLAN 0, sdkconfig.ble; BLE().active(True) runs
    # nimble_port_init, which enables the controller). -> what it turned on, for _radio_off():
    # "network", "bluetooth", or None. Raises UnsupportedChip when no radio can be turned on.
    # A board's network and bluetooth are built in, never listed in sys.modules (MicroPython
    # py/builtinimport.c) and cost no heap; a simulation's are modules on the heap: the ones
    # loaded here are dropped again (the radio stays as set: its state is the board's).
    import sys

    loaded = [m for m in ("network", "bluetooth") if m not in sys.modules]
    try:
        try:
            import network

            has_wlan = hasattr(network, "WLAN")
        except ImportError:
            if sys.platform != "esp32":
                return None  # not a board (CPython, the Unix port): the OS's CSPRNG
            has_wlan = False
        why = "no network.WLAN"
        if has_wlan:
            try:
                wlan = network.WLAN(network.WLAN.IF_STA)
                if wlan.active():
                    return None
                wlan.active(True)
                return "network"
            except OSError as e:
                why = "WLAN.active(True) failed: %s" % e
        try:
            import bluetooth

            ble = bluetooth.BLE()
            if ble.active():
                return None
            ble.active(True)
            return "bluetooth"
        except ImportError:
            why += ", no bluetooth"
        except OSError as e:
            why += ", BLE.active(True) failed: %s" % e
        raise UnsupportedChip(
            "key: no radio can be turned on (%s), so os.urandom is only a PRNG: refusing to "
            "make a key; use a firmware with Wi-Fi or Bluetooth, or a host-made key (rmbench "
            "nvs-image --host-key)" % why
        )
    finally:
        for m in loaded:
            sys.modules.pop(m, None)


def _radio_off(on):
    # Turns off what _radio_on() turned on (its result), dropping the modules it loads.
    import sys

    if on is not None:
        loaded = on not in sys.modules
        if on == "network":
            import network

            network.WLAN(network.WLAN.IF_STA).active(False)
        else:
            import bluetooth

            bluetooth.BLE().active(False)
        if loaded:
            sys.modules.pop(on, None)


class Store:
    def __init__(self, nvs=None):
        self._nvs = nvs

    def _handle(self):
        if self._nvs is None:
            import rmclaim

            try:
                self._nvs = rmclaim.nvs(NAMESPACE)
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
        # One phase: set (or erase, for None) the given slots, then rmclaim_lens. Two passes,
        # each ending with an index write: the first only when the index lists a slot about to
        # change, and then without those slots (a listed blob is never overwritten); the second
        # writes the blobs, then the index listing them.
        nvs = self._handle()
        lens = self.lengths()
        for slot, data in items:
            if data is not None and (not data or len(data) > 0xFFFF):
                raise StoreError(
                    "store: %s of %d bytes cannot be stored" % (KEYS[slot], len(data))
                )
        try:
            for final in (False, True):
                if final:
                    for slot, data in items:
                        if data is None:
                            try:
                                nvs.erase_key(KEYS[slot])  # listed or left by a cut: erased
                            except OSError as e:
                                if _errno(e) != _NOT_FOUND:
                                    raise
                        else:
                            nvs.set_blob(KEYS[slot], data)
                            lens[slot] = len(data)
                else:
                    listed = False
                    for slot, _ in items:
                        if lens[slot]:
                            lens[slot] = 0
                            listed = True
                    if not listed:
                        continue
                index = bytearray(_INDEX_LEN)
                index[0] = _LAYOUT
                for i, n in enumerate(lens):
                    index[1 + 2 * i] = n & 0xFF
                    index[2 + 2 * i] = n >> 8
                nvs.set_blob(_INDEX, index)
        except OSError as e:
            raise StoreError("store: writing NVS failed: %s" % e) from e

    def save_key(self, key_pem, random=None):
        # Phase 1, before any network call: the key (and the random bytes, when not stored
        # yet), listed together by one index write.
        items = [(_KEY, key_pem.encode())]
        if random is not None:
            items.append((_RANDOM, random))
        self._write(items)

    def has_random(self):
        return self.lengths()[_RANDOM] == RANDOM_LEN

    def save_identity(self, certificate, node_id, mqtt_host, mqtt_cred_host):
        # Phase 2: the certificate (text as received), node id and MQTT hosts, listed together
        # by one index write; the key stays as it is. Only after check_certificate passed for
        # the stored key (the claim and the host-assisted path both check first).
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
        # The stored key as d, or a new one stored now, before anything else happens; the 64
        # random bytes are made alongside when missing. Key material is made only with a radio
        # on, and with csr not yet loaded (less on the heap). -> (d, key PEM)
        try:
            pem = self.key_pem()
        except StoreError:
            pem = None  # a damaged key blob with no certificate is worth nothing: replace it
        d = None
        if pem is not None:
            from rmclaim import csr

            try:
                d = csr.decode_private_key(csr.pem_decode(pem, KEY_LABEL))
            except ValueError:
                pass
            if d is not None and self.has_random():
                return d, pem
        import os

        on = _radio_on()
        try:
            if d is None:
                from rmclaim import p256

                d = p256.generate_private_key()
                pem = None
            random = None if self.has_random() else os.urandom(RANDOM_LEN)
        finally:
            _radio_off(on)
        if pem is not None:
            self._write([(_RANDOM, random)])
            return d, pem
        from rmclaim import csr

        pem = csr.pem_encode(csr.encode_private_key(d), KEY_LABEL)
        self.save_key(pem, random)
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
        except OSError as e:
            raise StoreError("store: erasing NVS failed: %s" % e) from e
