"""Why a connection attempt or a session failed: the NodeError for what was raised underneath."""

# Loaded only when something failed, and dropped again (rmnode.node's _fail).

from micropython import const

from rmnode import NodeError, Rejected, Unreachable, Untrusted

_ENOMEM = const(12)
_SSL_ALLOC_FAILED = const(-32512)  # MBEDTLS_ERR_SSL_ALLOC_FAILED (-0x7F00)


def _errno(e):
    return e.args[0] if e.args and isinstance(e.args[0], int) else 0


def _timeouts():
    # The errno values of a socket timeout on this port (lwIP's and Linux's differ).
    import errno

    return (errno.ETIMEDOUT, errno.EAGAIN)


def connect_error(e, phase, node):
    # The NodeError for exception e of an attempt that reached `phase` (see _Handshake).
    where = "%s:%d" % (node.host, node.port)
    kind = type(e).__name__
    if isinstance(e, MemoryError) or (
        isinstance(e, OSError) and _errno(e) in (_ENOMEM, _SSL_ALLOC_FAILED)
    ):
        err = NodeError("mqtt: not enough memory for the TLS session with %s: %r" % (where, e))
    elif phase == 0:
        err = Unreachable("mqtt: cannot reach %s: %r" % (where, e))
    elif phase == 1 and isinstance(e, OSError) and _errno(e) in _timeouts():
        err = Unreachable("mqtt: no TLS handshake with %s in time: %r" % (where, e))
    elif phase == 1 and isinstance(e, ValueError):
        err = Untrusted(
            "mqtt: the certificate of %s failed our check (mqtt_ca, host name, dates): %s"
            % (where, e)
        )
    elif phase == 1:
        err = Rejected(
            "mqtt: %s refused our certificate in the TLS handshake (another CA, expired or "
            "revoked?): %r" % (where, e)
        )
    elif kind == "IndexError":
        # umqtt.simple indexes the empty read of a connection closed instead of a CONNACK.
        err = Rejected(
            "mqtt: %s closed the connection without a CONNACK: it refused client id %s "
            "with this certificate (the id must be its CN) or the node's policy"
            % (where, node.node_id)
        )
    elif kind == "MQTTException":
        code = e.args[0] if e.args else 0
        cls = Unreachable if code == 3 else Rejected  # 3: server unavailable
        err = cls("mqtt: %s refused the connection: CONNACK return code %s" % (where, code))
    else:
        err = Unreachable("mqtt: no CONNACK from %s: %r" % (where, e))
    err.kind = kind
    return err


def lost_error(e, what):
    # The NodeError of an exception during the session (`what` was going on).
    if isinstance(e, NodeError):
        return e
    err = Unreachable("mqtt: connection lost%s: %r" % (" " + what if what else "", e))
    err.kind = type(e).__name__
    return err
