"""The claim: resume from NVS, self/token/auto, retries with backoff and jitter, step events."""

import time

from micropython import const

from rmclaim.errors import BadCertificate, ClaimError, ConfigError, QuotaExceeded, UnsupportedChip

try:
    from time import ticks_diff, ticks_ms
except ImportError:  # CPython, for host-side checks of the pure parts

    def ticks_ms():
        return time.time_ns() // 1000000

    def ticks_diff(a, b):  # type: ignore[no-redef]
        return a - b


_MAX_RETRY_AFTER = const(3600)  # a Retry-After beyond an hour is read as an hour
# Matter claims carry these subject attributes (the CLI's test vendor/product ids).
_MATTER_SUBJECT = (("1.3.6.1.4.1.37244.2.1", "131B"), ("1.3.6.1.4.1.37244.2.2", "0002"))


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

    def run(self, step, fn, *args):
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


def resolve_mode(cfg, ident):
    # "self" or "token" for this board and config; auto prefers the token when there is one.
    mode = cfg.mode
    if mode == "auto":
        if cfg.access_token is not None:
            return "token"
        if ident.self_claim:
            return "self"
        raise UnsupportedChip(
            "claim: %s cannot self-claim and no access_token is configured: claim it "
            "host-assisted (rmbench claim), or set access_token for a token claim" % ident.platform
        )
    if mode == "self" and not ident.self_claim:
        raise UnsupportedChip(
            "claim: %s cannot self-claim (mode 'self'): use host-assisted claiming "
            "(rmbench claim) or mode 'token' with an access_token" % ident.platform
        )
    return mode


def backoff_s(cfg, attempt, err, fraction=None):
    # Seconds to wait after failed attempt number `attempt` (1-based): full jitter, uniform
    # in [0, min(cap, base * 2^(attempt-1))]; quota errors wait longer, between half the cap
    # and the cap (an administrator has to act); never sooner than a Retry-After.
    if fraction is None:
        import random

        fraction = random.getrandbits(16) / 65536
    cap = cfg.backoff_cap_s
    if isinstance(err, QuotaExceeded):
        delay = cap * (0.5 + 0.5 * fraction)
    else:
        ceiling = cfg.backoff_base_s * (1 << min(attempt - 1, 24))
        delay = (ceiling if ceiling < cap else cap) * fraction
    ra = err.retry_after
    if ra is not None:
        ra = ra if ra < _MAX_RETRY_AFTER else _MAX_RETRY_AFTER
        if delay < ra:
            delay = ra
    return delay


def build_csr_pem(d, node_id, matter=False):
    from rmclaim import csr

    try:
        der = csr.build_csr(d, node_id, _MATTER_SUBJECT if matter else None)
    except ValueError as e:
        raise ClaimError("csr: cannot build a request for node id %r: %s" % (node_id, e)) from e
    return csr.pem_encode(der, "CERTIFICATE REQUEST")


def check_certificate(point, node_id, certificate, claim_ca=None):
    # The checks a certificate must pass before store.Store.save_identity may store it: its public
    # key is ours (point: the 65-byte uncompressed public point of the stored key), its CN is
    # the node id,
    # it is signed by the claim CA (the pinned claim_ca PEM, or else a CA certificate sent
    # with it over the pinned TLS session), and it has not expired (when the clock is set).
    # Raises BadCertificate naming what failed.
    from rmclaim import x509

    try:
        ders = x509.split_pem_chain(certificate)
        dev = x509.parse_certificate(ders[0]) if ders else None
        if claim_ca is not None:
            cas = [x509.parse_certificate(der) for der in x509.split_pem_chain(claim_ca)]
        else:
            cas = [x509.parse_certificate(der) for der in ders[1:]]
    except (ValueError, IndexError) as e:
        raise BadCertificate("check: the certificate cannot be parsed: %s" % e) from e
    if dev is None:
        raise BadCertificate("check: the reply holds no certificate")
    if dev.public_key_point != point:
        raise BadCertificate("check: the certificate is for another key, not this board's")
    if dev.subject_cn != node_id:
        raise BadCertificate(
            "check: the certificate CN is %r, wanted the node id %r" % (dev.subject_cn, node_id)
        )
    for ca in cas:
        if ca.subject_cn == dev.issuer_cn and x509.verify_signature(dev, ca):
            break
    else:
        raise BadCertificate(
            "check: the certificate (issuer %r) does not verify against the %s claim CA"
            % (dev.issuer_cn, "pinned" if claim_ca is not None else "sent")
        )
    now = time.gmtime()
    # Only with a set clock (an unset one starts in 2000): the firmware syncs it first.
    if now[0] >= 2025 and tuple(now[:6]) > tuple(dev.not_after):
        raise BadCertificate("check: the certificate expired at %r" % (dev.not_after,))


def unload(*names):
    # Drop rmclaim modules a finished phase needed, so the next phase has their heap: on a
    # small board the whole library does not fit at once. Never errors: its classes must stay
    # the same objects. (An object made by a module keeps it alive, unloaded or not.)
    import gc
    import sys

    import rmclaim

    for name in names:
        sys.modules.pop("rmclaim." + name, None)
        if name in rmclaim.__dict__:
            delattr(rmclaim, name)
    gc.collect()


# The phases of ensure_claimed. Each imports what it needs in its own frame and unloads it
# before returning, so only plain data (ints, bytes, str) passes from one to the next.


def _load_config(source):
    from rmclaim import config

    cfg = config.load(source)
    unload("config")
    return cfg


def _stored():
    from rmclaim import store

    creds = store.Store().load()
    if creds is None:
        unload("store")
    return creds


def _identify(cfg, ev):
    # -> (identity, mode, unique id or None)
    from rmclaim import chip

    ident = ev.run("identity", chip.identity)
    mode = resolve_mode(cfg, ident)
    uid = ev.run("efuse", chip.optional_unique_id, ident.info) if mode == "self" else None
    unload("chip")
    return ident, mode, uid


def _prepare(cfg, ev, ident, mode, csr_cache):
    # The key (committed to NVS before any network call), its PEM and public point, the
    # pinned service CA as DER and, for self-claim, the CSR (its CN, the MAC, is known).
    from rmclaim import csr, store

    d, key_pem = ev.run("key", store.Store().load_or_create_key)
    point = csr.public_point(d)
    ca = None
    if cfg.ca is not None:
        # Each certificate of the PEM as DER (csr.pem_decode reads the first block of what it
        # is given): x509, its usual splitter, would cost its heap in this phase.
        ca = []
        text = cfg.ca
        mark = "-----BEGIN CERTIFICATE-----"
        i = text.find(mark)
        while i >= 0:
            try:
                ca.append(csr.pem_decode(text[i:], "CERTIFICATE"))
            except ValueError as e:
                raise ConfigError("config: ca is not a usable PEM certificate: %s" % e) from e
            i = text.find(mark, i + len(mark))
    if mode == "self":
        csr_cache[ident.mac] = ev.run("csr", build_csr_pem, d, ident.mac, cfg.matter)
    unload("csr", "p256", "asn1", "store")
    return d, key_pem, point, ca


def _exchange(cfg, ev, ident, mode, uid, d, ca, csr_cache):
    # One attempt of the network part over one connection (initiate and verify share its TLS
    # session while the server keeps it open). -> (node_id, VerifyReply)
    from rmclaim import service

    svc = service.Service(cfg, ca)
    try:
        if mode == "self":
            node_id = ident.mac
            auth_id, challenge = ev.run("initiate", svc.initiate_self, ident.mac, ident.platform)
            response = ev.run("hmac", service.challenge_response, uid, challenge)
            unload("sha512")
            reply = ev.run("verify", svc.verify_self, auth_id, response, csr_cache[node_id])
        else:
            token = cfg.access_token
            node_id = ev.run("initiate", svc.initiate_token, ident.mac, ident.platform, token)
            if node_id not in csr_cache:
                csr_cache.clear()
                csr_cache[node_id] = ev.run("csr", build_csr_pem, d, node_id, cfg.matter)
                unload("csr", "p256", "asn1")
            reply = ev.run("verify", svc.verify_token, csr_cache[node_id], token)
    finally:
        ev.handshakes += svc.http.handshakes
        svc.close()
        unload("service", "https", "sha512", "csr", "p256", "asn1")
    return node_id, reply


def _finish(ev, key_pem, point, node_id, reply, claim_ca):
    # The checks, then the store; -> Credentials read back from NVS.
    try:
        ev.run("check", check_certificate, point, node_id, reply.certificate, claim_ca)
    finally:
        unload("x509", "csr", "p256", "asn1")
    from rmclaim import store

    st = store.Store()
    if st.key_pem() != key_pem:
        raise ClaimError("store: the stored key changed during the claim; nothing stored")
    ev.run(
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


def ensure_claimed(source=None, on_event=None):
    # See rmclaim.ensure_claimed.
    t0 = ticks_ms()
    cfg = _load_config(source)
    ev = Events(on_event)
    creds = _stored()
    if creds is not None:
        ms = ticks_diff(ticks_ms(), t0)
        ev.emit("claimed", "ok", {"node_id": creds.node_id, "stored": True, "ms": ms})
        return creds
    ident, mode, uid = _identify(cfg, ev)
    csr_cache = {}  # type: dict
    d, key_pem, point, ca = _prepare(cfg, ev, ident, mode, csr_cache)
    while True:
        ev.attempt += 1
        try:
            node_id, reply = _exchange(cfg, ev, ident, mode, uid, d, ca, csr_cache)
            creds = _finish(ev, key_pem, point, node_id, reply, cfg.claim_ca)
            break
        except ClaimError as e:
            n = ev.attempt
            if not e.retryable or (cfg.max_attempts and n >= cfg.max_attempts):
                raise
            delay = backoff_s(cfg, n, e)
            info = {"s": delay, "attempt": n, "error": str(e), "kind": type(e).__name__}
            ev.emit("backoff", "wait", info)
            time.sleep(delay)
    info = {"node_id": creds.node_id, "stored": False, "ms": ticks_diff(ticks_ms(), t0)}
    info["attempts"] = ev.attempt
    info["handshakes"] = ev.handshakes
    ev.emit("claimed", "ok", info)
    return creds
