"""What field provisioning keeps in NVS: Wi-Fi credentials, user mapping, the ch_resp switch."""

# Namespaces and keys (esp32.NVS handles from rmclaim.nvs: one per namespace per boot):
#   rmclaim_prov  wifi        the Wi-Fi credentials, one blob: 1 byte SSID length, the SSID
#                             (1-32 bytes), the passphrase (0-63 bytes); written once the board
#                             has joined with them, in one write, so a power cut leaves the old
#                             credentials or the new ones, never an SSID with another's password
#                 chresp_off  i32 1: challenge-response is off for good (the client's "disable"
#                             command, or a mapping that went through)
#   rmclaim_map   user_id     the user id cloud_user_assoc was given (UTF-8)
#                 secret_key  its secret key (UTF-8), written after user_id: only the two
#                             together are a mapping to publish (the MQTT side publishes
#                             {"node_id", "user_id", "secret_key", "reset": true} from them and
#                             erases them once the broker acknowledged it)
# NVS writes through (ESP-IDF 5: each write is on flash when it returns, and atomic per key).
# Nothing here is ever printed.

from micropython import const

PROV_NS = "rmclaim_prov"
MAP_NS = "rmclaim_map"
_WIFI = "wifi"
_OFF = "chresp_off"
_USER = "user_id"
_SECRET = "secret_key"
_WIFI_MAX = const(97)  # 1 + 32 + 64: read with one buffer this size
_TEXT_MAX = const(128)  # rmprov.proto's limit for the user id and the secret key
_NOT_FOUND = const(-4354)  # ESP_ERR_NVS_NOT_FOUND as esp32.NVS reports it


def _nvs(namespace):
    import rmclaim

    return rmclaim.nvs(namespace)


def _missing(e):
    return bool(e.args) and e.args[0] == _NOT_FOUND


def wifi():
    # (ssid, passphrase) as bytes, or None when none are stored (or the blob is not one this
    # module wrote: ignored, as if absent).
    buf = bytearray(_WIFI_MAX)
    try:
        n = _nvs(PROV_NS).get_blob(_WIFI, buf)
    except OSError as e:
        if _missing(e):
            return None
        raise
    size = buf[0] if n else 0
    if not 0 < size <= 32 or n < 1 + size or n - 1 - size > 63:
        return None
    return bytes(buf[1 : 1 + size]), bytes(buf[1 + size : n])


def save_wifi(ssid, passphrase):
    if not 0 < len(ssid) <= 32 or len(passphrase) > 63:
        raise ValueError("saved: SSID of 1-32 bytes and passphrase of 0-63 bytes wanted")
    _nvs(PROV_NS).set_blob(_WIFI, bytes((len(ssid),)) + ssid + passphrase)


def forget_wifi():
    try:
        _nvs(PROV_NS).erase_key(_WIFI)
    except OSError as e:
        if not _missing(e):
            raise


def chresp_off():
    try:
        return _nvs(PROV_NS).get_i32(_OFF) == 1
    except OSError as e:
        if _missing(e):
            return False
        raise


def turn_chresp_off():
    _nvs(PROV_NS).set_i32(_OFF, 1)


def save_mapping(user_id, secret_key):
    # The secret key goes first out and last in: a cut in between leaves a user id alone,
    # which is no mapping (see the top).
    nvs = _nvs(MAP_NS)
    try:
        nvs.erase_key(_SECRET)
    except OSError as e:
        if not _missing(e):
            raise
    nvs.set_blob(_USER, user_id.encode())
    nvs.set_blob(_SECRET, secret_key.encode())


def mapping():
    # (user_id, secret_key) as str, or None unless both are stored.
    nvs = _nvs(MAP_NS)
    out = []
    for key in (_USER, _SECRET):
        buf = bytearray(_TEXT_MAX)
        try:
            n = nvs.get_blob(key, buf)
        except OSError as e:
            if _missing(e):
                return None
            raise
        out.append(str(buf[:n], "utf-8"))
    return out[0], out[1]
