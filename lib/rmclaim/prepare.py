"""A claim before its network part: config, stored identity, chip and mode, key, a self CSR."""

# Steps of rmclaim.claim's state machine (which imports this module while it prepares, then
# drops it): each imports what it needs in its own frame and returns plain data, so the
# modules it used can leave the heap after it.

from rmclaim.errors import UnsupportedChip


def load_config(source):
    from rmclaim import config

    return config.load(source)


def stored():
    from rmclaim import store

    return store.Store().load()


def mode(cfg, ident):
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


def identify(cfg, ev):
    # -> ((MAC, platform), mode, unique id or None): plain values (a chip.Identity would keep
    # its classes on the heap).
    from rmclaim import chip

    ident = ev.run_step("identity", chip.identity)
    how = mode(cfg, ident)
    uid = ev.run_step("efuse", chip.optional_unique_id, ident.info) if how == "self" else None
    return (ident.mac, ident.platform), how, uid


def key(cfg, ev, mac, how, csr_cache):
    # The key (stored in NVS before any network call), its PEM and public point and, for
    # self-claim, the CSR (its CN, the MAC, is known). csr is loaded only after the key is made
    # (with a radio on: rmclaim.store) and store has left the heap, so fewer modules share it.
    from rmclaim import store
    from rmclaim.heap import unload

    d, key_pem = ev.run_step("key", store.Store().load_or_create_key)
    del store
    unload("store")
    from rmclaim import csr

    point = csr.public_point(d)
    if how == "self":
        csr_cache[mac] = ev.run_step("csr", csr.request_pem, d, mac, cfg.matter)
    return d, key_pem, point
