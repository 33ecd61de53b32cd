"""The protocomm endpoints of field provisioning, on a rmprov.field.Provisioner's state."""

# Each handler takes the decrypted request and returns the reply bytes; a request that does not
# decode, or names no command, raises ProtoError (rmprov.httpd then answers 500, as protocomm
# answers a handler's failure). Replies and checks as ESP-IDF's (wifi_config.c, wifi_scan.c,
# wifi_ctrl.c, handlers.c, v5.4.2) and ESP RainMaker's (esp_rmaker_user_mapping.c,
# esp_rmaker_chal_resp.c, v1.16.0):
# - prov-config: CmdSetConfig refuses (status InvalidArgument, nothing kept) a BSSID that is
#   neither empty nor 6 bytes and a passphrase of 64 bytes or more, and here an empty SSID too;
#   the credentials stay in RAM until the board has joined with them (rmprov.field);
# - prov-scan: a blocking scan of at most 16 networks, strongest first (the manager's
#   CONFIG_WIFI_PROV_SCAN_MAX_ENTRIES default); a result range past them is InvalidArgument;
# - cloud_user_assoc: the user id and secret key go to NVS (rmprov.saved) and the reply names
#   the node id; InvalidParam for an empty one, InvalidState when the node id is not known yet
#   (a board that will claim with a token gets it from the service);
# - ch_resp: the challenge's SHA-256 signed with the claimed key (ECDSA P-256, DER), blinded
#   (rmclaim.p256blind); Disabled once off (the "disable" command, kept in NVS, or a mapping
#   that went through), Fail on an unclaimed board and past the limits: one signature per
#   _SIGN_GAP_MS, 5 per boot (rmprov.field's count).

import hashlib

from micropython import const

from rmprov import pb, proto
from rmprov.errors import ProtoError

_INVALID_ARGUMENT = const(4)
_INTERNAL_ERROR = const(5)
_SCAN_MAX = const(16)
_SIGN_GAP_MS = const(2000)
# RMakerConfigStatus (cloud_user_assoc) and RMakerChRespStatus (ch_resp)
_MAP_INVALID_PARAM = const(1)
_MAP_INVALID_STATE = const(2)
_CR_FAIL = const(1)
_CR_INVALID_PARAM = const(2)
_CR_DISABLED = const(3)


def handlers(p):
    return {
        "prov-config": lambda data: prov_config(p, data),
        "prov-scan": lambda data: prov_scan(p, data),
        "prov-ctrl": lambda data: prov_ctrl(p, data),
        "cloud_user_assoc": lambda data: user_assoc(p, data),
        "ch_resp": lambda data: ch_resp(p, data),
    }


def _status(p):
    sta = p.station()
    if sta == 0:
        p.told_connected()
        connected = {"ip4_addr": p.sta.ifconfig()[0], "ssid": p.trying[0]}
        return {"status": 0, "sta_state": 0, "connected": connected}
    if sta == 3:
        return {"status": 0, "sta_state": 3, "fail_reason": p.reason}
    return {"status": 0, "sta_state": sta}


def prov_config(p, data):
    m = pb.decode(proto.WIFI_CONFIG, data)
    kind = m["msg"]
    if kind == 0:
        reply = {"msg": 1, "resp_get_status": _status(p)}
    elif kind == 2 and m.get("cmd_set_config") is not None:
        c = m["cmd_set_config"]
        status = _INVALID_ARGUMENT
        if c["ssid"] and len(c["bssid"]) in (0, 6) and len(c["passphrase"]) < 64:
            p.pending = (c["ssid"], c["passphrase"])
            status = 0
        reply = {"msg": 3, "resp_set_config": {"status": status}}
    elif kind == 4:  # the client sends CmdApplyConfig as msg 4 with no payload
        reply = {"msg": 5, "resp_apply_config": {"status": p.apply()}}
    else:
        raise ProtoError("prov-config: no command %d" % kind)
    return pb.encode(proto.WIFI_CONFIG, reply)


def prov_scan(p, data):
    m = pb.decode(proto.WIFI_SCAN, data)
    kind = m["msg"]
    status = 0
    if kind == 0:
        found = sorted(p.sta.scan(), key=lambda ap: -ap[3])[:_SCAN_MAX]
        p.scan = tuple(found)
        reply = {"msg": 1, "resp_scan_start": {}}
    elif kind == 2:
        done = {"scan_finished": True, "result_count": len(p.scan)}
        reply = {"msg": 3, "resp_scan_status": done}
    elif kind == 4 and m.get("cmd_scan_result") is not None:
        start = m["cmd_scan_result"]["start_index"]
        count = m["cmd_scan_result"]["count"]
        entries = []
        if start + count > len(p.scan):
            status = _INVALID_ARGUMENT
        else:
            for ssid, bssid, channel, rssi, auth, _ in p.scan[start : start + count]:
                entry = {"ssid": ssid, "channel": channel, "rssi": rssi, "bssid": bssid}
                entry["auth"] = auth
                entries.append(entry)
        reply = {"msg": 5, "resp_scan_result": {"entries": entries}}
    else:
        raise ProtoError("prov-scan: no command %d" % kind)
    reply["status"] = status
    return pb.encode(proto.WIFI_SCAN, reply)


def prov_ctrl(p, data):
    m = pb.decode(proto.WIFI_CTRL, data)
    kind = m["msg"]
    if kind == 1:
        reply = {"msg": 2, "status": p.reset(False), "resp_ctrl_reset": {}}
    elif kind == 3:
        reply = {"msg": 4, "status": p.reset(True), "resp_ctrl_reprov": {}}
    else:
        raise ProtoError("prov-ctrl: no command %d" % kind)
    return pb.encode(proto.WIFI_CTRL, reply)


def user_assoc(p, data):
    m = pb.decode(proto.USER_MAPPING, data)
    cmd = m.get("cmd_set_user_mapping")
    if m["msg"] != 0 or cmd is None:
        raise ProtoError("cloud_user_assoc: no command %d" % m["msg"])
    resp = {"Status": 0}
    if not cmd["UserID"] or not cmd["SecretKey"]:
        resp["Status"] = _MAP_INVALID_PARAM
    elif p.node_id is None:
        resp["Status"] = _MAP_INVALID_STATE
    else:
        from rmprov import saved

        saved.save_mapping(cmd["UserID"], cmd["SecretKey"])
        resp["NodeId"] = p.node_id
    return pb.encode(proto.USER_MAPPING, {"msg": 1, "resp_set_user_mapping": resp})


# Our SEC1 EC private key DER (rmclaim.csr.encode_private_key, and cryptography's
# TraditionalOpenSSL for host-made keys): SEQUENCE (0x77 bytes) { INTEGER 1, OCTET STRING of
# the 32-byte key, [0] curve OID, [1] public key }.
_SEC1_HEAD = b"\x30\x77\x02\x01\x01\x04\x20"
_SEC1_CURVE = b"\xa0\x0a\x06\x08\x2a\x86\x48\xce\x3d\x03\x01\x07\xa1\x44\x03\x42\x00\x04"


def _private_key():
    # The stored (claimed) key as an integer, taken from its fixed place in the DER when the
    # layout around it is the usual one (version, key, P-256 OID, public key); any other goes
    # through the full parser (rmclaim.csr), which refuses what it does not know.
    from rmclaim import store

    pem = store.Store().key_pem()
    import binascii

    parts = pem.split("-----")
    der = binascii.a2b_base64(parts[2]) if len(parts) == 5 else b""
    if len(der) == 0x79 and der[:7] == _SEC1_HEAD and der[39:57] == _SEC1_CURVE:
        return int.from_bytes(der[7:39], "big")
    from rmclaim import csr

    return csr.decode_private_key(der)


def _sign(challenge):
    # DER ECDSA signature of SHA-256(challenge) with the claimed key. rmclaim.store and
    # rmclaim.p256blind were loaded when provisioning started (rmprov.field), while the heap
    # still had room in one piece: loading them now could fail on a fragmented heap.
    from rmclaim import p256blind

    d = _private_key()
    try:
        return p256blind.sign_der(d, hashlib.sha256(challenge).digest())
    finally:
        d = None


def ch_resp(p, data):
    import time

    if not p.chresp and p.claimed:
        return pb.encode(proto.CHAL_RESP, {"msg": 1, "status": _CR_DISABLED})
    m = pb.decode(proto.CHAL_RESP, data)
    kind = m["msg"]
    if kind == 4:
        from rmprov import saved

        saved.turn_chresp_off()
        p.chresp = False
        return pb.encode(proto.CHAL_RESP, {"msg": 5, "respDisableChalRespPayload": {}})
    if kind == 2:
        node = {"node_id": p.node_id or ""}
        return pb.encode(proto.CHAL_RESP, {"msg": 3, "respGetNodeIDPayload": node})
    cmd = m.get("cmdChallengeResponsePayload")
    if kind != 0 or cmd is None:
        raise ProtoError("ch_resp: no command %d" % kind)
    reply = {"msg": 1, "status": _CR_FAIL}  # type: dict
    now = time.ticks_ms()
    if not cmd["payload"]:
        reply["status"] = _CR_INVALID_PARAM
    elif (
        p.chresp
        and p.signs_left
        and (p.signed is None or time.ticks_diff(now, p.signed_at) >= _SIGN_GAP_MS)
    ):
        p.signs_left -= 1
        p.signed_at = now
        signature = _sign(cmd["payload"])
        p.signed = p.server.session
        reply["status"] = 0
        reply["respChallengeResponsePayload"] = {"payload": signature, "node_id": p.node_id}
    return pb.encode(proto.CHAL_RESP, reply)
