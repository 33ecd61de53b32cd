"""HTTP/1.1 over socket + tls: pinned CA, hostname check, deadline, capped replies, keep-alive."""

import gc
import select
import time

from micropython import const

from rmclaim.errors import ConfigError, MalformedReply, NetworkError, TLSError

# A reply body larger than this is refused, so a server can never fill the heap (the claiming
# service keeps replies under 3000 bytes; the RainMaker firmware reads at most 3072).
MAX_BODY = const(4096)
# The read window; it must hold the status line and headers whole.
_WINDOW = const(1024)
_POLLIN = const(1)
_POLLOUT = const(4)


class Reply:
    # status: HTTP status; body: the body (a bytearray); retry_after: seconds or None. Plain
    # data, no methods: holding one does not keep this module loaded.
    status = 0
    body = b""  # type: bytes | bytearray
    retry_after = None  # type: int | None


def _number(data, base=10):
    # A non-negative integer from bytes, or -1 when it is not one.
    try:
        n = int(data, base)
    except ValueError:
        return -1
    return n if n >= 0 else -1


class Client:
    # One server, one connection at a time, reused while the server keeps it open, so that
    # several requests share one TLS handshake (about 1 s each on an ESP32).
    #   url: "https://host[:port][/prefix]"; ca: the CA(s) that sign the server's certificate,
    #   as PEM text or a list of DER certificates (pinned: nothing else is trusted);
    #   timeout_s: the deadline of each request, covering connect, handshake, send and the
    #   whole reply (DNS is checked against it only after the fact: getaddrinfo cannot be
    #   interrupted).
    # detach() hands the open connection over as plain data, and a new Client (of a freshly
    # imported module, say) takes it back with attach(): a claim drops this module's code
    # from the heap between its requests, and keeps the TLS session.
    def __init__(self, url, ca=None, timeout_s=15, allow_insecure_http=False):
        scheme, sep, rest = url.partition("://")
        hostport, _, prefix = rest.partition("/")
        self.tls = scheme == "https"
        port = 443 if self.tls else 80
        host = hostport
        if hostport.startswith("["):  # an IPv6 address
            end = hostport.find("]")
            host = hostport[1:end]
            if hostport[end + 1 : end + 2] == ":":
                port = hostport[end + 2 :]
        elif ":" in hostport:
            host, port = hostport.rsplit(":", 1)
        try:
            port = int(port)
        except ValueError:
            host = ""
        if not sep or scheme not in ("https", "http") or not host:
            raise ConfigError("https: bad URL %r" % url)
        if not self.tls and not allow_insecure_http:
            raise ConfigError("https: %s is plain http://, refused (allow_insecure_http)" % url)
        if self.tls and not ca:
            raise ConfigError("https: a pinned CA is needed for %s" % url)
        self.host = host
        self.port = port
        prefix = prefix.strip("/")
        self.prefix = ("/" + prefix) if prefix else ""
        self.timeout_ms = int(timeout_s * 1000)
        self.handshakes = 0
        self.connections = 0
        self._ca = ca
        self._ctx = None
        self._sock = None
        self._raw = None
        self._deadline = time.ticks_ms()
        self._method = "POST"
        self._out = None  # type: bytes | None
        self._reused = False
        self._what = ""
        self._got = 0
        self._buf = bytearray(_WINDOW)
        self._start = 0
        self._end = 0

    def close(self):
        for s in (self._sock, self._raw):
            if s is not None:
                try:
                    s.close()
                except OSError:
                    pass
        self._sock = self._raw = None
        self._start = self._end = 0

    def detach(self):
        # -> (tls socket, raw socket, context) of the idle kept-alive connection, or None; this
        # Client forgets it (and will connect afresh if used again).
        conn = None
        if self._sock is not None:
            conn = (self._sock, self._raw, self._ctx)
        self._sock = self._raw = None
        return conn

    def attach(self, conn):
        # Take over a connection from detach() (None: nothing to take); (None, None, context)
        # gives only the TLS context (rmclaim.connect's) for the connection to come.
        self.close()
        if conn is not None:
            self._sock, self._raw, self._ctx = conn

    def _wait(self, events):
        # Check the deadline; with events, wait (within it) until the socket is ready.
        ms = time.ticks_diff(self._deadline, time.ticks_ms())
        if ms > 0 and events:
            poll = select.poll()
            poll.register(self._sock, events)
            if poll.poll(ms):
                return
        elif ms > 0:
            return
        raise NetworkError(
            "https: no answer from %s:%d within %d ms (%s)"
            % (self.host, self.port, self.timeout_ms, self._what)
        )

    def _connect(self):
        # A new connection (rmclaim.connect makes it, and the pinned TLS context when there is
        # none yet: a request on a kept-alive connection needs neither).
        self.close()
        from rmclaim import connect

        if self.tls and self._ctx is None:
            self._ctx = connect.context(self._ca)
        self._what = "connect"
        self._raw, self._sock = connect.connect(
            self.host, self.port, self._ctx if self.tls else None, self._deadline, self._wait
        )
        self.connections += 1
        if self.tls:
            # The handshake runs inside the first write, non-blocking, under our deadline.
            self._what = "TLS handshake"
            self.handshakes += 1

    def _io(self, write, mv, reused):
        # One non-blocking write or readinto of mv, waiting under the deadline until it can
        # go; socket and TLS errors become ours. -> bytes moved (0 at end of stream). Raises
        # EOFError for a kept-alive ("reused") connection the server had already closed
        # before this request's reply began: safe to send again on a fresh connection.
        sock = self._sock
        if sock is None:
            raise NetworkError("https: %s closed the connection in the %s" % (self.host, "reply"))
        while True:
            try:
                n = sock.write(mv) if write else sock.readinto(mv)
            except ValueError as e:
                # The tls module reports a rejected server certificate as ValueError with
                # mbedTLS's verify text (wrong CA, hostname, expired...).
                raise TLSError(
                    "https: server certificate of %s rejected: %s" % (self.host, str(e).strip())
                ) from e
            except OSError as e:
                if reused and not self._got:
                    raise EOFError from e
                code = e.args[0] if e.args and isinstance(e.args[0], int) else 0
                # mbedTLS codes other than "the peer went away" (MBEDTLS_ERR_SSL_CONN_EOF
                # -0x7280, MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY -0x7880) are TLS failures.
                if code <= -256 and code != -0x7280 and code != -0x7880:
                    err = TLSError(
                        "https: TLS error with %s (%s): %s" % (self.host, self._what, e)
                    )
                    err.retryable = True
                    raise err from e
                raise NetworkError(
                    "https: %s with %s:%d failed: %s" % (self._what, self.host, self.port, e)
                ) from e
            if n is not None:
                if not write:
                    if not n and reused and not self._got:
                        raise EOFError
                    self._got += n
                return n
            self._wait(_POLLOUT if write else _POLLIN)

    def _fill(self, reused=False):
        # Read more into the window; returns the number of new bytes, 0 at end of stream.
        if self._start == self._end:
            self._start = self._end = 0
        elif self._end == _WINDOW:
            n = self._end - self._start
            self._buf[0:n] = self._buf[self._start : self._end]
            self._start, self._end = 0, n
        n = self._io(False, memoryview(self._buf)[self._end :], reused)
        self._end += n
        return n

    def _line(self, sep, what, reused=False):
        # The bytes before `sep` (which is consumed), from the window; a line longer than the
        # window is refused.
        while True:
            i = self._buf.find(sep, self._start, self._end)
            if i >= 0:
                line = bytes(memoryview(self._buf)[self._start : i])
                self._start = i + len(sep)
                return line
            if self._end - self._start >= _WINDOW:
                raise MalformedReply(
                    "https: bad %s %r from %s" % (what, "over %d bytes" % _WINDOW, self.host)
                )
            if not self._fill(reused):
                raise NetworkError("https: %s closed the connection in the %s" % (self.host, what))

    def request(self, method, path, body=b"", headers=()):
        # One request and its reply: a Reply (status, body, retry_after seconds or None).
        # Raises NetworkError (no complete reply in time), TLSError, MalformedReply.
        self.send(method, path, body, headers)
        return self.reply()

    def send(self, method, path, body=b"", headers=()):
        # The first half of request(): sends the request. The client keeps its bytes only
        # until reply() has the reply's first bytes (a kept-alive connection the server had
        # closed before reading it gets them again, freshly connected), so a caller that lets
        # go of the body has it off the heap before the reply's body is read.
        self._deadline = time.ticks_add(time.ticks_ms(), self.timeout_ms)
        host = self.host if ":" not in self.host else "[" + self.host + "]"
        if self.port != (443 if self.tls else 80):
            host = "%s:%d" % (host, self.port)
        head = "%s %s%s HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n" % (
            method,
            self.prefix,
            path,
            host,
            len(body),
        )
        for name, value in headers:
            head += "%s: %s\r\n" % (name, value)
        # Head and body in one write, so in one TLS record (two small writes would wait for
        # the server's delayed ACK of the first: Nagle).
        data = (head + "\r\n").encode() + body
        del head, body
        self._method = method
        self._out = data
        reused = self._sock is not None
        if reused:
            # Whether the server has closed (or spoilt) the idle kept-alive connection: then
            # it is dropped instead of written into. Readable with nothing to give (a TLS 1.3
            # session ticket, say) is still open; end of stream, an error or stray bytes are
            # not.
            try:
                n = self._sock.readinto(  # type: ignore[union-attr]
                    memoryview(self._buf)[self._end :]
                )
            except (OSError, ValueError):
                n = 0
            if n is not None:
                self.close()
                reused = False
        self._reused = reused
        try:
            try:
                if not reused:
                    self._connect()
                self._write(data, reused)
            except EOFError:
                # The server closed the kept-alive connection before reading this request:
                # nothing was processed, so it is safe to send it once more, freshly connected.
                self._reused = False
                self._connect()
                self._write(data, False)
        except BaseException:
            self._out = None
            self.close()
            raise

    def reply(self):
        # The second half of request(): the reply to what send() sent, as a Reply.
        try:
            try:
                return self._reply(self._reused)
            except EOFError:
                # As in send(): the kept-alive connection was gone before this request was read.
                data = self._out
                self._connect()
                self._write(data, False)
                del data
                return self._reply(False)
        except BaseException:
            self.close()
            raise
        finally:
            self._out = None

    def _write(self, data, reused):
        self._got = 0
        if self._what != "TLS handshake":
            self._what = "send"
        mv = memoryview(data)
        off = 0
        while off < len(data):
            off += self._io(True, mv[off:], reused)
            if self._what == "TLS handshake":
                self._what = "send"

    def _reply(self, reused):
        self._what = "reply"
        method = self._method
        # The head: status line and the header fields we use.
        bad = "https: bad %s %r from %s"
        while True:
            lines = self._line(b"\r\n\r\n", "reply headers", reused).split(b"\r\n")
            parts = lines[0].split(b" ", 2)
            status = _number(parts[1]) if len(parts) > 1 and len(parts[1]) == 3 else -1
            if status < 0 or not parts[0].startswith(b"HTTP/1."):
                raise MalformedReply(bad % ("status line", lines[0][:40], self.host))
            if not 100 <= status < 200:
                break  # 100 Continue and friends: the real reply follows
        self._out = None  # the request was read: never sent again
        fields = {}
        for line in lines[1:]:
            name, sep, value = line.partition(b":")
            if not sep:
                raise MalformedReply(bad % ("header line", line[:40], self.host))
            name = name.strip().lower()
            if name in (b"content-length", b"transfer-encoding", b"connection", b"retry-after"):
                fields[name] = value.strip().lower()
        keep = parts[0] == b"HTTP/1.1" and fields.get(b"connection") != b"close"
        del lines, parts
        te = fields.get(b"transfer-encoding")
        cl = fields.get(b"content-length")
        # The body goes straight into a buffer of its announced length, or into one of the cap.
        if method == "HEAD" or status in (204, 304):
            body = bytearray(0)
        elif te is None and cl is not None:
            n = _number(cl)
            if n < 0:
                raise MalformedReply(bad % ("content-length", cl, self.host))
            if n > _WINDOW:
                # A body of kilobytes wants one free block that large: the head's garbage
                # goes first.
                gc.collect()
            body = bytearray(min(n, MAX_BODY))
            self._body(body, 0, n, "body")
        elif te is not None and te != b"chunked":
            raise MalformedReply(bad % ("transfer-encoding", te, self.host))
        else:
            body = bytearray(MAX_BODY)
            blen = 0
            if te is None:
                # No length: the body ends when the server closes the connection.
                keep = False
                while True:
                    blen = self._body(body, blen, self._end - self._start, "body")
                    if not self._fill():
                        break
            else:
                while True:
                    line = self._line(b"\r\n", "chunk size")
                    size = _number(line.split(b";", 1)[0].strip(), 16)
                    if size < 0:
                        raise MalformedReply(bad % ("chunk size", line[:40], self.host))
                    if size == 0:
                        break
                    blen = self._body(body, blen, size, "chunked body")
                    line = self._line(b"\r\n", "chunk end")
                    if line:
                        raise MalformedReply(bad % ("chunk end", line[:40], self.host))
                # Trailer fields, if any, up to the empty line.
                while self._line(b"\r\n", "chunk trailer"):
                    pass
            body = body[:blen]
        if not keep or self._end != self._start:
            self.close()
        else:
            self._start = self._end = 0
        r = Reply()
        r.status = status
        r.body = body
        ra = fields.get(b"retry-after")
        if ra is not None and ra.isdigit():
            r.retry_after = int(ra)
        return r

    def _body(self, body, blen, n, what):
        # Append exactly n bytes of body to body[blen:]; -> the new length.
        if blen + n > MAX_BODY:
            raise MalformedReply(
                "https: reply body from %s over the %d-byte cap" % (self.host, MAX_BODY)
            )
        mv = memoryview(body)
        while n:
            have = self._end - self._start
            if have:
                k = have if have < n else n
                mv[blen : blen + k] = memoryview(self._buf)[self._start : self._start + k]
                self._start += k
            else:
                k = self._io(False, mv[blen : blen + n], False)
                if not k:
                    raise NetworkError(
                        "https: %s closed the connection in the %s (%d bytes missing)"
                        % (self.host, what, n)
                    )
            blen += k
            n -= k
        return blen
