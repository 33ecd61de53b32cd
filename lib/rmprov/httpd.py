"""The protocomm HTTP transport, device side: POST /<endpoint>, one session, bounded requests."""

# What esp-rainmaker-cli's transport_http (and the phone apps on SoftAP) expect, as ESP-IDF's
# protocomm_httpd.c does it (components/protocomm/src/transports/protocomm_httpd.c, v5.x):
# - every call is POST /<endpoint> with a body of raw bytes; the reply body likewise;
# - a request whose Cookie is "session=<id>" of the current session continues it; so does a
#   request without any Cookie on the connection that started it. Anything else starts a new
#   session (the old one is closed) and its reply sets the cookie (Set-Cookie: session=<id>,
#   a random 32-bit id);
# - "proto-ver" answers the version text in plain; "prov-session" is the security handshake;
#   every other endpoint's request is decrypted by the session, given to its handler, and the
#   handler's reply encrypted (security 1 refuses both until its handshake is done);
# - bodies must have a Content-Length from 1 to 4096 bytes (MAX_REQ_BODY_LEN);
# - one connection at a time (max_open_sockets = 1 with LRU purge): a new connection closes
#   the one being served.
# Ours, not protocomm's: a handshake the session refuses (a wrong pop fails security 1's
# command 1) shuts prov-session for a while: 1 s after the first refusal, doubling with each
# one after it up to 32 s, answered 429 meanwhile; a completed handshake resets it. A pop of
# 8 hex digits then takes years to guess.
# A request that fails (bad HTTP, unknown endpoint, over a limit, a handler or session error,
# a peer too slow) gets an error status when one can still be sent, and its connection is
# closed; the server carries on, its state unchanged but for the session's own rules.
# Heap per request is bounded by the limits: a head of at most _HEAD bytes, a body of at most
# max_body bytes.

import select
import socket
import sys
import time

from micropython import const

from rmprov import session
from rmprov.errors import SecurityError

_HEAD = const(1024)  # request line and headers, bytes
_PENALTY_MS = const(1000)  # prov-session shut after the first refused handshake
_PENALTY_MAX_MS = const(32000)
_IDLE_MS = const(30000)  # an idle keep-alive connection is closed after this
_BY_FD = sys.implementation.name != "micropython"  # CPython's poll reports file descriptors


def _ms():
    return time.ticks_ms()


def _since(t):
    return time.ticks_diff(time.ticks_ms(), t)


if not hasattr(time, "ticks_ms"):  # CPython, for host checks

    def _ms():
        return int(time.monotonic() * 1000)  # type: ignore[attr-defined]

    def _since(t):
        return _ms() - t


class _Refuse(Exception):
    # An HTTP error status to answer with, then close.
    def __init__(self, status, reason):
        super().__init__(reason)
        self.status = status


class Server:
    # Server(handlers, security=1, pop=b"", version=b"", port=80): handlers maps endpoint names
    # to callables taking the decrypted request bytes and returning the reply bytes; version
    # is the proto-ver text, or a callable returning it (asked at each request). random(n)
    # gives session ids and (through the session) key material: os.urandom by default, which
    # is a PRNG on an ESP32 until the radio is on.

    def __init__(
        self,
        handlers,
        security=1,
        pop=b"",
        version=b"",
        port=80,
        host="0.0.0.0",
        max_body=4096,
        timeout_s=5,
        random=None,
    ):
        if random is None:
            import os

            random = os.urandom
        self.handlers = handlers
        self.security = security
        self.pop = pop
        if isinstance(version, str):
            version = version.encode()
        self.version = version if callable(version) else bytes(version)
        self.port = port
        self.host = host
        self.max_body = max_body
        self.timeout_s = timeout_s
        self._random = random
        self._listener = None
        self._poll = select.poll()
        self._conn = None
        self._last = 0
        self.session = None  # the current security session
        self._sid = None  # its cookie id
        self._owner = None  # the connection that started it
        self._refusals = 0  # handshakes refused since the last one that completed
        self._shut_at = 0  # when the last one was refused (ticks ms) ...
        self._shut_ms = 0  # ... and for how long prov-session answers 429 since
        # requests answered, requests refused, sessions started, connections accepted
        self.stats = [0, 0, 0, 0]
        self.last_error = None  # why the last refused request was refused (text)

    def start(self):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(socket.getaddrinfo(self.host, self.port)[0][-1])
            s.listen(2)
        except OSError:
            s.close()
            raise
        self._listener = s
        self._poll.register(s, select.POLLIN)

    def close(self):
        self._drop()
        listener = self._listener
        if listener is not None:
            self._listener = None
            self._poll.unregister(listener)
            listener.close()

    def poll(self, timeout_ms):
        # Wait up to timeout_ms for a connection or a request and serve it.
        listener = self._listener
        if listener is None:
            raise OSError("httpd: not started")
        for item in self._poll.poll(timeout_ms):
            obj = item[0]
            conn = self._conn
            if self._is(obj, listener):
                self._accept(listener)
            elif conn is not None and self._is(obj, conn):
                if item[1] & (select.POLLHUP | select.POLLERR):
                    self._drop()
                else:
                    self._serve(conn)
        if self._conn is not None and _since(self._last) > _IDLE_MS:
            self._drop()

    def serve(self, done=None, step_ms=200):
        # Serve until done() is true (forever when done is None).
        while done is None or not done():
            self.poll(step_ms)

    def _is(self, obj, sock):
        return obj == sock.fileno() if _BY_FD else obj is sock

    def _accept(self, listener):
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        self._drop()  # one connection at a time: the newest wins
        conn.settimeout(self.timeout_s)
        self._conn = conn
        self._last = _ms()
        self._poll.register(conn, select.POLLIN)
        self.stats[3] += 1

    def _drop(self):
        conn = self._conn
        if conn is None:
            return
        self._conn = None
        try:
            self._poll.unregister(conn)
        except (OSError, ValueError, KeyError):
            pass
        try:
            conn.close()
        except OSError:
            pass
        if self._owner is conn:
            self._owner = None  # as protocomm forgets the socket of a closed connection

    def _serve(self, conn):
        # One request on conn. Any failure ends with an error status (when it can still be
        # sent) and a closed connection, never an exception out of the server: a handler bug
        # or a hostile client must not stop provisioning.
        self._last = _ms()
        try:
            head = _read_head(conn)
            if head is None:
                self._drop()  # the client closed the connection
                return
            endpoint, length, cookie, close = _parse_head(head, self.max_body)
            body = _read_body(conn, length)
            reply, new_sid = self._dispatch(conn, endpoint, body, cookie)
        except _Refuse as e:
            self._refused(conn, e.status, e)
            return
        except Exception as e:  # a session or handler refusal, a timeout, a reset, no memory
            self._refused(conn, 500, e)
            return
        self.stats[0] += 1
        self._reply(conn, 200, reply, new_sid, close)

    def _refused(self, conn, status, e):
        self.stats[1] += 1
        self.last_error = "%d %s: %s" % (status, type(e).__name__, e)
        self._reply(conn, status, b"", None, True)

    def _dispatch(self, conn, endpoint, body, cookie):
        handler = None
        if endpoint == "prov-session":
            if self._refusals and _since(self._shut_at) < self._shut_ms:
                raise _Refuse(429, "handshake refused recently; try again later")
        elif endpoint != "proto-ver":
            handler = self.handlers.get(endpoint)
            if handler is None:
                raise _Refuse(404, "no endpoint")
        new_sid = None
        if cookie is not None:
            same = self._sid is not None and cookie == self._sid
            if same:
                self._owner = None  # the client sends cookies: the socket no longer counts
        else:
            same = self._sid is not None and conn is self._owner
        if not same:
            self.session = None
            self._sid = int.from_bytes(self._random(4), "big")
            self._owner = conn
            self.session = session.new(self.security, self.pop, self._random)
            self.stats[2] += 1
            new_sid = self._sid
        if endpoint == "proto-ver":
            version = self.version
            return (version() if callable(version) else version), new_sid
        s = self.session
        if s is None:
            raise _Refuse(500, "no session")
        if handler is None:
            try:
                reply = s.handle(body)
            except SecurityError:
                self._refusals += 1
                self._shut_ms = min(_PENALTY_MS << min(self._refusals - 1, 5), _PENALTY_MAX_MS)
                self._shut_at = _ms()
                raise
            if s.established:
                self._refusals = 0
            return reply, new_sid
        return s.encrypt(handler(s.decrypt(body))), new_sid

    def _reply(self, conn, status, body, sid, close):
        head = "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n" % (
            status,
            "OK" if status == 200 else "Error",
            len(body),
        )
        if sid is not None:
            head += "Set-Cookie: session=%d\r\n" % sid
        if close:
            head += "Connection: close\r\n"
        try:
            conn.sendall(head.encode() + b"\r\n" + body)
        except OSError:
            close = True
        if close:
            if status != 200:
                _linger(conn)
            self._drop()


def _read_head(conn):
    # The request line and headers (up to the blank line), at most _HEAD bytes; None when the
    # connection closed before a request began. One byte at a time: recv() may not stop at the
    # blank line, and the body must stay in the socket.
    buf = bytearray()
    while not buf.endswith(b"\r\n\r\n"):
        if len(buf) >= _HEAD:
            raise _Refuse(431, "head too long")
        b = conn.recv(1)
        if not b:
            if buf:
                raise _Refuse(400, "request cut short")
            return None
        buf += b
    return bytes(buf)


def _parse_head(head, max_body):
    # (endpoint, content length, session cookie id or None, close after reply)
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ")
    if len(parts) != 3 or not parts[2].startswith(b"HTTP/1."):
        raise _Refuse(400, "bad request line")
    if parts[0] != b"POST":
        raise _Refuse(405, "POST only")
    path = parts[1]
    if not path.startswith(b"/") or len(path) > 64:
        raise _Refuse(404, "bad path")
    try:
        endpoint = path[1:].decode()
    except UnicodeError:
        raise _Refuse(404, "bad path") from None
    length = None
    cookie = None
    close = parts[2] == b"HTTP/1.0"
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(b":")
        if not sep:
            raise _Refuse(400, "bad header")
        name = name.strip().lower()
        value = value.strip()
        if name == b"content-length":
            if length is not None or not value.isdigit() or len(value) > 9:
                raise _Refuse(400, "bad length")
            length = int(value)
        elif name == b"transfer-encoding":
            raise _Refuse(411, "length required")
        elif name == b"cookie":
            cookie = _session_cookie(value)
        elif name == b"connection":
            close = value.lower() == b"close"
    if not length:
        raise _Refuse(411, "length required")
    if length > max_body:
        raise _Refuse(413, "body too large")
    return endpoint, length, cookie, close


def _session_cookie(value):
    # The id of "session=<id>" among the cookies, or -1 when there is none (a Cookie header
    # that matches no session).
    for item in value.split(b";"):
        name, _, v = item.strip().partition(b"=")
        if name == b"session" and v.isdigit() and len(v) <= 10:
            return int(v)
    return -1


def _read_body(conn, length):
    body = bytearray(length)
    got = 0
    while got < length:
        chunk = conn.recv(min(length - got, 512))
        if not chunk:
            raise _Refuse(400, "body cut short")
        body[got : got + len(chunk)] = chunk
        got += len(chunk)
    return bytes(body)


def _linger(conn):
    # Read what the client still sends (at most 4 KB, 50 ms of quiet ends it) before closing
    # after an error: closing a socket with unread input makes the stack send a reset, which
    # can discard the error reply before the client reads it.
    try:
        conn.settimeout(0.05)
        for _ in range(8):
            if not conn.recv(512):
                break
    except OSError:
        pass
