"""The model behind the network stand-in's WLAN methods (loaded per call, then dropped)."""

# The station model follows ports/esp32/network_wlan.c of MicroPython v1.23.0-v1.28.0 (the
# station logic is the same in every release; line numbers of v1.28.0):
# - connect() sets the config (esp_wifi_set_config refuses while a connection attempt is
#   under way: ESP_ERR_WIFI_STATE, "Wifi Internal State Error"), resets the reconnect count
#   and starts an attempt; every failed attempt is a STA_DISCONNECTED event that stores its
#   reason and, while a connection is requested, starts the next attempt at once, forever by
#   default (config('reconnects') -1; N allows N reconnects, 0 none) (:109-169, :310-357).
# - The reason is sticky: only GOT_IP clears it, connect() does not (:188-189).
# - status() (:367-403): GOT_IP (1010) when connected; else the reason when it is 201 (no AP
#   found) or 210-212; 202 when it is 202 (AUTH_FAIL) or 205 (CONNECTION_FAIL); IDLE (1000)
#   after disconnect() (reason 8, ASSOC_LEAVE); CONNECTING (1001) while a connection is
#   requested and reconnects remain, so 15 (4-way handshake timeout), 200, 203 and 204 never
#   show then; IDLE when nothing happened; else the reason itself.
# - scan() (:437-477) needs the station active ("STA must be active") and returns an empty
#   list when esp_wifi_scan_start fails, which it does while a connection attempt is under
#   way (ESP-IDF v5.5 esp_wifi.h: ESP_ERR_WIFI_STATE "still connecting").
# Which reason a wrong password gives is decided inside Espressif's closed Wi-Fi library: WPA2
# usually ends an attempt with 15 (the 4-way handshake timed out), so by default a wrong
# password here shows only CONNECTING (the harsher case); an access point can say 202 or 205
# instead (board.json "aps": "auth_fail_reason").
#
# The soft-AP (ports/esp32/network_wlan.c v1.28.0, same since v1.23.0): config() with keyword
# arguments ends in esp_wifi_set_config, which "can be called only when specified interface is
# enabled" (ESP-IDF v5.5.1 esp_wifi.h), so an AP's config before active(True) fails
# (ESP_ERR_WIFI_MODE, "Wifi Invalid Mode"; micropython issue #7504); AP keys (essid/ssid,
# password/key, authmode/security, hidden, max_clients) on the station give "AP required"
# (require_if, after the loop); a WPA/WPA2 soft-AP needs a password of 8 to 63 characters
# (ESP_ERR_WIFI_PASSWORD, "Wifi Invalid Password"); WEP is no soft-AP mode
# (esp_wifi_types_generic.h v5.5.1, wifi_ap_config_t.authmode; ESP_ERR_INVALID_ARG, "Wifi
# Unknown Error 0x0102" in #7504).
# The driver's defaults before any config (open, channel 1, 4 stations here) are not in the
# sources read: nothing should rely on them. status('stations') lists the joined
# stations as (mac,) tuples (esp_wifi_ap_get_sta_list: ESP_ERR_WIFI_MODE with the AP off) and
# isconnected() on the AP is whether there is one. Which stations have joined is the host's to
# say (board.json "ap_stations": MACs as hex); the AP's HTTP server is reached on a loopback
# port instead (board.json "softap_port", see the socket double). ifconfig() of an active
# AP is ESP-IDF's default soft-AP address, 192.168.4.1/24 (esp_netif_defaults.c, v5.5.1).
#
# board.json "aps" lists the access points in range: ssid, password (None: open), rssi,
# channel, auth_fail_reason; "wifi_faults": {"no_ap_attempts": N} makes the first N attempts
# after each connect() find no access point (reason 201), as a first scan that misses the
# AP's beacon does. Attempts are shortened (a scan that finds nothing takes _SCAN_MS, a join
# _ASSOC_MS, a failed handshake _AUTH_MS) so tests stay quick.

import _boardsim
from micropython import const

_SCAN_MS = const(300)
_ASSOC_MS = const(150)
_AUTH_MS = const(400)
_ASSOC_LEAVE = const(8)
_HANDSHAKE_TIMEOUT = const(15)
_NO_AP_FOUND = const(201)
_AUTH_FAIL = const(202)
_CONNECTION_FAIL = const(205)
_IDLE = const(1000)
_CONNECTING = const(1001)
_GOT_IP = const(1010)
# The state list of an interface (network._WLAN._s; network.WLAN.active sets the first).
_ACTIVE = const(0)
_REQUESTED = const(1)
_CONNECTED = const(2)
_REASON = const(3)
_CONF = const(4)  # the driver's reconnect limit: 0 forever, else config('reconnects') + 1
_TRIES = const(5)
_SSID = const(6)
_KEY = const(7)
_AT = const(8)  # when the attempt under way started (ms); -1: the driver stopped retrying
_ATTEMPT = const(9)


def _aps():
    board = _boardsim.board()
    aps = board.get("aps")
    if aps is None and board.get("wifi"):
        aps = [board["wifi"]]
    return aps or []


def _bytes(v):
    # connect() takes str or bytes (mp_obj_str_get_data): the radio compares bytes.
    return v if isinstance(v, (bytes, bytearray)) else (v or "").encode()


def _find(ssid):
    ssid = _bytes(ssid)
    for ap in _aps():
        if ap["ssid"].encode() == ssid:
            return ap
    return None


def _advance(s):
    # Play the driver's events up to now: each attempt ends joined or with a reason, and the
    # next one starts at once while a connection is requested and reconnects remain.
    now = _boardsim.now_ms()
    while s[_REQUESTED] and not s[_CONNECTED] and s[_AT] >= 0:
        ap = _find(s[_SSID])
        faults = _boardsim.board().get("wifi_faults") or {}
        if ap is None or s[_ATTEMPT] < faults.get("no_ap_attempts", 0):
            took, reason = _SCAN_MS, _NO_AP_FOUND
        elif ap.get("password") and ap["password"].encode() != _bytes(s[_KEY]):
            took, reason = _AUTH_MS, ap.get("auth_fail_reason", _HANDSHAKE_TIMEOUT)
        else:
            took, reason = _ASSOC_MS, 0
        if now < s[_AT] + took:
            return
        s[_AT] += took
        s[_ATTEMPT] += 1
        if not reason:
            s[_CONNECTED] = True
            s[_REASON] = 0
            return
        s[_REASON] = reason
        _boardsim.idf_log("wifi", "sta disconnected, reason %d" % reason)
        if s[_CONF]:
            s[_TRIES] += 1
            if s[_TRIES] >= s[_CONF]:
                s[_AT] = -1  # no more reconnects: the station stays down
                return


def _attempting(s):
    _advance(s)
    return s[_REQUESTED] and not s[_CONNECTED] and s[_AT] >= 0


def connect(w, ssid=None, key=None, *, bssid=None):
    s = w._s
    if w._if != 0:
        raise OSError("Wifi Invalid Interface")
    if not s[_ACTIVE]:
        raise OSError("Wifi Not Started")
    if ssid is not None or key is not None:
        if _attempting(s):
            raise OSError("Wifi Internal State Error")
        if ssid is not None:
            s[_SSID] = ssid
        if key is not None:
            s[_KEY] = key
    elif _attempting(s):
        raise OSError("Wifi Internal Error")
    s[_TRIES] = 0
    s[_CONNECTED] = False
    s[_REQUESTED] = True
    s[_AT] = _boardsim.now_ms()
    s[_ATTEMPT] = 0


def disconnect(w):
    s = w._s
    _advance(s)
    s[_REQUESTED] = False
    if s[_CONNECTED] or s[_AT] >= 0:
        s[_REASON] = _ASSOC_LEAVE
    s[_CONNECTED] = False


def status(w, param=None):
    s = w._s
    if param == "rssi":
        ap = _find(s[_SSID]) if isconnected(w) else None
        if ap is None:
            raise OSError("Wifi Not Connected")
        return ap.get("rssi", -52)
    if param == "stations":
        if w._if == 0:
            raise OSError("AP required")
        if not s[_ACTIVE]:
            raise OSError("Wifi Invalid Mode")
        return [(bytes.fromhex(m),) for m in _boardsim.board().get("ap_stations") or ()]
    if param is not None:
        raise ValueError("unknown status param")
    if w._if != 0:
        return None
    _advance(s)
    r = s[_REASON]
    if s[_CONNECTED]:
        return _GOT_IP
    if r == _NO_AP_FOUND or 210 <= r <= 212:
        return r
    if r == _AUTH_FAIL or r == _CONNECTION_FAIL:
        return _AUTH_FAIL
    if r == _ASSOC_LEAVE:
        return _IDLE
    if s[_REQUESTED] and s[_AT] >= 0:
        return _CONNECTING
    return _IDLE if not r else r


def isconnected(w):
    if w._if != 0:
        return w._s[_ACTIVE] and bool(_boardsim.board().get("ap_stations"))
    _advance(w._s)
    return w._s[_CONNECTED]


def ifconfig(w, cfg=None):
    if cfg is not None:
        return None
    if w._if != 0 and w._s[_ACTIVE]:
        return ("192.168.4.1", "255.255.255.0", "192.168.4.1", "0.0.0.0")
    if isconnected(w):
        return ("127.0.0.1", "255.0.0.0", "127.0.0.1", "127.0.0.1")
    return ("0.0.0.0", "0.0.0.0", "0.0.0.0", "0.0.0.0")


def scan(w):
    sta = _boardsim.radios.get("wlan", {}).get(0)
    if sta is None or not sta[_ACTIVE]:
        raise OSError("STA must be active")
    if _attempting(sta):
        return []  # esp_wifi_scan_start refused while connecting: an empty list
    out = []
    for i, ap in enumerate(_aps()):
        bssid = bytes((0x7C, 0xDF, 0xA1, 0x00, 0x00, i + 1))
        auth = 3 if ap.get("password") else 0  # AUTH_WPA2_PSK, AUTH_OPEN
        ch = ap.get("channel", 6)
        out.append((ap["ssid"].encode(), bssid, ch, ap.get("rssi", -52), auth, False))
    return out


_AP_KEYS = ("essid", "ssid", "password", "key", "authmode", "security", "hidden", "max_clients")


def _ap_config(w, s, kwargs):
    # The soft-AP's settings (see the top): kept in _boardsim.radios["ap"], as the driver keeps
    # them; essid and password in the interface's ssid and key slots.
    ap = _boardsim.radios.setdefault("ap", {"authmode": 0, "channel": 1, "max_clients": 4})
    new = dict(ap)
    ssid, key = s[_SSID], s[_KEY]
    for name, value in kwargs.items():
        if name == "essid" or name == "ssid":
            ssid = str(value)[:32]
        elif name == "password" or name == "key":
            key = str(value)[:63]
        elif name == "security":
            new["authmode"] = int(value)
        elif name != "channel" and name != "reconnects":
            new[name] = int(value)
    if w._if == 0 and any(k in _AP_KEYS for k in kwargs):
        raise OSError("AP required")
    if w._if != 0:
        if not s[_ACTIVE]:
            raise OSError("Wifi Invalid Mode")
        if new["authmode"] == 1:  # WEP: not a soft-AP mode (ESP_ERR_INVALID_ARG)
            raise RuntimeError("Wifi Unknown Error 0x0102")
        if new["authmode"] and not 8 <= len(key or "") <= 63:
            raise OSError("Wifi Invalid Password")
        ap.update(new)
        s[_SSID], s[_KEY] = ssid, key


def config(w, *args, **kwargs):
    s = w._s
    if kwargs:
        if args:
            raise TypeError("either pos or kw args are allowed")
        if "channel" in kwargs and w._if != 0:
            _boardsim.radios.setdefault("ap", {"authmode": 0, "channel": 1, "max_clients": 4})
            _boardsim.radios["ap"]["channel"] = int(kwargs["channel"])
        if "reconnects" in kwargs:
            if w._if != 0:
                raise OSError("STA required")
            n = kwargs["reconnects"]
            s[_CONF] = 0 if n < 0 else n + 1
        _ap_config(w, s, kwargs)
        return None
    if args == ("mac",):
        mac = bytearray(bytes.fromhex(_boardsim.board()["mac"]))
        if w._if != 0:
            mac[5] = (mac[5] + 1) & 0xFF  # the soft-AP MAC is the base MAC + 1
        return bytes(mac)
    if args == ("ssid",) or args == ("essid",):
        ssid = s[_SSID] or ""
        return ssid.decode() if isinstance(ssid, (bytes, bytearray)) else ssid
    if args == ("reconnects",):
        return s[_CONF] - 1
    if args and args[0] in ("authmode", "security", "hidden", "max_clients", "channel"):
        ap = _boardsim.radios.get("ap") or {"authmode": 0, "channel": 1, "max_clients": 4}
        return ap.get("authmode" if args[0] == "security" else args[0], 0)
    if args == ("hostname",) or args == ("dhcp_hostname",):
        return "esp32"
    raise ValueError("unknown config param")
