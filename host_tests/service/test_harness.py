"""The harness starts the real `rmbench serve`, reports what a client needs, and stops it."""

from __future__ import annotations

from pathlib import Path

from cryptography import x509
from rmbench.service.harness import RunningService, running_service

from .helpers import call, self_claim, split_chain


def test_fixture_serves_https_with_pinned_ca(claim_service: RunningService) -> None:
    assert claim_service.base_url.startswith("https://localhost:")
    r = call(claim_service, "GET", "/mqtt_host")
    assert r.status == 200
    assert r.json()["mqtt_host"] == "mqtt.rainmaker.espressif.com"
    assert claim_service.server_ca_pem.startswith("-----BEGIN CERTIFICATE-----")


def test_self_claim_end_to_end_and_restart_keeps_state(tmp_path: Path) -> None:
    state = tmp_path / "svc"
    uid = bytes(range(16))
    with running_service(state) as svc:
        svc.register("7C:DF:A1:00:03:3B", uid)
        chain, key = self_claim(svc, "7CDFA100033B", uid)
        first_ca = svc.claim_ca_pem
        process = svc.process
    assert process.poll() is not None  # stopped: no process left behind
    device, issuer = split_chain(chain)
    assert device.public_key() == key.public_key()
    assert issuer == x509.load_pem_x509_certificate(first_ca.encode())
    with running_service(state) as svc:
        # The same CAs, and the registration survived the restart.
        assert svc.claim_ca_pem == first_ca
        self_claim(svc, "7CDFA100033B", uid)
