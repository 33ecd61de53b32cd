"""The protocomm messages the device speaks, as rmprov.pb schemas (names as in the .proto)."""

# Field numbers and types from the message definitions esp-rainmaker-cli 1.14.1 ships
# (ESP-IDF's protocomm session.proto, sec0.proto, sec1.proto, sec2.proto, constants.proto and
# wifi_provisioning's wifi_constants.proto, wifi_config.proto, wifi_scan.proto,
# wifi_ctrl.proto; ESP RainMaker's esp_rmaker_user_mapping.proto and
# esp_rmaker_chal_resp.proto). All are proto3. Length limits are ours: Wi-Fi's own for SSID
# (32), passphrase (64) and BSSID (6), the key sizes of security 1 (and of security 2 with
# SRP6a's 3072-bit group), and bounds that keep a hostile message small elsewhere.

from micropython import const

from rmprov.pb import BOOL, BYTES, I32, MSG, ONEOF, REP, STR, U32, field

_ID = const(64)  # node ids (22 characters on RainMaker)
_TEXT = const(128)  # user id, secret key, IPv4 text

# constants.proto: Status
SUCCESS = const(0)
INVALID_SEC_SCHEME = const(1)
INVALID_PROTO = const(2)
INVALID_ARGUMENT = const(4)
INTERNAL_ERROR = const(5)
CRYPTO_ERROR = const(6)
INVALID_SESSION = const(7)

_EMPTY = ()
_STATUS = ("status", field(1, I32))


def _one(number, schema):
    # A nested message in the message's oneof.
    return (field(number, MSG | ONEOF), schema)


# session.proto, sec0.proto, sec1.proto, sec2.proto (security 2 is not implemented: its
# messages are here so they decode as protobuf reads them, and the session refuses them).
_MSG = ("msg", field(1, I32))
SESSION = (
    "sec_ver",
    field(2, I32),
    "sec0",
    _one(10, _MSG + ("sc", _one(20, _EMPTY), "sr", _one(21, _STATUS))),
    "sec1",
    _one(
        11,
        _MSG
        + (
            "sc0",
            _one(20, ("client_pubkey", field(1, BYTES, 32))),
            "sr0",
            _one(
                21,
                _STATUS
                + ("device_pubkey", field(2, BYTES, 32), "device_random", field(3, BYTES, 16)),
            ),
            "sc1",
            _one(22, ("client_verify_data", field(2, BYTES, 32))),
            "sr1",
            _one(23, _STATUS + ("device_verify_data", field(3, BYTES, 32))),
        ),
    ),
    "sec2",
    _one(
        12,
        _MSG
        + (
            "sc0",
            _one(
                20, ("client_username", field(1, BYTES, 64), "client_pubkey", field(2, BYTES, 384))
            ),
            "sr0",
            _one(
                21,
                _STATUS
                + ("device_pubkey", field(2, BYTES, 384), "device_salt", field(3, BYTES, 32)),
            ),
            "sc1",
            _one(22, ("client_proof", field(1, BYTES, 64))),
            "sr1",
            _one(
                23,
                _STATUS
                + ("device_proof", field(2, BYTES, 64), "device_nonce", field(3, BYTES, 16)),
            ),
        ),
    ),
)
S0_SESSION_RESPONSE = const(1)  # Sec0MsgType
S1_COMMAND0 = const(0)  # Sec1MsgType
S1_RESPONSE0 = const(1)
S1_COMMAND1 = const(2)
S1_RESPONSE1 = const(3)

# wifi_config.proto (with wifi_constants.proto's WifiConnectedState)
_CONNECTED = (
    "ip4_addr",
    field(1, STR, _TEXT),
    "auth_mode",
    field(2, I32),
    "ssid",
    field(3, BYTES, 32),
    "bssid",
    field(4, BYTES, 6),
    "channel",
    field(5, I32),
)
WIFI_CONFIG = (
    "msg",
    field(1, I32),
    "cmd_get_status",
    _one(10, _EMPTY),
    "resp_get_status",
    _one(
        11,
        _STATUS
        + (
            "sta_state",
            field(2, I32),
            "fail_reason",
            field(10, I32 | ONEOF),
            "connected",
            _one(11, _CONNECTED),
        ),
    ),
    "cmd_set_config",
    _one(
        12,
        (
            "ssid",
            field(1, BYTES, 32),
            "passphrase",
            field(2, BYTES, 64),
            "bssid",
            field(3, BYTES, 6),
            "channel",
            field(4, I32),
        ),
    ),
    "resp_set_config",
    _one(13, _STATUS),
    "cmd_apply_config",
    _one(14, _EMPTY),
    "resp_apply_config",
    _one(15, _STATUS),
)

# wifi_scan.proto
_SCAN_RESULT = (
    "ssid",
    field(1, BYTES, 32),
    "channel",
    field(2, U32),
    "rssi",
    field(3, I32),
    "bssid",
    field(4, BYTES, 6),
    "auth",
    field(5, I32),
)
WIFI_SCAN = (
    "msg",
    field(1, I32),
    "status",
    field(2, I32),
    "cmd_scan_start",
    _one(
        10,
        (
            "blocking",
            field(1, BOOL),
            "passive",
            field(2, BOOL),
            "group_channels",
            field(3, U32),
            "period_ms",
            field(4, U32),
        ),
    ),
    "resp_scan_start",
    _one(11, _EMPTY),
    "cmd_scan_status",
    _one(12, _EMPTY),
    "resp_scan_status",
    _one(13, ("scan_finished", field(1, BOOL), "result_count", field(2, U32))),
    "cmd_scan_result",
    _one(14, ("start_index", field(1, U32), "count", field(2, U32))),
    "resp_scan_result",
    _one(15, ("entries", (field(1, REP, 64), _SCAN_RESULT))),
)

# wifi_ctrl.proto (prov-ctrl)
WIFI_CTRL = (
    "msg",
    field(1, I32),
    "status",
    field(2, I32),
    "cmd_ctrl_reset",
    _one(11, _EMPTY),
    "resp_ctrl_reset",
    _one(12, _EMPTY),
    "cmd_ctrl_reprov",
    _one(13, _EMPTY),
    "resp_ctrl_reprov",
    _one(14, _EMPTY),
)

# esp_rmaker_user_mapping.proto (cloud_user_assoc)
USER_MAPPING = (
    "msg",
    field(1, I32),
    "cmd_set_user_mapping",
    _one(10, ("UserID", field(1, STR, _TEXT), "SecretKey", field(2, STR, _TEXT))),
    "resp_set_user_mapping",
    _one(11, ("Status", field(1, I32), "NodeId", field(2, STR, _ID))),
)

# esp_rmaker_chal_resp.proto (ch_resp)
CHAL_RESP = (
    "msg",
    field(1, I32),
    "status",
    field(2, I32),
    "cmdChallengeResponsePayload",
    _one(10, ("payload", field(1, BYTES, 256))),
    "respChallengeResponsePayload",
    _one(11, ("payload", field(1, BYTES, 256), "node_id", field(2, STR, _ID))),
    "cmdGetNodeIDPayload",
    _one(12, _EMPTY),
    "respGetNodeIDPayload",
    _one(13, ("node_id", field(1, STR, _ID))),
    "cmdDisableChalRespPayload",
    _one(14, _EMPTY),
    "respDisableChalRespPayload",
    _one(15, _EMPTY),
)
