"""The user-node mapping request: from NVS (where field onboarding leaves it) to the broker."""

# esp-rainmaker v1.16.0 components/esp_rainmaker/src/core/esp_rmaker_user_mapping.c: once the
# node config is reported, {"node_id", "user_id", "secret_key", "reset": true} goes out with
# QoS 1 on node/<node_id>/user/mapping (Basic Ingest rule esp_user_node_mapping), done when its
# PUBACK arrives. Here the user id and secret key wait in NVS (namespace rmclaim_map, UTF-8
# blobs user_id and secret_key) and are erased once the broker acknowledged the request: a
# power cut before that sends it again on the next boot (the cloud maps a node once). Loaded
# on each connection, and dropped again.

import time

from micropython import const

NAMESPACE = "rmclaim_map"
_MAX = const(256)
_NOT_FOUND = const(-4354)  # ESP_ERR_NVS_NOT_FOUND as esp32.NVS raises it


def _errno(e):
    return e.args[0] if e.args and isinstance(e.args[0], int) else 0


def announce(node):
    # The user-node mapping request, when field onboarding left a user id and secret key
    # in NVS: published (QoS 1), then erased once the broker acknowledged it. A power cut
    # before the erase sends it again on the next boot (the cloud maps a node once).
    import rmclaim

    try:
        nvs = rmclaim.nvs(NAMESPACE)
    except (ImportError, OSError):
        return  # no NVS (not a board): nothing stored
    got = []  # type: list
    for key in ("user_id", "secret_key"):
        buf = bytearray(_MAX)
        try:
            n = nvs.get_blob(key, buf)
            got.append(str(buf[:n], "utf-8"))
        except OSError as e:
            if _errno(e) != _NOT_FOUND:
                fields = (("class", "device"), ("msg", "reading %s: %s" % (key, e)))
                node._say("mapping", "error", fields)
                return
            got.append(None)
        except UnicodeError:
            node._say("mapping", "error", (("class", "device"), ("msg", key + " is not UTF-8")))
            return
    user_id, secret = got
    if user_id is None and secret is None:
        return
    if user_id is None or secret is None:
        # Half a request (a power cut between the two erases after an acknowledgement):
        # useless alone, so cleaned up.
        _erase(nvs)
        node._say("mapping", "skip", (("reason", "incomplete"),))
        return
    import json

    t0 = time.ticks_ms()
    msg = {"node_id": node.node_id, "user_id": user_id, "secret_key": secret, "reset": True}
    node.publish("user/mapping", json.dumps(msg), 1, "esp_user_node_mapping")
    _erase(nvs)
    node._say(
        "mapping", "ok", (("ms", time.ticks_diff(time.ticks_ms(), t0)), ("user_id", user_id))
    )


def _erase(nvs):
    for key in ("secret_key", "user_id"):
        try:
            nvs.erase_key(key)
        except OSError as e:
            if _errno(e) != _NOT_FOUND:
                raise
