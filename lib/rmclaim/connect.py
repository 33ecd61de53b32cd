"""rmclaim.https's connections: TCP, then TLS with only the pinned CA trusted, and its context."""

# Apart from https, so that a claim can make the context before https's code is on the heap
# (the context is one large block, about 3 KB, which a heap fragmented by that code may no
# longer have), and so that a request on a kept-alive connection needs none of this code.

from rmclaim.errors import ConfigError, NetworkError, TLSError


def context(ca):
    # A tls.SSLContext that requires the server's certificate (and checks the hostname given
    # to wrap_socket) against ca alone: PEM text, or a list of DER certificates. DER goes in
    # one certificate per call: some builds of the tls module parse no PEM.
    import gc

    import tls

    gc.collect()
    ctx = tls.SSLContext(tls.PROTOCOL_TLS_CLIENT)
    ctx.verify_mode = tls.CERT_REQUIRED  # type: ignore[attr-defined]
    try:
        if isinstance(ca, str):
            from rmclaim import pem

            ca = pem.split(ca, "CERTIFICATE")
        if not ca:
            raise ValueError("no certificate")
        for der in ca:
            ctx.load_verify_locations(der)
    except ValueError as e:
        raise ConfigError("https: ca refused: %s" % e) from e
    return ctx


def connect(host, port, ctx, deadline, wait):
    # -> (raw socket, socket to use: ctx's TLS wrap of the raw one, or it when ctx is None),
    # connected (the TLS handshake is left to the first write) before the deadline (ticks);
    # wait(0) raises the caller's timeout error once the deadline has passed.
    import socket
    import time

    raw = None
    try:
        found = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)
        wait(0)
        # The ESP32 port fills in IPv4 addresses only (ports/esp32/modsocket.c): an IPv6-only
        # host gives an entry without one, and no host at all gives no entry.
        if not found or found[0][-1] is None:
            raise OSError("no IPv4 address")
        family, address = found[0][0], found[0][-1]
        del found
        raw = socket.socket(family, socket.SOCK_STREAM)
        raw.settimeout(time.ticks_diff(deadline, time.ticks_ms()) / 1000)
        raw.connect(address)
        raw.setblocking(False)
        if ctx is None:
            return raw, raw
    except (OSError, TypeError, ValueError) as e:
        # TypeError/ValueError: what a port's socket layer raises for an address it cannot use.
        if raw is not None:
            raw.close()
        raise NetworkError("https: cannot connect to %s:%d: %s" % (host, port, e)) from e
    try:
        return raw, ctx.wrap_socket(raw, server_hostname=host, do_handshake_on_connect=False)
    except (OSError, ValueError) as e:
        raw.close()
        err = TLSError("https: TLS setup for %s failed: %s" % (host, e))
        err.retryable = True
        raise err from e
