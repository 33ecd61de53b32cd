"""umqtt.simple stand-in: the MQTT client stock ESP32 firmware freezes, for the Unix port."""

# Released firmware freezes micropython-lib's umqtt.simple (ports/esp32/boards/manifest.py,
# `require("umqtt.simple")`, unchanged v1.23.0-v1.28.0), at the micropython-lib pin of each tag:
#   v1.23.0 (50ed36fbeb), v1.24.x (68e3e07bc7)  1.4.0
#   v1.25.0 (5b496e944e), v1.26.x (34c4ee1647)  1.6.0: + ssl_params, connect(timeout=)
#   v1.27.0 (6ae440a8a1), v1.28.0 (8380c7bb8f)  1.7.0: + unsubscribe()
#   v1.29 preview (ee4bb8ff13)                  1.8.0: connect() first closes an old socket;
#                                               SUBSCRIBE's length as a variable-length int
# This module is written from what those sources do, not copied from them: the same bytes on
# the wire, the same socket calls in the same order (so the board's real `socket`/`tls` objects
# fail the same way), the same exceptions. The facts it keeps (file
# micropython/umqtt.simple/umqtt/simple.py at 8380c7bb8f unless said otherwise):
# - MQTT 3.1.1 only ("MQTT", level 4). Port 0 means 8883 with `ssl`, else 1883.
# - connect() (:65-115): socket.socket(), settimeout(timeout) (1.6.0+), getaddrinfo(server,
#   port)[0][-1], connect(); an SSLContext wraps with wrap_socket(sock, server_hostname=server)
#   (1.4.0 :67-68 too); ssl=True (1.6.0+) imports the frozen `ssl` module and calls
#   ssl.wrap_socket(sock, **ssl_params), which verifies nothing unless ssl_params say so.
#   self.sock is the plain socket until the wrap succeeds: a failed handshake leaves it open.
#   Before 1.8.0 a second connect() never closes the first socket (its TLS session stays
#   allocated until garbage collection).
# - The CONNACK is read with read(4) (:111-115): a connection closed instead gives b"" and
#   IndexError; another first byte is an AssertionError; a return code != 0 raises
#   MQTTException(code). connect() returns the session-present flag.
# - publish() (:124-157): the packet id counter is shared with subscribe() and never wraps: it
#   goes out truncated to 16 bits (struct), but QoS 1 waits for a PUBACK of the untruncated
#   value, so after 65535 ids it waits forever. QoS 2 sends the PUBLISH, then AssertionError.
# - A QoS 1 publish() and subscribe() read packets through wait_msg() until their ack: a
#   PUBLISH arriving meanwhile goes to the callback (TypeError if none is set); any other packet
#   type is returned unread, its bytes left in the stream.
# - wait_msg() (:195-226): read(1), then setblocking(True) (so check_msg()'s non-blocking mode,
#   and connect()'s timeout, end after the first packet); None (no data, non-blocking) returns
#   None; b"" (closed) raises OSError(-1); PINGRESP returns None; other types are returned, with
#   their bytes unread; a PUBLISH is read with one read() per field (a short TLS read is not
#   retried), passed to the callback, and a QoS 1 one acknowledged. ping() only sends PINGREQ.
# - A SUBACK of 0x80 raises MQTTException(0x80). Replies are checked with `assert`: frozen
#   modules are compiled without -O (tools/makemanifest.py, opt=None), so the asserts are live;
#   here they are explicit raises, whatever the Unix port's optimisation level.

import socket
import struct

import _boardsim

_fw = tuple(_boardsim.firmware().get("version", (1, 28, 0)))[:2]
_V = 4 if _fw < (1, 25) else 6 if _fw < (1, 27) else 7 if _fw < (1, 29) else 8
__version__ = "1.%d.0" % _V  # the frozen module's (manifestfile.py tagged_py_file adds it)
del _fw


class MQTTException(Exception):
    pass


def _put_len(buf, n):
    # Remaining Length (MQTT 3.1.1 section 2.2.3) into buf from index 1; returns the index of
    # its last byte.
    i = 1
    while n > 0x7F:
        buf[i] = n & 0x7F | 0x80
        n >>= 7
        i += 1
    buf[i] = n
    return i


class MQTTClient:
    if _V < 6:

        def __init__(
            self, client_id, server, port=0, user=None, password=None, keepalive=0, ssl=None
        ):
            self._setup(client_id, server, port, user, password, keepalive, ssl, None)

        def connect(self, clean_session=True):
            return self._connect(clean_session, None)

    else:

        def __init__(
            self,
            client_id,
            server,
            port=0,
            user=None,
            password=None,
            keepalive=0,
            ssl=None,
            ssl_params={},  # noqa: B006 (the upstream default, kept by reference)
        ):
            self._setup(client_id, server, port, user, password, keepalive, ssl, ssl_params)

        def connect(self, clean_session=True, timeout=None):
            return self._connect(clean_session, timeout)

    def _setup(self, client_id, server, port, user, password, keepalive, ssl, ssl_params):
        self.client_id = client_id
        self.server = server
        self.port = (8883 if ssl else 1883) if port == 0 else port
        self.ssl = ssl
        if _V >= 6:
            self.ssl_params = ssl_params
        self.user = user
        self.pswd = password
        self.keepalive = keepalive
        self.sock = None
        self.pid = 0
        self.cb = None
        self.lw_topic = None
        self.lw_msg = None
        self.lw_qos = 0
        self.lw_retain = False

    def set_callback(self, f):
        self.cb = f

    def set_last_will(self, topic, msg, retain=False, qos=0):
        if not 0 <= qos <= 2 or not topic:
            raise AssertionError
        self.lw_topic = topic
        self.lw_msg = msg
        self.lw_qos = qos
        self.lw_retain = retain

    def _send_str(self, s):
        self.sock.write(struct.pack("!H", len(s)))
        self.sock.write(s)

    def _connect(self, clean_session, timeout):
        if _V >= 8 and self.sock:
            self.sock.close()
        self.sock = socket.socket()
        if _V >= 6:
            self.sock.settimeout(timeout)
        self.sock.connect(socket.getaddrinfo(self.server, self.port)[0][-1])
        if _V >= 6 and self.ssl is True:
            import ssl

            self.sock = ssl.wrap_socket(self.sock, **self.ssl_params)
        elif self.ssl:
            self.sock = self.ssl.wrap_socket(self.sock, server_hostname=self.server)
        flags = clean_session << 1
        size = 12 + len(self.client_id)  # variable header (10) + client id
        if self.user:
            flags |= 0xC0  # a user name always comes with a password
            size += 4 + len(self.user) + len(self.pswd)
        keepalive = self.keepalive or 0
        if keepalive >= 65536:
            raise AssertionError
        if self.lw_topic:
            flags |= 0x04 | (self.lw_qos & 3) << 3 | self.lw_retain << 5
            size += 4 + len(self.lw_topic) + len(self.lw_msg)
        head = bytearray(5)
        head[0] = 0x10
        n = _put_len(head, size) + 1
        self.sock.write(head, n)
        # Protocol Name "MQTT", Protocol Level 4 (3.1.1), Connect Flags, Keep Alive.
        self.sock.write(b"\0\4MQTT\4" + bytes((flags, keepalive >> 8, keepalive & 0xFF)))
        self._send_str(self.client_id)
        if self.lw_topic:
            self._send_str(self.lw_topic)
            self._send_str(self.lw_msg)
        if self.user:
            self._send_str(self.user)
            self._send_str(self.pswd)
        ack = self.sock.read(4)
        if ack[0] != 0x20 or ack[1] != 2:
            raise AssertionError
        if ack[3]:
            raise MQTTException(ack[3])
        return ack[2] & 1

    def disconnect(self):
        self.sock.write(b"\xe0\0")
        self.sock.close()

    def ping(self):
        self.sock.write(b"\xc0\0")

    def publish(self, topic, msg, retain=False, qos=0):
        size = 2 + len(topic) + len(msg)
        if qos > 0:
            size += 2
        if size >= 2097152:  # at most three length bytes
            raise AssertionError
        head = bytearray(4)
        head[0] = 0x30 | qos << 1 | retain
        self.sock.write(head, _put_len(head, size) + 1)
        self._send_str(topic)
        if qos > 0:
            self.pid += 1
            pid = self.pid
            self.sock.write(struct.pack("!H", pid))
        self.sock.write(msg)
        if qos == 1:
            while True:
                if self.wait_msg() == 0x40:
                    if self.sock.read(1) != b"\x02":
                        raise AssertionError
                    got = self.sock.read(2)
                    if pid == got[0] << 8 | got[1]:
                        return
        elif qos == 2:
            raise AssertionError

    def _request(self, kind, topic, qos, ack, ack_len):
        # SUBSCRIBE (0x82) or UNSUBSCRIBE (0xA2), then wait for its ack (0x90 / 0xB0).
        self.pid += 1
        pid = self.pid
        size = 4 + len(topic) + (kind == 0x82)
        if _V >= 8:
            head = bytearray(5)
            head[0] = kind
            self.sock.write(head, _put_len(head, size) + 1)
            self.sock.write(struct.pack("!H", pid))
        else:
            self.sock.write(struct.pack("!BBH", kind, size, pid))  # one length byte
            pid &= 0xFFFF  # the ack is checked against the bytes sent
        self._send_str(topic)
        if kind == 0x82:
            self.sock.write(bytes((qos,)))
        while True:
            if self.wait_msg() == ack:
                got = self.sock.read(ack_len)
                if got[1] << 8 | got[2] != pid:
                    raise AssertionError
                if ack_len == 4 and got[3] == 0x80:
                    raise MQTTException(0x80)
                return

    def subscribe(self, topic, qos=0):
        if self.cb is None:
            raise AssertionError("Subscribe callback is not set")
        self._request(0x82, topic, qos, 0x90, 4)

    if _V >= 7:

        def unsubscribe(self, topic):
            self._request(0xA2, topic, 0, 0xB0, 3)

    def _recv_len(self):
        n = shift = 0
        while True:
            b = self.sock.read(1)[0]
            n |= (b & 0x7F) << shift
            if not b & 0x80:
                return n
            shift += 7

    def wait_msg(self):
        first = self.sock.read(1)
        self.sock.setblocking(True)
        if first is None:
            return None
        if first == b"":
            raise OSError(-1)
        if first == b"\xd0":  # PINGRESP
            if self.sock.read(1)[0]:
                raise AssertionError
            return None
        op = first[0]
        if op & 0xF0 != 0x30:
            return op
        size = self._recv_len()
        got = self.sock.read(2)
        n = got[0] << 8 | got[1]
        topic = self.sock.read(n)
        size -= n + 2
        if op & 6:
            got = self.sock.read(2)
            pid = got[0] << 8 | got[1]
            size -= 2
        msg = self.sock.read(size)
        self.cb(topic, msg)
        if op & 6 == 2:
            self.sock.write(struct.pack("!BBH", 0x40, 2, pid))
        elif op & 6 == 4:
            raise AssertionError
        return op

    def check_msg(self):
        self.sock.setblocking(False)
        return self.wait_msg()
