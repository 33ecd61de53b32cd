"""network stand-in: WLAN as the ESP32 port drives it; traffic goes over the host's loopback."""

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
# board.json "aps" lists the access points in range: ssid, password (None: open), rssi,
# channel, auth_fail_reason; "wifi_faults": {"no_ap_attempts": N} makes the first N attempts
# after each connect() find no access point (reason 201), as a first scan that misses the
# AP's beacon does. Attempts are shortened (a scan that finds nothing takes _SCAN_MS, a join
# _ASSOC_MS, a failed handshake _AUTH_MS) so tests stay quick.

import _boardsim

STA_IF = 0
AP_IF = 1
STAT_IDLE = 1000
STAT_CONNECTING = 1001
STAT_GOT_IP = 1010
STAT_BEACON_TIMEOUT = 200
STAT_NO_AP_FOUND = 201
STAT_WRONG_PASSWORD = 202
STAT_ASSOC_FAIL = 203
STAT_CONNECT_FAIL = 203
STAT_HANDSHAKE_TIMEOUT = 204
AUTH_OPEN = 0
AUTH_WPA2_PSK = 3

_SCAN_MS = 300
_ASSOC_MS = 150
_AUTH_MS = 400
_ASSOC_LEAVE = 8
_HANDSHAKE_TIMEOUT = 15
_AUTH_FAIL = 202
_CONNECTION_FAIL = 205


def hostname(name=None):
    return "esp32" if name is None else None


def _aps():
    board = _boardsim.board()
    aps = board.get("aps")
    if aps is None and board.get("wifi"):
        aps = [board["wifi"]]
    return aps or []


def _find(ssid):
    for ap in _aps():
        if ap["ssid"] == ssid:
            return ap
    return None


class _WLAN:
    PM_NONE = 0
    PM_PERFORMANCE = 1
    PM_POWERSAVE = 2

    # One state per interface, shared by every WLAN object of it, as on the chip.
    _state = {}

    def __init__(self, interface=STA_IF):
        if interface not in (STA_IF, AP_IF):
            raise ValueError("invalid WLAN interface identifier")
        self._if = interface
        s = _WLAN._state.get(interface)
        if s is None:
            s = {
                "active": False,
                "requested": False,
                "connected": False,
                "reason": 0,
                "conf": 0,  # the driver's reconnect limit: 0 forever, else reconnects + 1
                "tries": 0,
                "ssid": None,
                "key": None,
                "at": 0,
                "attempt": 0,
            }
            _WLAN._state[interface] = s
        self._s = s

    def active(self, is_active=None):
        s = self._s
        if is_active is None:
            return s["active"]
        if is_active and not s["active"]:
            s["tries"] = 0  # STA_START
        if not is_active:
            s["connected"] = False
            s["requested"] = False
        s["active"] = bool(is_active)
        return None

    def _advance(self):
        # Play the driver's events up to now: each attempt ends joined or with a reason, and
        # the next one starts at once while a connection is requested and reconnects remain.
        s = self._s
        now = _boardsim.now_ms()
        while s["requested"] and not s["connected"] and s["at"] >= 0:
            ap = _find(s["ssid"])
            faults = _boardsim.board().get("wifi_faults") or {}
            if ap is None or s["attempt"] < faults.get("no_ap_attempts", 0):
                took, reason = _SCAN_MS, STAT_NO_AP_FOUND
            elif ap.get("password") and ap["password"] != s["key"]:
                took, reason = _AUTH_MS, ap.get("auth_fail_reason", _HANDSHAKE_TIMEOUT)
            else:
                took, reason = _ASSOC_MS, 0
            if now < s["at"] + took:
                return
            s["at"] += took
            s["attempt"] += 1
            if not reason:
                s["connected"] = True
                s["reason"] = 0
                return
            s["reason"] = reason
            _boardsim.idf_log("wifi", "sta disconnected, reason %d" % reason)
            if s["conf"]:
                s["tries"] += 1
                if s["tries"] >= s["conf"]:
                    s["at"] = -1  # no more reconnects: the station stays down
                    return

    def _attempting(self):
        self._advance()
        s = self._s
        return s["requested"] and not s["connected"] and s["at"] >= 0

    def connect(self, ssid=None, key=None, *, bssid=None):
        s = self._s
        if self._if != STA_IF:
            raise OSError("Wifi Invalid Interface")
        if not s["active"]:
            raise OSError("Wifi Not Started")
        if ssid is not None or key is not None:
            if self._attempting():
                raise OSError("Wifi Internal State Error")
            if ssid is not None:
                s["ssid"] = ssid
            if key is not None:
                s["key"] = key
        elif self._attempting():
            raise OSError("Wifi Internal Error")
        s["tries"] = 0
        s["connected"] = False
        s["requested"] = True
        s["at"] = _boardsim.now_ms()
        s["attempt"] = 0

    def disconnect(self):
        s = self._s
        self._advance()
        s["requested"] = False
        if s["connected"] or s["at"] >= 0:
            s["reason"] = _ASSOC_LEAVE
        s["connected"] = False

    def status(self, param=None):
        if param == "rssi":
            ap = _find(self._s["ssid"]) if self.isconnected() else None
            if ap is None:
                raise OSError("Wifi Not Connected")
            return ap.get("rssi", -52)
        if param is not None:
            raise ValueError("unknown status param")
        if self._if != STA_IF:
            return None
        self._advance()
        s = self._s
        r = s["reason"]
        if s["connected"]:
            return STAT_GOT_IP
        if r == STAT_NO_AP_FOUND or 210 <= r <= 212:
            return r
        if r == _AUTH_FAIL or r == _CONNECTION_FAIL:
            return STAT_WRONG_PASSWORD
        if r == _ASSOC_LEAVE:
            return STAT_IDLE
        if s["requested"] and s["at"] >= 0:
            return STAT_CONNECTING
        return STAT_IDLE if not r else r

    def isconnected(self):
        self._advance()
        return self._s["connected"]

    def ifconfig(self, cfg=None):
        if cfg is not None:
            return None
        if self._if == AP_IF and self._s["active"]:
            return ("192.168.4.1", "255.255.255.0", "192.168.4.1", "0.0.0.0")
        if self.isconnected():
            return ("127.0.0.1", "255.0.0.0", "127.0.0.1", "127.0.0.1")
        return ("0.0.0.0", "0.0.0.0", "0.0.0.0", "0.0.0.0")

    def scan(self):
        sta = _WLAN._state.get(STA_IF)
        if sta is None or not sta["active"]:
            raise OSError("STA must be active")
        if self._attempting():
            return []  # esp_wifi_scan_start refused while connecting: an empty list
        out = []
        for i, ap in enumerate(_aps()):
            bssid = bytes((0x7C, 0xDF, 0xA1, 0x00, 0x00, i + 1))
            auth = AUTH_WPA2_PSK if ap.get("password") else AUTH_OPEN
            ch = ap.get("channel", 6)
            out.append((ap["ssid"].encode(), bssid, ch, ap.get("rssi", -52), auth, False))
        return out

    def config(self, *args, **kwargs):
        s = self._s
        if kwargs:
            if "reconnects" in kwargs:
                n = kwargs["reconnects"]
                s["conf"] = 0 if n < 0 else n + 1
            return None
        if args == ("mac",):
            mac = bytearray(bytes.fromhex(_boardsim.board()["mac"]))
            if self._if == AP_IF:
                mac[5] = (mac[5] + 1) & 0xFF  # the soft-AP MAC is the base MAC + 1
            return bytes(mac)
        if args == ("ssid",) or args == ("essid",):
            return s["ssid"] or ""
        if args == ("reconnects",):
            return s["conf"] - 1
        if args == ("hostname",) or args == ("dhcp_hostname",):
            return "esp32"
        raise ValueError("unknown config param")


class _WLAN123(_WLAN):
    # WLAN.IF_STA and IF_AP arrived in v1.23.0 (network_wlan.c); older releases have only
    # network.STA_IF / AP_IF.
    IF_STA = STA_IF
    IF_AP = AP_IF


# MicroPython's ESP32-H2 build has no Wi-Fi: the network module exists but has no WLAN.
if _boardsim.board().get("wlan", True):
    WLAN = _WLAN123 if _boardsim.firmware().get("if_sta", True) else _WLAN


def _sta_connected():
    state = _WLAN._state.get(STA_IF)
    return state is not None and _WLAN(STA_IF).isconnected()


# The interfaces' state is the board's, not this module's: on a board the Wi-Fi driver keeps
# running whatever Python drops (network is built in). Kept in _boardsim, it outlives this
# module, and os.urandom's stand-in reads there whether a radio is on (_boardsim.radio_on).
_WLAN._state = _boardsim.radios.setdefault("wlan", {})
