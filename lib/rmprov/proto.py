"""The protocomm messages the device speaks, as rmprov.pb schemas (names as in the .proto)."""

# Field numbers and types from the message definitions esp-rainmaker-cli 1.14.1 ships
# (ESP-IDF's protocomm session.proto, sec0.proto, sec1.proto, sec2.proto, constants.proto and
# wifi_provisioning's wifi_constants.proto, wifi_config.proto, wifi_scan.proto,
# wifi_ctrl.proto; ESP RainMaker's esp_rmaker_user_mapping.proto and
# esp_rmaker_chal_resp.proto). All are proto3. Length limits are ours: Wi-Fi's own for SSID
# (32), passphrase (64) and BSSID (6), the key sizes of security 1 (and of security 2 with
# SRP6a's 3072-bit group), and bounds that keep a hostile message small elsewhere.

from micropython import const

from rmprov.pb import BOOL, BYTES, I32, MSG, ONEOF, REP, STR, U32

_ONE = MSG | ONEOF
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

# session.proto, sec0.proto, sec1.proto, sec2.proto (security 2 is not implemented: its
# messages are here so they decode as protobuf reads them, and the session refuses them).
SESSION = (
    (2, "sec_ver", I32, None),
    (
        10,
        "sec0",
        _ONE,
        (
            (1, "msg", I32, None),
            (20, "sc", _ONE, ()),
            (21, "sr", _ONE, ((1, "status", I32, None),)),
        ),
    ),
    (
        11,
        "sec1",
        _ONE,
        (
            (1, "msg", I32, None),
            (20, "sc0", _ONE, ((1, "client_pubkey", BYTES, 32),)),
            (
                21,
                "sr0",
                _ONE,
                (
                    (1, "status", I32, None),
                    (2, "device_pubkey", BYTES, 32),
                    (3, "device_random", BYTES, 16),
                ),
            ),
            (22, "sc1", _ONE, ((2, "client_verify_data", BYTES, 32),)),
            (23, "sr1", _ONE, ((1, "status", I32, None), (3, "device_verify_data", BYTES, 32))),
        ),
    ),
    (
        12,
        "sec2",
        _ONE,
        (
            (1, "msg", I32, None),
            (
                20,
                "sc0",
                _ONE,
                ((1, "client_username", BYTES, 64), (2, "client_pubkey", BYTES, 384)),
            ),
            (
                21,
                "sr0",
                _ONE,
                (
                    (1, "status", I32, None),
                    (2, "device_pubkey", BYTES, 384),
                    (3, "device_salt", BYTES, 32),
                ),
            ),
            (22, "sc1", _ONE, ((1, "client_proof", BYTES, 64),)),
            (
                23,
                "sr1",
                _ONE,
                (
                    (1, "status", I32, None),
                    (2, "device_proof", BYTES, 64),
                    (3, "device_nonce", BYTES, 16),
                ),
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
WIFI_CONFIG = (
    (1, "msg", I32, None),
    (10, "cmd_get_status", _ONE, ()),
    (
        11,
        "resp_get_status",
        _ONE,
        (
            (1, "status", I32, None),
            (2, "sta_state", I32, None),
            (10, "fail_reason", I32 | ONEOF, None),
            (
                11,
                "connected",
                _ONE,
                (
                    (1, "ip4_addr", STR, _TEXT),
                    (2, "auth_mode", I32, None),
                    (3, "ssid", BYTES, 32),
                    (4, "bssid", BYTES, 6),
                    (5, "channel", I32, None),
                ),
            ),
        ),
    ),
    (
        12,
        "cmd_set_config",
        _ONE,
        (
            (1, "ssid", BYTES, 32),
            (2, "passphrase", BYTES, 64),
            (3, "bssid", BYTES, 6),
            (4, "channel", I32, None),
        ),
    ),
    (13, "resp_set_config", _ONE, ((1, "status", I32, None),)),
    (14, "cmd_apply_config", _ONE, ()),
    (15, "resp_apply_config", _ONE, ((1, "status", I32, None),)),
)

# wifi_scan.proto
_SCAN_RESULT = (
    (1, "ssid", BYTES, 32),
    (2, "channel", U32, None),
    (3, "rssi", I32, None),
    (4, "bssid", BYTES, 6),
    (5, "auth", I32, None),
)
WIFI_SCAN = (
    (1, "msg", I32, None),
    (2, "status", I32, None),
    (
        10,
        "cmd_scan_start",
        _ONE,
        (
            (1, "blocking", BOOL, None),
            (2, "passive", BOOL, None),
            (3, "group_channels", U32, None),
            (4, "period_ms", U32, None),
        ),
    ),
    (11, "resp_scan_start", _ONE, ()),
    (12, "cmd_scan_status", _ONE, ()),
    (
        13,
        "resp_scan_status",
        _ONE,
        ((1, "scan_finished", BOOL, None), (2, "result_count", U32, None)),
    ),
    (14, "cmd_scan_result", _ONE, ((1, "start_index", U32, None), (2, "count", U32, None))),
    (15, "resp_scan_result", _ONE, ((1, "entries", REP, (_SCAN_RESULT, 64)),)),
)

# wifi_ctrl.proto (prov-ctrl)
WIFI_CTRL = (
    (1, "msg", I32, None),
    (2, "status", I32, None),
    (11, "cmd_ctrl_reset", _ONE, ()),
    (12, "resp_ctrl_reset", _ONE, ()),
    (13, "cmd_ctrl_reprov", _ONE, ()),
    (14, "resp_ctrl_reprov", _ONE, ()),
)

# esp_rmaker_user_mapping.proto (cloud_user_assoc)
USER_MAPPING = (
    (1, "msg", I32, None),
    (
        10,
        "cmd_set_user_mapping",
        _ONE,
        ((1, "UserID", STR, _TEXT), (2, "SecretKey", STR, _TEXT)),
    ),
    (11, "resp_set_user_mapping", _ONE, ((1, "Status", I32, None), (2, "NodeId", STR, _ID))),
)

# esp_rmaker_chal_resp.proto (ch_resp)
CHAL_RESP = (
    (1, "msg", I32, None),
    (2, "status", I32, None),
    (10, "cmdChallengeResponsePayload", _ONE, ((1, "payload", BYTES, 256),)),
    (
        11,
        "respChallengeResponsePayload",
        _ONE,
        ((1, "payload", BYTES, 256), (2, "node_id", STR, _ID)),
    ),
    (12, "cmdGetNodeIDPayload", _ONE, ()),
    (13, "respGetNodeIDPayload", _ONE, ((1, "node_id", STR, _ID),)),
    (14, "cmdDisableChalRespPayload", _ONE, ()),
    (15, "respDisableChalRespPayload", _ONE, ()),
)
