"""rmclaim.config: defaults; every wrong key, type and value refused, the message naming it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rmbench.micropython import Interpreter

from .support import run_device

CA = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
BASE = {"service_url": "https://claim.local:8443", "ca": CA}

LOAD = """
from rmclaim import config
res = []
for src in ARGS:
    try:
        res.append({"ok": config.as_dict(config.load(src))})
    except Exception as e:
        res.append(err(e))
out(res)
"""


def load_all(interp: Interpreter, sources: list[Any]) -> list[dict[str, Any]]:
    res: list[dict[str, Any]] = run_device(interp, LOAD, sources)
    return res


def test_defaults(interp: Interpreter) -> None:
    [res] = load_all(interp, [BASE])
    assert res["ok"] == {
        "service_url": "https://claim.local:8443",
        "ca": CA,
        "claim_ca": None,
        "mode": "auto",
        "access_token": None,
        "allow_insecure_http": False,
        "max_attempts": 0,
        "backoff_base_s": 2,
        "backoff_cap_s": 300,
        "timeout_s": 15,
        "matter": False,
        "wifi_ssid": None,
        "wifi_password": None,
        "wifi_timeout_s": 15,
        "status_led": None,
        "prov_pop": None,
        "prov_sec": 1,
        "prov_timeout_s": 1800,
        "prov_name": None,
        "mqtt_ca": None,
        "mqtt_host": None,
        "mqtt_port": 8883,
        "mqtt_keepalive_s": 120,
    }


def test_every_key_set(interp: Interpreter) -> None:
    full = {
        **BASE,
        "claim_ca": CA,
        "mode": "token",
        "access_token": "tok",
        "allow_insecure_http": False,
        "max_attempts": 3,
        "backoff_base_s": 0.5,
        "backoff_cap_s": 60,
        "timeout_s": 2.5,
        "matter": True,
        "wifi_ssid": "bench",
        "wifi_password": "pw",
        "wifi_timeout_s": 30,
        "status_led": "rgb:38",
        "prov_pop": "abcd1234",
        "prov_sec": 0,
        "prov_timeout_s": 600,
        "prov_name": "PROV_bench",
        "mqtt_ca": CA,
        "mqtt_host": "a1b2c3-ats.iot.us-east-1.amazonaws.com",
        "mqtt_port": 443,
        "mqtt_keepalive_s": 30,
    }
    [res] = load_all(interp, [full])
    assert res["ok"] == full


BAD_POP = "config: prov_pop must be 1 to 64 printable ASCII characters, no spaces"
# (config changes, the exact message)
BAD: list[tuple[dict[str, Any], str]] = [
    (
        {"colour": "red"},
        "config: unknown key 'colour'; known keys: service_url, ca, claim_ca, "
        "mode, access_token, allow_insecure_http, max_attempts, backoff_base_s, backoff_cap_s, "
        "timeout_s, matter, wifi_ssid, wifi_password, wifi_timeout_s, status_led, mqtt_ca, "
        "mqtt_host, mqtt_port, mqtt_keepalive_s, prov_pop, prov_sec, prov_timeout_s, prov_name",
    ),
    ({"service_url": 5}, "config: service_url must be a string, got 5"),
    ({"ca": ["x"]}, "config: ca must be a string, got ['x']"),
    ({"mode": None}, "config: mode must be a string, got None"),
    ({"mode": "later"}, "config: mode must be one of self, token, auto, got 'later'"),
    ({"access_token": 7}, "config: access_token must be a string, got 7"),
    ({"access_token": ""}, "config: access_token must not be empty (leave it out instead)"),
    ({"mode": "token"}, "config: mode 'token' needs access_token"),
    ({"allow_insecure_http": 1}, "config: allow_insecure_http must be true or false, got 1"),
    ({"max_attempts": True}, "config: max_attempts must be an integer, got True"),
    ({"max_attempts": 2.0}, "config: max_attempts must be an integer, got 2.0"),
    ({"max_attempts": -1}, "config: max_attempts must be 0 (keep trying) or more, got -1"),
    ({"backoff_base_s": "1"}, "config: backoff_base_s must be a number, got '1'"),
    ({"backoff_base_s": 0}, "config: backoff_base_s must be more than 0, got 0"),
    ({"timeout_s": -2}, "config: timeout_s must be more than 0, got -2"),
    ({"backoff_cap_s": 1}, "config: backoff_cap_s (1) must be at least backoff_base_s (2)"),
    ({"matter": "yes"}, "config: matter must be true or false, got 'yes'"),
    ({"wifi_ssid": 3}, "config: wifi_ssid must be a string, got 3"),
    ({"wifi_password": False}, "config: wifi_password must be a string, got False"),
    ({"wifi_timeout_s": 0}, "config: wifi_timeout_s must be more than 0, got 0"),
    ({"prov_pop": ""}, "config: prov_pop must be 1 to 64 printable ASCII characters, no spaces"),
    (
        {"prov_pop": "a b"},
        "config: prov_pop must be 1 to 64 printable ASCII characters, no spaces",
    ),
    ({"prov_pop": "é"}, "config: prov_pop must be 1 to 64 printable ASCII characters, no spaces"),
    (
        {"prov_sec": 2},
        "config: prov_sec must be 1 (or 0 on a bench; security 2 is not supported), got 2",
    ),
    ({"prov_sec": True}, "config: prov_sec must be an integer, got True"),
    ({"prov_timeout_s": 0}, "config: prov_timeout_s must be more than 0, got 0"),
    ({"prov_name": ""}, "config: prov_name must be 1 to 32 bytes (an SSID), got ''"),
    (
        {"prov_name": "x" * 33},
        "config: prov_name must be 1 to 32 bytes (an SSID), got '" + "x" * 33 + "'",
    ),
    (
        {"status_led": "rgb"},
        "config: status_led must be rgb:PIN, gpio:PIN (PIN 0 to 48) or none, got 'rgb'",
    ),
    (
        {"status_led": "led:2"},
        "config: status_led must be rgb:PIN, gpio:PIN (PIN 0 to 48) or none, got 'led:2'",
    ),
    (
        {"status_led": "gpio:49"},
        "config: status_led must be rgb:PIN, gpio:PIN (PIN 0 to 48) or none, got 'gpio:49'",
    ),
    (
        # ESP32 firmware resolves IPv4 only (ports/esp32/modsocket.c getaddrinfo)
        {"service_url": "https://[::1]:8443"},
        "config: service_url 'https://[::1]:8443' names an IPv6 address; "
        "ESP32 firmware reaches IPv4 only",
    ),
    (
        {"ca": None},
        "config: ca is required: the PEM text of the CA that signs the service's TLS certificate",
    ),
    ({"ca": "not pem"}, "config: ca must be PEM text with a -----BEGIN CERTIFICATE----- line"),
    (
        {"claim_ca": "x"},
        "config: claim_ca must be PEM text with a -----BEGIN CERTIFICATE----- line",
    ),
    ({"mqtt_ca": "x"}, "config: mqtt_ca must be PEM text with a -----BEGIN CERTIFICATE----- line"),
    ({"mqtt_port": 0}, "config: mqtt_port must be 1 to 65535, got 0"),
    ({"mqtt_port": 8883.0}, "config: mqtt_port must be an integer, got 8883.0"),
    ({"mqtt_keepalive_s": 65536}, "config: mqtt_keepalive_s must be 1 to 65535, got 65536"),
    ({"mqtt_host": ""}, "config: mqtt_host must be a host name, got ''"),
    ({"mqtt_host": "mqtts://x/"}, "config: mqtt_host must be a host name, got 'mqtts://x/'"),
    ({"service_url": "ftp://x"}, "config: service_url must start with https://, got 'ftp://x'"),
    ({"service_url": "https:///claim"}, "config: service_url 'https:///claim' has no host"),
    (
        {"service_url": "http://claim.local"},
        "config: service_url 'http://claim.local' is plain "
        "http://, refused unless allow_insecure_http is true (bench use only)",
    ),
]


def test_bad_values_named(interp: Interpreter) -> None:
    res = load_all(interp, [{**BASE, **change} for change, _ in BAD])
    for (change, message), r in zip(BAD, res, strict=True):
        assert r.get("kind") == "ConfigError", (change, r)
        assert r["error"] == message, change


def test_insecure_http_allowed_when_asked(interp: Interpreter) -> None:
    [res] = load_all(
        interp, [{"service_url": "http://127.0.0.1:8080", "allow_insecure_http": True}]
    )
    assert res["ok"]["service_url"] == "http://127.0.0.1:8080"
    assert res["ok"]["ca"] is None


def test_file_sources(interp: Interpreter, tmp_path: Path) -> None:
    good = tmp_path / "rmclaim.json"
    good.write_text(json.dumps({"service_url": "https://h", "ca": CA, "mode": "self"}))
    broken = tmp_path / "broken.json"
    broken.write_text('{"mode": "self",')
    array = tmp_path / "array.json"
    array.write_text("[1, 2]")
    missing = tmp_path / "missing.json"
    res = load_all(interp, [str(good), str(broken), str(array), str(missing), 42])
    assert res[0]["ok"]["mode"] == "self"
    assert res[1]["kind"] == "ConfigError"
    assert res[1]["error"].startswith(f"config: {broken} is not valid JSON")
    assert res[2]["error"] == f"config: {array} must hold a JSON object, got list"
    assert res[3]["kind"] == "ConfigError"
    assert res[3]["error"].startswith(f"config: cannot read {missing}")
    assert res[4]["error"] == "config: wanted a dict or a file path, got int"
