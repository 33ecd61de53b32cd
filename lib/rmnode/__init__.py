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
        cfg: the config: a path (None: /rmclaim.json), read here and dropped once its values
            are out, or a dict (rmclaim.config keys).
        report: None, or ``report(step, outcome, fields)`` for status lines (steps mqtt,
            nodeconfig, mapping, backoff, params; fields a tuple of (key, value)).
        led: None, or the firmware's status LED (``state(name)``, ``set(on)``,
            ``error_wait(cls, seconds)``).

    Raises:
        NodeError: not claimed, no mqtt_ca (NotReady), or the last of ``max_attempts`` rounds
            failed (its class says why).
    """
    import gc
    import sys

    from rmnode import setup

    try:
        node = setup.prepare(cfg, report, led)
    finally:
        sys.modules.pop("rmnode.setup", None)
        globals().pop("setup", None)
    del setup
    gc.collect()  # the setup's code and the identity's text leave before the session opens
    node.online()
    return node
