"""network stand-in: WLAN for the station interface; traffic itself uses the host's loopback."""

import _boardsim

STA_IF = 0
AP_IF = 1
# Status codes as the ESP32 port reports them.
STAT_IDLE = 1000
STAT_CONNECTING = 1001
STAT_GOT_IP = 1010
STAT_BEACON_TIMEOUT = 200
STAT_NO_AP_FOUND = 201
STAT_WRONG_PASSWORD = 202
STAT_ASSOC_FAIL = 203
STAT_HANDSHAKE_TIMEOUT = 204
AUTH_OPEN = 0
AUTH_WPA2_PSK = 3

# Association takes this long after connect(), as a radio would (never instant on a board).
_ASSOC_MS = 150


def hostname(name=None):
    return "esp32" if name is None else None


class _WLAN:
    IF_STA = STA_IF
    IF_AP = AP_IF
    PM_NONE = 0
    PM_PERFORMANCE = 1
    PM_POWERSAVE = 2

    _state = {}  # shared by every WLAN object of an interface, as on the chip

    def __init__(self, interface=STA_IF):
        self._if = interface
        self._s = _WLAN._state.setdefault(interface, {"active": False, "ssid": None, "at": 0})

    def active(self, is_active=None):
        if is_active is None:
            return self._s["active"]
        self._s["active"] = bool(is_active)
        if not is_active:
            self._s["ssid"] = None
        return None

    def connect(self, ssid=None, key=None, *, bssid=None):
        if not self._s["active"]:
            raise OSError("Wifi Not Started")
        self._s["ssid"] = ssid
        self._s["key"] = key
        self._s["at"] = _boardsim.now_ms()

    def disconnect(self):
        self._s["ssid"] = None

    def status(self, param=None):
        if param == "rssi":
            return -52
        if param is not None:
            raise ValueError("unknown status param")
        if not self._s["active"] or self._s["ssid"] is None:
            return STAT_IDLE
        if _boardsim.now_ms() - self._s["at"] < _ASSOC_MS:
            return STAT_CONNECTING
        bench = _boardsim.board()["wifi"]
        if self._s["ssid"] != bench["ssid"]:
            return STAT_NO_AP_FOUND
        if self._s["key"] != bench["password"]:
            return STAT_WRONG_PASSWORD
        return STAT_GOT_IP

    def isconnected(self):
        return self.status() == STAT_GOT_IP

    def ifconfig(self, cfg=None):
        if cfg is not None:
            return None
        if self.isconnected():
            return ("127.0.0.1", "255.0.0.0", "127.0.0.1", "127.0.0.1")
        return ("0.0.0.0", "0.0.0.0", "0.0.0.0", "0.0.0.0")

    def scan(self):
        bench = _boardsim.board()["wifi"]
        return [
            (bench["ssid"].encode(), b"\x7c\xdf\xa1\x00\x00\x01", 6, -52, AUTH_WPA2_PSK, False)
        ]

    def config(self, *args, **kwargs):
        if kwargs:
            return None
        if args == ("mac",):
            return bytes.fromhex(_boardsim.board()["mac"])
        if args == ("ssid",):
            return self._s["ssid"] or ""
        if args == ("hostname",) or args == ("dhcp_hostname",):
            return "esp32"
        raise ValueError("unknown config param")


# MicroPython's ESP32-H2 build has no Wi-Fi: the network module exists but has no WLAN.
if _boardsim.board().get("wifi") is not None:
    WLAN = _WLAN


def _sta_connected():
    state = _WLAN._state.get(STA_IF)
    return state is not None and _WLAN(STA_IF).isconnected()


# The interfaces' state is the board's, not this module's: on a board the Wi-Fi driver keeps
# running whatever Python drops (network is built in). Kept in _boardsim, it outlives this
# module, and os.urandom's stand-in reads there whether a radio is on (_boardsim.radio_on).
_WLAN._state = _boardsim.radios.setdefault("wlan", {})
