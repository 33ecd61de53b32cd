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
    # The checks a certificate must pass before store.Store.save_identity may store it: its
    # public key is ours (point: the 65-byte uncompressed public point of the stored key), its
    # CN is the node id, it is signed by the claim CA (the pinned claim_ca PEM, or else a CA
    # certificate sent with it over the pinned TLS session), and it has not expired (when the
    # clock is set: an unset one starts in 2000, and the firmware syncs it first). Raises
    # BadCertificate naming what failed. In steps, each with only its own code on the heap:
    # the PEM (csr), the DER (x509, asn1), then an EC signature (p256).
    key, cn, issuer, end, jobs = _parse_claimed(certificate, claim_ca)
    unload("x509", "asn1")
    if key != point:
        raise BadCertificate("check: the certificate is for another key, not this board's")
    if cn != node_id:
        raise BadCertificate(
            "check: the certificate CN is %r, wanted the node id %r" % (cn, node_id)
        )
    while jobs:
        from rmclaim import p256

        if p256.verify(*jobs.pop()):
            jobs = None
    if jobs is not None:
        raise BadCertificate(
            "check: the certificate (issuer %r) does not verify against the %s claim CA"
            % (issuer, "pinned" if claim_ca is not None else "sent")
        )
    now = time.gmtime()
    if now[0] >= 2025 and tuple(now[:6]) > tuple(end):
        raise BadCertificate("check: the certificate expired at %r" % (end,))


def _pem_certificates(certificate, claim_ca):
    # (device certificate DER, [claim CA certificate DER, ...]) from the PEM texts.
    from rmclaim import csr

    ders = csr.pem_split(certificate, "CERTIFICATE")
    return ders[0], ders[1:] if claim_ca is None else csr.pem_split(claim_ca, "CERTIFICATE")


def _parse_claimed(certificate, claim_ca):
    # What check_certificate needs, as plain values (a Certificate would keep x509 loaded):
    # (public point, CN, issuer CN, not_after, the EC signature checks left for p256 or None
    # when an RSA claim CA verified it).
    try:
        dev, cas = _pem_certificates(certificate, claim_ca)
        unload("csr")
        from rmclaim import x509

        dev = x509.parse_certificate(dev)
        jobs = []  # type: list | None
        while cas:
            ca = x509.parse_certificate(cas.pop(0))
            if ca.subject_cn == dev.issuer_cn:
                job = x509.ec_signature(dev, ca)
                if job is not None:
                    jobs.append(job)  # type: ignore[union-attr]
                elif x509.verify_signature(dev, ca):
                    jobs = None
                    break
    except ValueError as e:
        raise BadCertificate("check: the certificate cannot be parsed: %s" % e) from e
    return dev.public_key_point, dev.subject_cn, dev.issuer_cn, dev.not_after, jobs


def unload(*names):
    # Drop rmclaim modules a finished phase needed, so the next phase has their heap: on a
    # small board the whole library does not fit at once. Never errors: its classes must stay
    # the same objects. A module leaves the heap once nothing refers to it: neither an object
    # of a class it defines nor a frame that imported it (so phases unload after returning).
    import gc
    import sys

    import rmclaim

    for name in names:
        sys.modules.pop("rmclaim." + name, None)
        if name in rmclaim.__dict__:
            delattr(rmclaim, name)
    gc.collect()


# The phases of ensure_claimed. Each imports what it needs in its own frame and returns only
# plain data (ints, bytes, str, method-less objects); the caller then unloads those modules.


def _load_config(source):
    from rmclaim import config

    return config.load(source)


def _stored():
    from rmclaim import store

    return store.Store().load()


def _identify(cfg, ev):
    # -> (identity, mode, unique id or None)
    from rmclaim import chip

    ident = ev.run("identity", chip.identity)
    mode = resolve_mode(cfg, ident)
    uid = ev.run("efuse", chip.optional_unique_id, ident.info) if mode == "self" else None
    return ident, mode, uid


def _prepare(cfg, ev, ident, mode, csr_cache):
    # The key (committed to NVS before any network call), its PEM and public point, the
    # pinned service CA as DER and, for self-claim, the CSR (its CN, the MAC, is known).
    from rmclaim import csr, store

    d, key_pem = ev.run("key", store.Store().load_or_create_key)
    point = csr.public_point(d)
    ca = None
    if cfg.ca is not None:
        # Each certificate of the PEM as DER, split here (x509, its usual splitter, would cost
        # its heap in this phase).
        try:
            ca = csr.pem_split(cfg.ca, "CERTIFICATE")
        except ValueError as e:
            raise ConfigError("config: ca is not a usable PEM certificate: %s" % e) from e
    if mode == "self":
        csr_cache[ident.mac] = ev.run("csr", build_csr_pem, d, ident.mac, cfg.matter)
    return d, key_pem, point, ca


def _talk(cfg, ev, ident, mode, uid, ca, csr_cache, resume=None):
    # The requests of one attempt over one https.Client: initiate, then verify when the CSR
    # is at hand. -> (node_id, VerifyReply, None), or (node_id, None, connection) when a token
    # claim's CSR still has to be made for the node id: call again with resume=(node_id,
    # connection) to verify on the same TLS session.
    from rmclaim import service

    svc = service.Service(cfg, ca)
    token = cfg.access_token
    try:
        if resume is not None:
            node_id = resume[0]
            svc.http.attach(resume[1])
        elif mode == "self":
            node_id = ident.mac
            auth_id, challenge = ev.run("initiate", svc.initiate_self, node_id, ident.platform)
            response = ev.run("hmac", service.challenge_response, uid, challenge)
            unload("sha512")
            reply = ev.run("verify", svc.verify_self, auth_id, response, csr_cache[node_id])
            return node_id, reply, None
        else:
            node_id = ev.run("initiate", svc.initiate_token, ident.mac, ident.platform, token)
            if node_id not in csr_cache:
                return node_id, None, svc.http.detach()
        return node_id, ev.run("verify", svc.verify_token, csr_cache[node_id], token), None
    finally:
        ev.handshakes += svc.http.handshakes
        svc.close()


def _network(cfg, ev, ident, mode, uid, d, ca, csr_cache):
    # The network part of one attempt (initiate and verify share one TLS session while the
    # server keeps it open). -> (node_id, VerifyReply)
    try:
        node_id, reply, conn = _talk(cfg, ev, ident, mode, uid, ca, csr_cache)
        if reply is None:
            # A token claim's CSR needs the node id. The session stays open meanwhile, but the
            # service and https code leave the heap for the CSR and P-256 code, and come back
            # for the verify.
            unload("service", "https")
            try:
                csr_cache.clear()
                csr_cache[node_id] = ev.run("csr", build_csr_pem, d, node_id, cfg.matter)
            except BaseException:
                for s in conn[:2] if conn else ():  # the TLS and raw sockets
                    try:
                        s.close()
                    except OSError:
                        pass
                raise
            unload("csr", "p256", "asn1")
            node_id, reply, conn = _talk(cfg, ev, ident, mode, uid, ca, csr_cache, (node_id, conn))
    finally:
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
    unload("config")
    ev = Events(on_event)
    creds = _stored()
    if creds is not None:
        ms = ticks_diff(ticks_ms(), t0)
        ev.emit("claimed", "ok", {"node_id": creds.node_id, "stored": True, "ms": ms})
        return creds
    unload("store")
    ident, mode, uid = _identify(cfg, ev)
    unload("chip")
    csr_cache = {}  # type: dict
    d, key_pem, point, ca = _prepare(cfg, ev, ident, mode, csr_cache)
    unload("csr", "p256", "asn1", "store")
    while True:
        ev.attempt += 1
        try:
            node_id, reply = _network(cfg, ev, ident, mode, uid, d, ca, csr_cache)
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
