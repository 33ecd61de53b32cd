"""TLS trust for rmclaim: a client context trusting only the pinned CA, certificates required."""

# Apart from https so that a claim can make the context before https's code is on the heap:
# the context is one large block (about 3 KB), which a heap fragmented by that code may no
# longer have.

from rmclaim.errors import ConfigError


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
            from rmclaim.csr import pem_split

            ca = pem_split(ca, "CERTIFICATE")
        if not ca:
            raise ValueError("no certificate")
        for der in ca:
            ctx.load_verify_locations(der)
    except ValueError as e:
        raise ConfigError("https: ca refused: %s" % e) from e
    return ctx
