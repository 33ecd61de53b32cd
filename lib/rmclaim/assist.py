"""Host-assisted claim, device side: a CSR for a node id, then the relayed certificate checked."""


def prepare_csr(node_id, matter=False):
    # The key (loaded, or made with a radio on and stored now) and a CSR for node_id, as PEM.
    # The key never leaves the board.
    from rmclaim import csr, store

    d, _pem = store.Store().load_or_create_key()
    return csr.request_pem(d, node_id, matter)


def accept_certificate(node_id, certificate, mqtt_host=None, mqtt_cred_host=None, claim_ca=None):
    # The verify reply the host relayed goes through the same checks as in a self-claim, and
    # only then is stored. -> Credentials
    from rmclaim import check, csr, pem, store
    from rmclaim.errors import ClaimError, StoreError

    for name, v, optional in (
        ("node_id", node_id, False),
        ("certificate", certificate, False),
        ("mqtt_host", mqtt_host, True),
        ("mqtt_cred_host", mqtt_cred_host, True),
        ("claim_ca", claim_ca, True),
    ):
        if not (isinstance(v, str) and v) and not (optional and v is None):
            raise ClaimError("assist: %s must be a non-empty string, got %r" % (name, v))
    st = store.Store()
    if st.is_claimed():
        raise StoreError(
            "store: already claimed as node %r; forget() first to claim again" % st.load().node_id
        )
    text = st.key_pem()
    if text is None:
        raise StoreError("store: no key stored; call prepare_csr(node_id) first")
    try:
        d = csr.decode_private_key(pem.decode(text, store.KEY_LABEL))
    except ValueError as e:
        raise StoreError("store: the stored key cannot be read (%s); prepare_csr again" % e) from e
    check.check_certificate(csr.public_point(d), node_id, certificate, claim_ca)
    st.save_identity(certificate, node_id, mqtt_host, mqtt_cred_host)
    return st.load()


def device_info(with_unique_id=False):
    # What the host needs to register or claim this board: machine string, family, platform,
    # MAC, self-claim capability, and on request the eFuse OPTIONAL_UNIQUE_ID as hex.
    from rmclaim import chip

    ident = chip.identity()
    info = {
        "machine": ident.machine,
        "family": ident.info.family,
        "platform": ident.platform,
        "mac": ident.mac,
        "self_claim": ident.self_claim,
    }
    if with_unique_id and ident.self_claim:
        import binascii

        info["unique_id"] = binascii.hexlify(chip.optional_unique_id(ident.info)).decode()
    return info
