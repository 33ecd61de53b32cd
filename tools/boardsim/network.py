"""network stand-in: WLAN as the ESP32 port drives it; traffic goes over the host's loopback."""

# Lean on purpose: on a board network is built in and costs no GC heap. Here the WLAN objects
# hold only their interface and state (kept in _boardsim, as a board keeps it in its Wi-Fi
# driver); every method is modelled in _wlan, loaded for the call and dropped again (see there
# for the model and its sources).

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
_METHODS = (
    "active",
    "connect",
    "disconnect",
    "status",
    "isconnected",
    "ifconfig",
    "scan",
    "config",
)


def hostname(name=None):
    return "esp32" if name is None else None


class _WLAN:
    PM_NONE = 0
    PM_PERFORMANCE = 1
    PM_POWERSAVE = 2

    def __init__(self, interface=STA_IF):
        if interface != STA_IF and interface != AP_IF:
            raise ValueError("invalid WLAN interface identifier")
        self._if = interface
        # One state per interface, shared by every WLAN object of it, as on the chip: active,
        # requested, connected, reason, reconnect limit, reconnects, ssid, key, attempt start,
        # attempts (the indices are _wlan's).
        states = _boardsim.radios.setdefault("wlan", {})
        if interface not in states:
            states[interface] = [False, False, False, 0, 0, 0, None, None, 0, 0]
        self._s = states[interface]

    def active(self, is_active=None):
        # Here rather than in _wlan: a claim turns the station on for its key (a seeded
        # os.urandom) and off again, and should not pay for loading the station model.
        s = self._s
        if is_active is None:
            return s[0]
        if not is_active:
            s[1] = s[2] = False  # no longer requested, not connected
        elif not s[0]:
            s[5] = 0  # STA_START resets the reconnect count
        s[0] = bool(is_active)
        return None

    def __getattr__(self, name):
        # The other methods, modelled in _wlan.
        if name not in _METHODS:
            raise AttributeError(name)

        def method(*args, **kwargs):
            import sys

            import _wlan

            try:
                return getattr(_wlan, name)(self, *args, **kwargs)
            finally:
                sys.modules.pop("_wlan", None)

        return method


class _WLAN123(_WLAN):
    # WLAN.IF_STA and IF_AP arrived in v1.23.0 (network_wlan.c); older releases have only
    # network.STA_IF / AP_IF.
    IF_STA = STA_IF
    IF_AP = AP_IF


# MicroPython's ESP32-H2 build has no Wi-Fi: the network module exists but has no WLAN.
if _boardsim.board().get("wlan", True):
    WLAN = _WLAN123 if _boardsim.firmware().get("if_sta", True) else _WLAN


def _sta_connected():
    if STA_IF not in _boardsim.radios.get("wlan", {}):
        return False
    return _WLAN(STA_IF).isconnected()
