"""A node's MQTT session: connect, node config, user mapping, params, keep-alive, reconnect."""

# Topics and payloads are ESP RainMaker's (esp-rainmaker v1.16.0, components/esp_rainmaker/src/):
# - core/esp_rmaker_mqtt_topics.h: node/<node_id>/ + "config", "user/mapping", "params/local",
#   "params/local/init", "params/remote"; with Basic Ingest (Kconfig
#   ESP_RMAKER_MQTT_USE_BASIC_INGEST_TOPICS) a node publishes to
#   $aws/rules/<rule>/node/<node_id>/<suffix> instead (mqtt/esp_rmaker_mqtt.c,
#   esp_rmaker_create_mqtt_topic), with the rules esp_node_config, esp_user_node_mapping,
#   esp_set_params, esp_init_params; subscriptions always use the plain topics.
# - the node config (rmnode.model) goes out with QoS 1 on every MQTT connection
#   (core/esp_rmaker_core.c, esp_rmaker_post_mqtt_connect_task) and again on
#   esp_rmaker_report_node_details(); then the user-node mapping request, if any
#   (rmnode.mapping).
# - core/esp_rmaker_param.c: params/remote subscribed with QoS 1, values reported with QoS 1.
# Parts needed now and then live in modules of their own, loaded for the occasion and dropped
# again (a board's heap is small): rmnode.model (the config), rmnode.mapping, rmnode.fail.
#
# umqtt.simple (frozen, micropython-lib 1.4.0 on v1.23-v1.24 ... 1.8.0 on the v1.29 preview)
# has traps this module steps around: packet ids never wrap (a QoS 1 publish after id 65535
# waits for an acknowledgement that never comes: reset before); connect() before 1.8.0 never
# closes the previous socket (closed here first); a failed handshake leaves the plain socket
# in .sock (closed here); connect(timeout=) exists from 1.6.0 only; wait_msg() returns None
# for a PINGRESP as for no data (any data read counts as a sign of life here); the socket is
# blocking again after each wait_msg() (poll() waits with select.poll instead).

import time

from micropython import const

try:
    from typing import Any  # noqa: F401 (type comments only; no typing module on a board)
except ImportError:
    pass

from rmnode import NodeError, Unreachable

_POLLIN = const(1)


def _drop(name):
    # Drop module rmnode.<name> (imported for an occasion) from the heap.
    import sys

    import rmnode

    sys.modules.pop("rmnode." + name, None)
    if name in rmnode.__dict__:
        delattr(rmnode, name)


def _fail(how, *args):
    # rmnode.fail.<how>(*args): the NodeError of a failure, its module dropped again.
    from rmnode import fail

    try:
        return getattr(fail, how)(*args)
    finally:
        _drop("fail")


def _umqtt_version():
    # (major, minor) of the frozen umqtt.simple (its __version__, which the frozen manifest
    # adds); 1.4 when it says nothing.
    import umqtt.simple

    parts = getattr(umqtt.simple, "__version__", "1.4.0").split(".")
    return int(parts[0]), int(parts[1])


class _Handshake:
    # What umqtt.simple is given as its `ssl`: it calls wrap_socket(sock, server_hostname=
    # host) once the TCP connection is up (1.4.0-1.8.0), and this records how far a connection
    # attempt got, so its failure can be told apart: before (unreachable), in the handshake
    # (refused or untrusted certificate) or after (no CONNACK). It also gives the plain socket
    # a timeout (1.4.0 has none), which the handshake and the CONNACK read go by, and keeps it,
    # to give each later wait for an acknowledgement one too (umqtt.simple makes its socket
    # blocking again after each read). The socket returned is the tls module's own.
    def __init__(self, ctx, timeout_s):
        self.ctx = ctx
        self.timeout_s = timeout_s
        self.phase = 0
        self.raw = None

    def wrap_socket(self, sock, server_hostname=None):
        self.phase = 1
        self.raw = sock
        sock.settimeout(self.timeout_s)
        # No Nagle: umqtt.simple writes a packet in pieces (header, topic length, topic,
        # packet id, payload: a TLS record each), and with Nagle on every piece after the first
        # waits for the broker's delayed ACK (tens of ms a message). MicroPython's esp32 socket
        # takes TCP_NODELAY (ports/esp32/modsocket.c, v1.23.0-v1.28.0: setsockopt case
        # TCP_NODELAY, constants IPPROTO_TCP and TCP_NODELAY); lwIP and Linux both number them
        # 6 and 1, for a socket module without the names.
        import socket

        try:
            sock.setsockopt(
                getattr(socket, "IPPROTO_TCP", 6), getattr(socket, "TCP_NODELAY", 1), 1
            )
        except (OSError, AttributeError):
            pass
        s = self.ctx.wrap_socket(sock, server_hostname=server_hostname)
        self.phase = 2
        return s

    def arm(self):
        # A timeout for the next blocking wait (an acknowledgement).
        if self.raw is not None:
            self.raw.settimeout(self.timeout_s)


class Node:
    """One node's MQTT session with the broker, kept up: see rmnode.start() to make one.

    Attributes an app may set: ``info`` (name, fw_version, type, model, project_name,
    platform of the node config), ``basic_ingest`` (publish to AWS Basic Ingest topics, as the
    firmware does by default), ``backoff`` ((base, cap) seconds), ``max_rounds`` (0: forever),
    ``timeout_s`` (connect, from umqtt.simple 1.6.0). Read: ``node_id``, ``host``, ``port``,
    ``connects`` (sessions opened), ``connected``.
    """

    def __init__(self, node_id, host, port=8883, keepalive_s=120, report=None, led=None):
        import os

        self.node_id = node_id
        self.host = host
        self.port = port
        self.keepalive_s = keepalive_s
        self.report = report
        self.led = led
        self.backoff = (2, 300)
        self.max_rounds = 0
        self.timeout_s = 15
        self.basic_ingest = False
        release = os.uname().release
        self.info = {
            "name": "MicroPython node",
            "fw_version": release,
            "type": "MicroPython",
            "model": "rmnode",
            "project_name": "rmnode",
            "platform": "",
        }
        self.devices = []
        self.connects = 0
        self._ctx = None
        self._c = None  # type: Any
        self._hs = None  # type: Any
        self._poll = None  # type: Any
        self._lost = None
        self._on_params = None
        self._on_message = None
        self._remote = ("node/%s/params/remote" % node_id).encode()
        self._last_tx = self._last_rx = self._ping_at = time.ticks_ms()
        self._pinging = False

    # --- model --------------------------------------------------------------------------------

    def add_device(self, name, type=None, primary=None):
        """A new rmnode.model.Device in the node config (report_config() sends the config
        again)."""
        from rmnode import model  # kept loaded from now on

        d = model.Device(name, type, primary)
        self.devices.append(d)
        return d

    def config(self):
        """The node config as JSON text."""
        from rmnode import model

        try:
            return model.config_json(self)
        finally:
            if not self.devices:
                _drop("model")

    def topic(self, suffix, rule=None):
        if rule and self.basic_ingest:
            return "$aws/rules/%s/node/%s/%s" % (rule, self.node_id, suffix)
        return "node/%s/%s" % (self.node_id, suffix)

    # --- status -------------------------------------------------------------------------------

    @property
    def connected(self):
        return self._c is not None and self._lost is None

    def _say(self, step, outcome, fields=()):
        if self.report is not None:
            self.report(step, outcome, fields)

    # --- connection ---------------------------------------------------------------------------

    def use_tls(self, ctx):
        """The tls.SSLContext the sessions use (rmnode.setup.context makes it)."""
        self._ctx = ctx

    def _close(self):
        # Drop the session's socket (before 1.8.0 umqtt.simple never closes an old one, and a
        # failed handshake leaves the plain socket behind).
        c = self._c
        self._c = self._poll = None
        if c is not None and c.sock is not None:
            try:
                c.sock.close()
            except OSError:
                pass
            c.sock = None

    def _session(self):
        # One attempt: connect, then announce (config, mapping, subscriptions). NodeError.
        import gc

        from umqtt.simple import MQTTClient

        self._close()
        self._lost = None
        gc.collect()  # any TLS socket nothing refers to any more is freed now, not later
        if self.led is not None:
            self.led.state("connecting")
            self.led.set(True)
        t0 = time.ticks_ms()
        hs = self._hs = _Handshake(self._ctx, self.timeout_s)
        c = MQTTClient(self.node_id, self.host, self.port, keepalive=self.keepalive_s, ssl=hs)
        c.set_callback(self._dispatch)
        self._c = c
        try:
            if _umqtt_version() >= (1, 6):
                c.connect(timeout=self.timeout_s)
            else:
                c.connect()
        except Exception as e:  # what umqtt.simple, socket and tls raise (never Ctrl-C)
            raise _fail("connect_error", e, hs.phase, self) from e
        self._last_tx = self._last_rx = time.ticks_ms()
        self._pinging = False
        self.connects += 1
        if self.led is not None:
            self.led.set(False)
        self._say(
            "mqtt",
            "ok",
            (
                ("ms", time.ticks_diff(time.ticks_ms(), t0)),
                ("host", self.host),
                ("port", self.port),
                ("node_id", self.node_id),
                ("connects", self.connects),
            ),
        )
        import select

        self._poll = select.poll()
        self._poll.register(c.sock, _POLLIN)
        self.report_config()
        from rmnode import mapping

        try:
            mapping.announce(self)
        finally:
            _drop("mapping")
        if self._on_params is not None:
            self._subscribe(self._remote)

    def online(self, err=None):
        """Connect, retrying with rmclaim.backoff's policy until a session is up; err: the
        error that ended the last session (reported, and waited for, first).

        Raises:
            NodeError: max_rounds rounds failed (the last one's error).
        """
        n = 0
        while True:
            if err is not None:
                n += 1
                self._close()
                fields = [("class", err.cls), ("kind", err.kind), ("msg", str(err))]
                if not err.kind:
                    del fields[1]
                self._say("mqtt", "error", fields)
                if self.max_rounds and n >= self.max_rounds:
                    self._say("mqtt", "fail", (("class", err.cls), ("rounds", n)))
                    if self.led is not None:
                        self.led.error_wait(err.cls, 0)
                    raise err
                self._wait(n, err)
            try:
                self._session()
                return
            except Exception as e:  # NodeError, or what a refused SUBSCRIBE raises
                err = _fail("lost_error", e, "announcing the node")

    def _wait(self, n, err):
        # The one retry policy (rmclaim.backoff), loaded for the call and dropped again.
        import sys

        from rmclaim import backoff

        try:
            s = backoff.delay_s(self.backoff[0], self.backoff[1], n, None, not err.retryable)
        finally:
            sys.modules.pop("rmclaim.backoff", None)
            import rmclaim

            if "backoff" in rmclaim.__dict__:
                delattr(rmclaim, "backoff")
        fields = (("s", s), ("class", err.cls), ("round", n), ("retryable", err.retryable))
        self._say("backoff", "wait", fields)
        if self.led is not None:
            self.led.error_wait(err.cls, s)
        else:
            time.sleep(s)

    def disconnect(self):
        """Say goodbye to the broker (DISCONNECT) and close; poll() would connect again."""
        c = self._c
        if c is not None and self._lost is None:
            try:
                c.disconnect()
            except OSError:
                pass
        self._close()

    # --- traffic ------------------------------------------------------------------------------

    def publish(self, suffix, payload, qos=1, rule=None):
        """Publish to node/<node_id>/<suffix> (a Basic Ingest topic with `rule` when
        basic_ingest is on); QoS 1 returns once the broker acknowledged it.

        Raises:
            NodeError: not connected, or the connection failed (poll() reconnects).
        """
        c = self._c
        if c is None or self._lost is not None:
            raise self._lost or Unreachable("mqtt: not connected")
        if c.pid >= 65535:
            c.pid = 0  # umqtt.simple never wraps: the next id would go out as 0 and never match
        if qos:
            self._hs.arm()
        try:
            c.publish(self.topic(suffix, rule), payload, False, qos)
        except Exception as e:
            self._lost = _fail("lost_error", e, "publishing to %s" % suffix)
            raise self._lost from e
        self._last_tx = time.ticks_ms()
        if qos:
            self._last_rx = self._last_tx

    def report_config(self):
        """Publish the node config (QoS 1), as on every connection."""
        t0 = time.ticks_ms()
        text = self.config()
        self.publish("config", text, 1, "esp_node_config")
        fields = (
            ("ms", time.ticks_diff(time.ticks_ms(), t0)),
            ("topic", self.topic("config", "esp_node_config")),
            ("bytes", len(text)),
        )
        self._say("nodeconfig", "ok", fields)

    def report_params(self, values=None, init=False):
        """Publish param values ({device: {param: value}}; None: every device's ``values``)
        to params/local (params/local/init with init=True), QoS 1. -> True once acknowledged,
        False when the connection failed (poll() reconnects)."""
        import json

        if values is None:
            values = {}
            for d in self.devices:
                values[d.name] = d.values
        suffix, rule = (
            ("params/local/init", "esp_init_params")
            if init
            else ("params/local", "esp_set_params")
        )
        try:
            self.publish(suffix, json.dumps(values), 1, rule)
            return True
        except NodeError:
            return False

    def on_params(self, callback):
        """callback(params) for each message on node/<node_id>/params/remote (a dict of
        {device: {param: value}}); subscribed now and on every connection."""
        first = self._on_params is None
        self._on_params = callback
        if first and self.connected:
            try:
                self._subscribe(self._remote)
            except NodeError:
                pass  # poll() reconnects, and subscribes then

    def on_message(self, callback):
        """callback(topic, payload) for any other message the node receives (bytes)."""
        self._on_message = callback

    def _subscribe(self, topic):
        c = self._c
        if c.pid >= 65535:
            c.pid = 0
        self._hs.arm()
        try:
            c.subscribe(topic, 1)
        except Exception as e:
            self._lost = _fail("lost_error", e, "subscribing to %s" % topic.decode())
            raise self._lost from e
        self._last_tx = self._last_rx = time.ticks_ms()

    def _dispatch(self, topic, msg):
        self._last_rx = time.ticks_ms()
        try:
            if topic == self._remote and self._on_params is not None:
                import json

                self._on_params(json.loads(msg))
            elif self._on_message is not None:
                self._on_message(topic, msg)
        except Exception as e:  # the app's callback, or a message that is not JSON
            self._say(
                "params", "error", (("class", "device"), ("msg", "%s: %s" % (type(e).__name__, e)))
            )

    # --- keeping it up ------------------------------------------------------------------------

    def poll(self, ms=0):
        """Serve the connection for `ms` milliseconds: messages to their callbacks, keep-alive
        pings (every keepalive_s / 2 without traffic; a ping unanswered for keepalive_s / 2
        means the link is dead), and, when the connection is lost, a reconnect with backoff
        (which may take longer than `ms`).

        Raises:
            NodeError: max_rounds reconnect rounds failed.
        """
        deadline = time.ticks_add(time.ticks_ms(), ms)
        half = self.keepalive_s * 500
        while True:
            if self._c is None or self._lost is not None:
                self.online(self._lost or Unreachable("mqtt: not connected"))
            c = self._c
            try:
                idle = 0
                while idle < 2:  # a PINGRESP reads as None too: stop at a second None
                    idle = idle + 1 if c.check_msg() is None else 0
                now = time.ticks_ms()
                if self._pinging and time.ticks_diff(self._last_rx, self._ping_at) >= 0:
                    self._pinging = False  # heard from the broker since the ping
                if self._pinging:
                    due = half - time.ticks_diff(now, self._ping_at)
                    if due <= 0:
                        raise Unreachable(
                            "mqtt: no answer from %s:%d within %d s of a ping"
                            % (self.host, self.port, half // 1000)
                        )
                else:
                    since_tx = time.ticks_diff(now, self._last_tx)
                    since_rx = time.ticks_diff(now, self._last_rx)
                    due = half - (since_tx if since_tx > since_rx else since_rx)
                    if due <= 0:
                        c.ping()
                        self._pinging = True
                        self._ping_at = self._last_tx = now
                        due = half
                left = time.ticks_diff(deadline, now)
                if left <= 0:
                    return
                if self._poll.poll(left if left < due else due):
                    self._last_rx = time.ticks_ms()
            except Exception as e:  # the connection failed (not Ctrl-C)
                self._lost = _fail("lost_error", e, "")

    def run(self):
        """Serve the connection forever (see poll())."""
        while True:
            self.poll(60000)
