"""A claimed node in use: its MQTT connection over mutual TLS, its node config, its user."""

# What ESP RainMaker's firmware does once a node has its certificate (esp-rainmaker v1.16.0,
# components/esp_rainmaker/src/core/esp_rmaker_core.c, esp_rmaker_post_mqtt_connect_task): it
# connects to the MQTT host with that certificate, client id = node id, reports the node config,
# and, when a user was given in provisioning (esp_rmaker_user_mapping.c), publishes the user-node
# mapping request once the config is reported. This package does the same with the frozen
# umqtt.simple over the firmware's tls module. The claim's library (rmclaim) is dropped from the
# heap before the connection opens; only its package stays, which holds the NVS handles.

__version__ = "0.1.0"

# CONFIG_ESP_RMAKER_MQTT_HOST's default (esp-rainmaker v1.16.0 Kconfig.projbuild), used when the
# claim stored no mqtt_host (esp_rmaker_client_data.c, esp_rmaker_get_mqtt_host).
DEFAULT_HOST = "mqtt.rainmaker.espressif.com"


class NodeError(Exception):
    # A connection attempt or session that failed. cls: the error class the firmware's status
    # line and LED show (unreachable, rejected, config, device); retryable: whether trying again
    # later may help on its own; kind: the class name of the exception underneath (what
    # umqtt.simple or the tls module raised), "" when none.
    cls = "device"
    retryable = True
    kind = ""


class Unreachable(NodeError):
    # No broker to talk to: no address, no TCP connection, no answer in time, or the connection
    # dropped during the session.
    cls = "unreachable"


class Rejected(NodeError):
    # The broker refused us: our certificate in the TLS handshake (another CA, expired,
    # revoked), or our client id or policy after it (closed without a CONNACK, as AWS IoT
    # does). Retried: a cloud that registers certificates on first use accepts a later attempt.
    cls = "rejected"


class Untrusted(NodeError):
    # The broker's certificate failed our check against mqtt_ca (another CA, host name, dates):
    # only a config change (or a clock fix) helps.
    cls = "config"
    retryable = False


class NotReady(NodeError):
    # Nothing to connect with: no stored identity, no mqtt_ca, or one the tls module refuses.
    cls = "config"
    retryable = False


def pem_blocks(text):
    """Every ``-----BEGIN <label>-----`` block of ``text``: a list of (label, DER bytes)."""
    import binascii

    out = []  # type: list
    pos = 0
    while True:
        i = text.find("-----BEGIN ", pos)
        if i < 0:
            return out
        j = text.find("-----", i + 11)
        label = text[i + 11 : j]
        end = text.find("-----END " + label + "-----", j)
        if j < 0 or end < 0:
            raise ValueError("PEM block %s has no end line" % label)
        out.append((label, binascii.a2b_base64(text[j + 5 : end])))
        pos = end + 14 + len(label)


def drop_claim_library():
    """Drop every rmclaim module but the package and its exceptions, and collect: the claim's
    code and data leave the heap. The package stays: it holds the NVS handles (one per
    namespace per boot: ESP-IDF's nvs_open is never undone by MicroPython's esp32.NVS)."""
    import gc
    import sys

    import rmclaim

    for name in list(sys.modules):
        if name.startswith("rmclaim.") and name != "rmclaim.errors":
            del sys.modules[name]
            attr = name[8:]
            if attr in rmclaim.__dict__:
                delattr(rmclaim, attr)
    gc.collect()


def _platform():
    # The chip family RainMaker calls the platform (CONFIG_IDF_TARGET), from rmclaim's table.
    import os

    from rmclaim import UnsupportedChip, chip

    try:
        return chip.lookup(os.uname().machine).platform
    except UnsupportedChip:
        return "unknown"


def start(cfg=None, report=None, led=None):
    """Connect this claimed board to its MQTT broker and announce it; -> the connected Node.

    Reads the stored identity (rmclaim.load_credentials), drops the claim's library from the
    heap, makes a TLS context that presents the stored key and certificate and trusts only
    ``mqtt_ca``, and connects (client id = node id) to ``mqtt_host`` (the config's, else the
    stored one, else RainMaker's default) on ``mqtt_port``, retrying with rmclaim.backoff's
    policy (``max_attempts`` rounds, 0 = forever). Each connection publishes the node config and,
    when a user id and secret key wait in NVS (namespace ``rmclaim_map``), the user-node mapping
    request, erased once the broker acknowledged it.

    Args:
        cfg: the config as a dict (rmclaim.config keys), or None to read /rmclaim.json.
        report: None, or ``report(step, outcome, fields)`` for status lines (steps mqtt,
            nodeconfig, mapping, backoff, params; fields a tuple of (key, value)).
        led: None, or the firmware's status LED (``state(name)``, ``set(on)``,
            ``error_wait(cls, seconds)``).

    Raises:
        NodeError: not claimed, no mqtt_ca (NotReady), or the last of ``max_attempts`` rounds
            failed (its class says why).
    """
    import gc

    import rmclaim

    if cfg is None or isinstance(cfg, str):
        from rmclaim import config

        cfg = config.as_dict(config.load(cfg))
    if cfg.get("mqtt_ca") is None:
        raise NotReady("mqtt: no mqtt_ca in the config: no broker can be trusted")
    creds = rmclaim.load_credentials()
    if creds is None:
        raise NotReady("mqtt: this board has no stored identity; claim it first")
    node_id = creds.node_id
    host = cfg.get("mqtt_host") or creds.mqtt_host or DEFAULT_HOST
    key = cert = None
    for label, der in pem_blocks(creds.key_pem) + pem_blocks(creds.cert_pem):
        if key is None and label.endswith("PRIVATE KEY"):
            key = der
        elif cert is None and label == "CERTIFICATE":
            cert = der
    del creds
    platform = _platform()
    drop_claim_library()
    from rmnode.node import Node

    node = Node(
        node_id,
        host,
        cfg.get("mqtt_port", 8883),
        cfg.get("mqtt_keepalive_s", 120),
        report,
        led,
    )
    node.backoff = (cfg.get("backoff_base_s", 2), cfg.get("backoff_cap_s", 300))
    node.max_rounds = cfg.get("max_attempts", 0)
    node.timeout_s = cfg.get("timeout_s", 15)
    node.info["platform"] = platform
    node.use_tls(cfg["mqtt_ca"], cert, key)
    del cfg, cert, key
    gc.collect()
    node.online()
    return node
