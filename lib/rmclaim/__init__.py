"""Device-side ESP RainMaker claiming for MicroPython: a board gets and keeps its identity."""

from rmclaim.errors import (  # noqa: F401 (re-exported: the public exception types)
    BadCertificate,
    BadSignature,
    ChallengeRejected,
    ClaimError,
    ConfigError,
    DERError,
    MalformedReply,
    NetworkError,
    PlatformRejected,
    QuotaExceeded,
    ServiceError,
    ServiceUnavailable,
    StoreError,
    TLSError,
    Unauthorized,
    UnsupportedChip,
)

__version__ = "0.1.0"

# esp32.NVS handles by namespace, each opened once per boot and kept here: every esp32.NVS()
# is an nvs_open that is never closed (MicroPython ports/esp32/esp32_nvs.c has no close), so
# opening per use would leak ESP-IDF RAM; the claim drops its modules between phases, this
# package stays.
_nvs = {}  # type: dict


def nvs(namespace):
    """The esp32.NVS handle of ``namespace``, opened on first use and kept for the boot.

    Raises:
        ImportError: the port has no esp32 module; OSError: NVS refused to open it.
    """
    handle = _nvs.get(namespace)
    if handle is None:
        import esp32

        handle = _nvs[namespace] = esp32.NVS(namespace)
    return handle


def ensure_claimed(config=None, on_event=None):
    """Return this board's RainMaker credentials, claiming it first if it has none.

    Already claimed (a key, certificate and node id in NVS namespace ``rmaker_creds``): returns
    at once, with no network access. Otherwise claims, resuming from what is stored: the
    private key is made once (with the Wi-Fi station, or Bluetooth, on: os.urandom is only a
    PRNG with no radio on) and stored in NVS before any network call, and reused after a
    reboot; the certificate, node id and MQTT hosts are written only after the certificate's
    public key is found to be this key, its CN the node id, and its signature the claim CA's.

    Args:
        config: a dict, a path to a JSON file, or None for ``/rmclaim.json``; keys
            ``service_url``, ``ca`` (PEM of the CA signing the service's TLS certificate),
            ``mode`` ("self", "token", "auto"), ``access_token``, ``allow_insecure_http``,
            ``max_attempts`` (0 = keep trying), ``backoff_base_s``, ``backoff_cap_s``,
            ``timeout_s`` (per request), ``matter``, and optionally ``claim_ca`` (PEM pinning
            the CA that signs device certificates), ``wifi_ssid``, ``wifi_password``.
        on_event: None, or a callable ``on_event(step, outcome, info)`` called for every step,
            for status lines and the LED. step is one of "identity", "efuse", "key", "csr",
            "initiate", "hmac", "verify", "check", "store", plus "backoff" and "claimed";
            outcome is "start", "ok", "error" (then "wait" for "backoff"). info is a dict:
            "ok" carries "ms" (and "attempt" once the network part began); "error" carries
            "ms", "error" (the message), "kind" (the exception class name), "retryable",
            "attempt"; "backoff"/"wait" carries "s" (seconds), "attempt", "error", "kind";
            "claimed"/"ok" carries "node_id", "stored" (True when it was already claimed),
            "ms" and, after a claim, "attempts" and "handshakes". A status line can be
            ``"rmclaim: step=%s %s ms=%d" % (step, outcome, info["ms"])``.

    Returns:
        Credentials: ``node_id``, ``key_pem``, ``cert_pem`` (as the service sent it: device
        certificate then CA), ``mqtt_host`` and ``mqtt_cred_host`` (None when the service sent
        none; RainMaker's default host is mqtt.rainmaker.espressif.com), ``random`` (64
        bytes), and ``key_der()``/``cert_der()`` for ``tls.SSLContext.load_cert_chain``.

    Raises:
        ConfigError: the config is wrong (the message names the key).
        UnsupportedChip: unknown chip, or it cannot claim in the configured mode (the
            message names host-assisted claiming), or no radio can be turned on to make a key.
        TLSError: the service's certificate was refused (wrong CA, hostname, dates).
        ServiceError: the service refused, or gave no usable reply, and retrying did not
            help or is pointless: QuotaExceeded, ChallengeRejected, PlatformRejected,
            Unauthorized, ServiceUnavailable, NetworkError, MalformedReply, BadCertificate.
            ``retryable`` and ``retry_after`` say whether and when a new attempt may help.
        StoreError: NVS failed or holds a damaged identity.
    """
    from rmclaim import claim

    return claim.ensure_claimed(config, on_event)


def load_credentials():
    """The stored Credentials (see ensure_claimed), or None when the board is not claimed.

    Raises:
        StoreError: NVS failed or holds a damaged identity.
    """
    from rmclaim import store

    return store.Store().load()


def forget():
    """Erase the stored identity: key, certificate, node id, MQTT hosts and random bytes.

    The next ensure_claimed() claims again with a new key (a self-claimed board keeps its
    node id, the MAC).

    Raises:
        StoreError: NVS refused the erase.
    """
    from rmclaim import store

    store.Store().forget()


def prepare_csr(node_id, matter=False):
    """Host-assisted claim, step 1 on the device: a CSR for ``node_id``, as PEM text.

    Loads the stored private key, or makes one (turning the Wi-Fi station, or Bluetooth, on
    while it does: os.urandom is only a PRNG with no radio on) and stores it in NVS first; the
    key never leaves the board. The host then calls the service's verify with this CSR and its
    token.

    Args:
        node_id: the node id the service's initiate returned (the CSR's CN).
        matter: add the Matter vendor/product subject attributes.

    Raises:
        StoreError: NVS failed.
        UnsupportedChip: no radio can be turned on, so no key is made.
    """
    from rmclaim import assist

    return assist.prepare_csr(node_id, matter)


def accept_certificate(node_id, certificate, mqtt_host=None, mqtt_cred_host=None, claim_ca=None):
    """Host-assisted claim, step 2 on the device: check and store the certificate the host got.

    The same checks as a self-claim run before anything is stored: the certificate's public
    key must be the stored key, its CN ``node_id``, and it must verify against ``claim_ca``
    (PEM) or, when that is None, against a CA certificate that follows it in ``certificate``.

    Args:
        node_id: the node id of the claim.
        certificate: the verify reply's ``certificate`` text, stored as it is.
        mqtt_host, mqtt_cred_host: the MQTT hosts to store with it, if any.
        claim_ca: PEM of the CA that must have signed the certificate.

    Returns:
        Credentials, as ensure_claimed.

    Raises:
        BadCertificate: a check failed; nothing was stored.
        StoreError: no key stored (call prepare_csr first), the board is already claimed
            (forget() first), or NVS failed.
    """
    from rmclaim import assist

    return assist.accept_certificate(node_id, certificate, mqtt_host, mqtt_cred_host, claim_ca)


def device_info(with_unique_id=False):
    """This board as the host needs it: a dict of machine, family, platform, mac, self_claim.

    Args:
        with_unique_id: also read the eFuse OPTIONAL_UNIQUE_ID (as 32 hex digits under
            "unique_id"), on chips that can self-claim, so the host can register the board.

    Raises:
        UnsupportedChip: the chip is unknown or its unique id is not programmed.
    """
    from rmclaim import assist

    return assist.device_info(with_unique_id)
