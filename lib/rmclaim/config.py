"""Claim configuration: load /rmclaim.json (or a dict) and check every key, type and value."""

from rmclaim.errors import ConfigError

DEFAULT_PATH = "/rmclaim.json"
DEFAULT_SERVICE_URL = "https://esp-claiming.rainmaker.espressif.com"

# (key, kind, default). Kinds: "str" (optional when the default is None), "bool", "int" (an
# int, not a bool), "num" (int or float). Besides the claim's keys: claim_ca (a pinned PEM of
# the CA that signs device certificates; without it the CA in the verify reply is used), and
# what the firmware (firmware/rmboot.py) reads from the same file: wifi_ssid, wifi_password,
# wifi_timeout_s (how long one join may take before the board says why it failed),
# status_led ("rgb:PIN", "gpio:PIN" or "none"; default: the chip's DevKit LED); field
# provisioning's, for a config without wifi_ssid (lib/rmprov): prov_pop (the proof of
# possession; default: made once per board from its stored random bytes), prov_sec (1, or 0
# on a bench: no encryption, no pop), prov_timeout_s (how long the soft-AP stays open) and
# prov_name (its SSID; default PROV_ and the last 3 bytes of the MAC); and what the MQTT step
# after the claim (lib/rmnode) reads: mqtt_ca (PEM of the CA that signs the broker's
# certificate; without it the board opens no MQTT connection), mqtt_host (instead of the one
# the claim stored), mqtt_port, mqtt_keepalive_s.
_KEYS = (
    ("service_url", "str", DEFAULT_SERVICE_URL),
    ("ca", "str", None),
    ("claim_ca", "str", None),
    ("mode", "str", "auto"),
    ("access_token", "str", None),
    ("allow_insecure_http", "bool", False),
    ("max_attempts", "int", 0),
    ("backoff_base_s", "num", 2),
    ("backoff_cap_s", "num", 300),
    ("timeout_s", "num", 15),
    ("matter", "bool", False),
    ("wifi_ssid", "str", None),
    ("wifi_password", "str", None),
    ("wifi_timeout_s", "num", 15),
    ("status_led", "str", None),
    ("mqtt_ca", "str", None),
    ("mqtt_host", "str", None),
    ("mqtt_port", "int", 8883),
    ("mqtt_keepalive_s", "int", 120),
    ("prov_pop", "str", None),
    ("prov_sec", "int", 1),
    ("prov_timeout_s", "num", 1800),
    ("prov_name", "str", None),
)
_MODES = ("self", "token", "auto")
_PEM_CERT = "-----BEGIN CERTIFICATE-----"
_KIND_TEXT = {"str": "a string", "bool": "true or false", "int": "an integer", "num": "a number"}


class Config:
    # Validated settings, one attribute per key of _KEYS; build it with load(). Plain data, no
    # methods: holding one does not keep this module loaded.
    service_url = DEFAULT_SERVICE_URL
    ca = None
    claim_ca = None
    mode = "auto"
    access_token = None
    allow_insecure_http = False
    max_attempts = 0
    backoff_base_s = 2
    backoff_cap_s = 300
    timeout_s = 15
    matter = False
    wifi_ssid = None
    wifi_password = None
    wifi_timeout_s = 15
    status_led = None
    mqtt_ca = None
    mqtt_host = None
    mqtt_port = 8883
    mqtt_keepalive_s = 120
    prov_pop = None
    prov_sec = 1
    prov_timeout_s = 1800
    prov_name = None


def as_dict(cfg):
    out = {}  # type: dict
    for key, _kind, _default in _KEYS:
        out[key] = getattr(cfg, key)
    return out


def _type_ok(kind, v):
    if kind == "str":
        return isinstance(v, str)
    if kind == "bool":
        return isinstance(v, bool)
    if isinstance(v, bool):
        return False
    if kind == "int":
        return isinstance(v, int)
    return isinstance(v, (int, float))


def _read(path):
    import json

    try:
        with open(path) as f:
            text = f.read()
    except OSError as e:
        raise ConfigError("config: cannot read %s: %s" % (path, e)) from e
    try:
        data = json.loads(text)
    except ValueError as e:
        raise ConfigError("config: %s is not valid JSON: %s" % (path, e)) from e
    if not isinstance(data, dict):
        raise ConfigError(
            "config: %s must hold a JSON object, got %s" % (path, type(data).__name__)
        )
    return data


def load(source=None):
    # source: None (read /rmclaim.json), a path, a dict, or a Config (returned as it is).
    if isinstance(source, Config):
        return source
    where = "config"
    if source is None or isinstance(source, str):
        where = source or DEFAULT_PATH
        source = _read(where)
    if not isinstance(source, dict):
        raise ConfigError("config: wanted a dict or a file path, got %s" % type(source).__name__)
    known = []
    for key, _kind, _default in _KEYS:
        known.append(key)
    for key in source:
        if key not in known:
            raise ConfigError(
                "%s: unknown key %r; known keys: %s" % (where, key, ", ".join(known))
            )
    values = {}  # type: dict
    for key, kind, default in _KEYS:
        v = source.get(key, default)
        if v is None and default is None:
            values[key] = None
            continue
        if not _type_ok(kind, v):
            raise ConfigError("%s: %s must be %s, got %r" % (where, key, _KIND_TEXT[kind], v))
        values[key] = v
    _check_values(where, values)
    cfg = Config()
    for key in values:
        # Only what differs from the default goes into the instance (its dict stays small,
        # and the claim holds it throughout); the class attribute answers for the rest.
        v = values[key]
        default = getattr(Config, key)
        if v != default or type(v) is not type(default):
            setattr(cfg, key, v)
    return cfg


def _check_values(where, v):
    url = v["service_url"]
    if url.startswith("http://"):
        if not v["allow_insecure_http"]:
            raise ConfigError(
                "%s: service_url %r is plain http://, refused unless allow_insecure_http is true "
                "(bench use only)" % (where, url)
            )
    elif not url.startswith("https://"):
        raise ConfigError("%s: service_url must start with https://, got %r" % (where, url))
    host = url.split("://", 1)[1].split("/", 1)[0]
    if not host or host.startswith(":"):
        raise ConfigError("%s: service_url %r has no host" % (where, url))
    if host.startswith("["):
        # socket.getaddrinfo on ESP32 fills in IPv4 addresses only (ports/esp32/modsocket.c,
        # v1.23.0-v1.28.0): an IPv6 service can never be reached.
        raise ConfigError(
            "%s: service_url %r names an IPv6 address; ESP32 firmware reaches IPv4 only"
            % (where, url)
        )
    if url.startswith("https://") and v["ca"] is None:
        raise ConfigError(
            "%s: ca is required: the PEM text of the CA that signs the service's TLS certificate"
            % where
        )
    for key in ("ca", "claim_ca", "mqtt_ca"):
        if v[key] is not None and _PEM_CERT not in v[key]:
            raise ConfigError("%s: %s must be PEM text with a %s line" % (where, key, _PEM_CERT))
    if v["mode"] not in _MODES:
        raise ConfigError(
            "%s: mode must be one of %s, got %r" % (where, ", ".join(_MODES), v["mode"])
        )
    if v["access_token"] is not None and not v["access_token"]:
        raise ConfigError("%s: access_token must not be empty (leave it out instead)" % where)
    if v["mode"] == "token" and v["access_token"] is None:
        raise ConfigError("%s: mode 'token' needs access_token" % where)
    if v["max_attempts"] < 0:
        raise ConfigError(
            "%s: max_attempts must be 0 (keep trying) or more, got %r" % (where, v["max_attempts"])
        )
    led = v["status_led"]
    if led is not None and led != "none":
        kind, _, pin = led.partition(":")
        if kind not in ("rgb", "gpio") or not pin.isdigit() or int(pin) > 48:
            raise ConfigError(
                "%s: status_led must be rgb:PIN, gpio:PIN (PIN 0 to 48) or none, got %r"
                % (where, led)
            )
    pop = v["prov_pop"]
    if pop is not None and not (0 < len(pop) <= 64 and all(32 < ord(c) < 127 for c in pop)):
        raise ConfigError(
            "%s: prov_pop must be 1 to 64 printable ASCII characters, no spaces" % where
        )
    if v["prov_sec"] not in (0, 1):
        raise ConfigError(
            "%s: prov_sec must be 1 (or 0 on a bench; security 2 is not supported), got %r"
            % (where, v["prov_sec"])
        )
    name = v["prov_name"]
    if name is not None and not 0 < len(name.encode()) <= 32:
        raise ConfigError("%s: prov_name must be 1 to 32 bytes (an SSID), got %r" % (where, name))
    # MQTT 3.1.1 carries both in 16 bits; a keep-alive of 0 (none) would leave a dead link
    # unnoticed (AWS IoT takes 30 to 1200 s).
    for key in ("mqtt_port", "mqtt_keepalive_s"):
        if not 0 < v[key] < 65536:
            raise ConfigError("%s: %s must be 1 to 65535, got %r" % (where, key, v[key]))
    if v["mqtt_host"] is not None and (not v["mqtt_host"] or "/" in v["mqtt_host"]):
        raise ConfigError("%s: mqtt_host must be a host name, got %r" % (where, v["mqtt_host"]))
    for key in ("backoff_base_s", "timeout_s", "wifi_timeout_s", "prov_timeout_s"):
        if not v[key] > 0:
            raise ConfigError("%s: %s must be more than 0, got %r" % (where, key, v[key]))
    if v["backoff_cap_s"] < v["backoff_base_s"]:
        raise ConfigError(
            "%s: backoff_cap_s (%r) must be at least backoff_base_s (%r)"
            % (where, v["backoff_cap_s"], v["backoff_base_s"])
        )
