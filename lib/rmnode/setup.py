"""Bringing a claimed node online: its stored identity, the TLS context, the first session."""

# Loaded by rmnode.start() and dropped once the node is online: none of this is needed again
# (a reconnect reuses the TLS context).

from rmnode import DEFAULT_HOST, NotReady


def pem_blocks(text):
    """Every ``-----BEGIN <label>-----`` block of ``text``: a list of (label, DER bytes)."""
    import binascii

    out = []  # type: list
    pos = 0
    while True:
        i = text.find("-----BEGIN ", pos)
        if i < 0:
            return out
        j = text.find("-----", i + 11)
        label = text[i + 11 : j]
        end = text.find("-----END " + label + "-----", j)
        if j < 0 or end < 0:
            raise ValueError("PEM block %s has no end line" % label)
        out.append((label, binascii.a2b_base64(text[j + 5 : end])))
        pos = end + 14 + len(label)


def drop_claim_library():
    """Drop every rmclaim module but the package and its exceptions, and collect: the claim's
    code and data leave the heap. The package stays: it holds the NVS handles (one per
    namespace per boot: ESP-IDF's nvs_open is never undone by MicroPython's esp32.NVS)."""
    import gc
    import sys

    import rmclaim

    for name in list(sys.modules):
        if name.startswith("rmclaim.") and name != "rmclaim.errors":
            del sys.modules[name]
            attr = name[8:]
            if attr in rmclaim.__dict__:
                delattr(rmclaim, attr)
    gc.collect()


def _platform():
    # The chip family RainMaker calls the platform (CONFIG_IDF_TARGET), from rmclaim's table.
    import os

    from rmclaim import UnsupportedChip, chip

    try:
        return chip.lookup(os.uname().machine).platform
    except UnsupportedChip:
        return "unknown"


def context(ca_pem, cert_der, key_der):
    """The TLS context of the MQTT sessions: TLS client, the broker's certificate required and
    checked against the CA(s) in ca_pem alone (host name included: umqtt.simple passes
    server_hostname), presenting the node's certificate and key (DER: some builds of tls
    parse no PEM).

    Raises:
        NotReady: tls refused the CA, or the key and certificate.
    """
    import tls

    if not cert_der or not key_der:
        raise NotReady("mqtt: the stored identity has no certificate or key")
    ctx = tls.SSLContext(tls.PROTOCOL_TLS_CLIENT)
    ctx.verify_mode = tls.CERT_REQUIRED  # type: ignore[attr-defined]
    try:
        cas = [der for label, der in pem_blocks(ca_pem) if label == "CERTIFICATE"]
        if not cas:
            raise ValueError("no certificate")
        for der in cas:
            ctx.load_verify_locations(der)
    except ValueError as e:
        raise NotReady("mqtt: mqtt_ca refused: %s" % e) from e
    try:
        ctx.load_cert_chain(cert_der, key_der)
    except ValueError as e:
        raise NotReady("mqtt: the stored key and certificate are refused: %s" % e) from e
    return ctx


def prepare(cfg=None, report=None, led=None):
    # The Node of this board, not connected yet, with its TLS context (see rmnode.start). The
    # claim's library leaves the heap first, and what is read here (the config, the stored
    # identity) is dropped as soon as its few values are out.
    import rmclaim

    drop_claim_library()  # whatever the claim left loaded
    if cfg is None or isinstance(cfg, str):
        from rmclaim import config

        cfg = config.as_dict(config.load(cfg))
        drop_claim_library()
    ca_pem = cfg.get("mqtt_ca")
    if ca_pem is None:
        raise NotReady("mqtt: no mqtt_ca in the config: no broker can be trusted")
    settings = (
        cfg.get("mqtt_port", 8883),
        cfg.get("mqtt_keepalive_s", 120),
        (cfg.get("backoff_base_s", 2), cfg.get("backoff_cap_s", 300)),
        cfg.get("max_attempts", 0),
        cfg.get("timeout_s", 15),
    )
    host = cfg.get("mqtt_host")
    del cfg
    creds = rmclaim.load_credentials()
    if creds is None:
        raise NotReady("mqtt: this board has no stored identity; claim it first")
    node_id = creds.node_id
    host = host or creds.mqtt_host or DEFAULT_HOST
    key = cert = None
    for label, der in pem_blocks(creds.key_pem) + pem_blocks(creds.cert_pem):
        if key is None and label.endswith("PRIVATE KEY"):
            key = der
        elif cert is None and label == "CERTIFICATE":
            cert = der
    del creds
    platform = _platform()
    drop_claim_library()
    ctx = context(ca_pem, cert, key)
    del ca_pem, cert, key
    from rmnode.node import Node

    node = Node(node_id, host, settings[0], settings[1], report, led)
    node.backoff, node.max_rounds, node.timeout_s = settings[2:]
    node.info["platform"] = platform
    node.use_tls(ctx)
    return node
