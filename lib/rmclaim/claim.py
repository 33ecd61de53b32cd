"""The claim: resume from NVS, self/token/auto, retries with backoff and jitter, step events."""

import time

from rmclaim.errors import ClaimError
from rmclaim.heap import settle, unload

try:
    from time import ticks_diff, ticks_ms
except ImportError:  # CPython, for host-side checks of the pure parts

    def ticks_ms():
        return time.time_ns() // 1000000

    def ticks_diff(a, b):  # type: ignore[no-redef]
        return a - b


class Events:
    # Reports each step to the caller's on_event(step, outcome, info) (see rmclaim's
    # ensure_claimed for the steps and the info keys), and counts attempts and handshakes.
    def __init__(self, on_event):
        self.on_event = on_event
        self.attempt = 0
        self.handshakes = 0

    def emit(self, step, outcome, info):
        if self.on_event is not None:
            self.on_event(step, outcome, info)

    def run_step(self, step, fn, *args):
        # fn(*args) as the claim's step `step`: reported when it starts, then ok or error
        # (with its duration); returns what fn returns.
        self.emit(step, "start", {})
        t0 = ticks_ms()
        try:
            result = fn(*args)
        except ClaimError as e:
            info = {"ms": ticks_diff(ticks_ms(), t0), "error": str(e)}
            info["kind"] = type(e).__name__
            info["retryable"] = e.retryable
            info["attempt"] = self.attempt
            self.emit(step, "error", info)
            raise
        info = {"ms": ticks_diff(ticks_ms(), t0)}
        if self.attempt:
            info["attempt"] = self.attempt
        self.emit(step, "ok", info)
        return result


def _exchange(cfg, ev, ident, mode, uid, d, csr_cache):
    from rmclaim import exchange

    try:
        return exchange.run(cfg, ev, ident, mode, uid, d, csr_cache)
    finally:
        unload("exchange")


def _check(point, node_id, certificate, claim_ca):
    from rmclaim import check

    check.check_certificate(point, node_id, certificate, claim_ca)


def _finish(ev, key_pem, point, node_id, reply, claim_ca):
    # The checks, then the store; -> Credentials read back from NVS.
    try:
        ev.run_step("check", _check, point, node_id, reply.certificate, claim_ca)
    finally:
        unload("check", "x509", "pem", "csr", "p256", "asn1")
    from rmclaim import store

    st = store.Store()
    if st.key_pem() != key_pem:
        raise ClaimError("store: the stored key changed during the claim; nothing stored")
    ev.run_step(
        "store",
        st.save_identity,
        reply.certificate,
        node_id,
        reply.mqtt_host,
        reply.mqtt_cred_host,
    )
    creds = st.load()
    if creds is None:
        raise ClaimError("store: the identity just written does not read back")
    return creds


def _config(source):
    from rmclaim import prepare

    try:
        return prepare.load_config(source)
    finally:
        unload("prepare", "config")


def ensure_claimed(source=None, on_event=None):
    # See rmclaim.ensure_claimed.
    # Each phase runs in modules it imports and that are dropped after it (rmclaim.heap): the
    # steps before the network part are in rmclaim.prepare, the network part in
    # rmclaim.exchange, the check in rmclaim.check; only plain data passes between them.
    t0 = ticks_ms()
    from rmclaim import prepare

    cfg = prepare.load_config(source)
    unload("config")
    ev = Events(on_event)
    creds = prepare.stored()
    if creds is not None:
        unload("prepare")
        ms = ticks_diff(ticks_ms(), t0)
        ev.emit("claimed", "ok", {"node_id": creds.node_id, "stored": True, "ms": ms})
        return creds
    unload("store")
    ident, mode, uid = prepare.identify(cfg, ev)
    unload("chip")
    csr_cache = {}  # type: dict
    d, key_pem, point = prepare.key(cfg, ev, ident[0], mode, csr_cache)
    del prepare
    unload("prepare", "csr", "pem", "p256", "asn1", "store")
    key_pem, point, ident = settle(key_pem), settle(point), settle(ident)
    for k in csr_cache:
        csr_cache[k] = settle(csr_cache[k])
    while True:
        ev.attempt += 1
        try:
            node_id, reply = _exchange(cfg, ev, ident, mode, uid, d, csr_cache)
            csr_cache.clear()  # a verified CSR is not needed again
            # The check and the store need nothing else of the config (its CA text is about
            # as big as a certificate): a retry reads it again.
            claim_ca = cfg.claim_ca
            cfg = None
            creds = _finish(ev, key_pem, point, node_id, reply, claim_ca)
            break
        except ClaimError as e:
            if cfg is None:
                cfg = _config(source)
            n = ev.attempt
            if not e.retryable or (cfg.max_attempts and n >= cfg.max_attempts):
                raise
            from rmclaim.backoff import backoff_s

            delay = backoff_s(cfg, n, e)
            del backoff_s
            unload("backoff")
            info = {"s": delay, "attempt": n, "error": str(e), "kind": type(e).__name__}
            ev.emit("backoff", "wait", info)
            time.sleep(delay)
    info = {"node_id": creds.node_id, "stored": False, "ms": ticks_diff(ticks_ms(), t0)}
    info["attempts"] = ev.attempt
    info["handshakes"] = ev.handshakes
    ev.emit("claimed", "ok", info)
    return creds
