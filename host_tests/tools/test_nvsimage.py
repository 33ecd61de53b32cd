"""rmbench nvs-image: only with --host-key; claims against the local service or takes files."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from rmbench import certs, nvs, nvsimage
from rmbench.cli import main
from rmbench.nvsimage import HOST_KEY_NOTICE
from rmbench.profiles import get_profile
from rmbench.service.harness import RunningService

from .flashmock import app_image, combined_image, mock_board

MAC = "7CDFA1E25EA0"


def test_refused_without_host_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "nvs.bin"
    # The service URL points nowhere: the refusal comes before any claim is attempted.
    argv = ["nvs-image", "--out", str(out), "--board", "esp32", "--token", "t", "--mac", MAC]
    code = main([*argv, "--service-url", "https://127.0.0.1:9", "--ca", str(tmp_path / "ca")])
    assert code == 1
    assert capsys.readouterr().err == f"rmbench: nvs-image: {HOST_KEY_NOTICE}\n"
    assert not out.exists()


def test_claims_with_a_token_and_the_device_store_reads_the_image(
    claim_service: RunningService, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    claim_service.add_user("factory-token", quota=2)
    out = tmp_path / "nvs.bin"
    argv = ["nvs-image", "--out", str(out), "--board", "esp32", "--host-key"]
    argv += ["--service-url", claim_service.base_url, "--ca", str(claim_service.server_ca_file)]
    assert main([*argv, "--token", "factory-token", "--mac", MAC]) == 0
    assert out.stat().st_mode & 0o777 == 0o600  # it holds a private key
    data = out.read_bytes()
    assert len(data) == 0x6000

    creds = nvs.read_partition(data).namespaces["rmaker_creds"]
    node_id = creds["node_id"]
    assert isinstance(node_id, bytes) and len(node_id) == 22
    printed = capsys.readouterr().out
    assert f"node {node_id.decode()}, certificate valid until" in printed
    assert "write it with: esptool --port PORT write-flash 0x9000" in printed
    key_pem = creds["client_key"]
    cert_text = creds["client_cert"]
    assert isinstance(key_pem, bytes) and isinstance(cert_text, bytes)
    assert key_pem.startswith(b"-----BEGIN EC PRIVATE KEY-----")
    key = serialization.load_pem_private_key(key_pem, None)
    device_cert, ca_cert = x509.load_pem_x509_certificates(cert_text)
    assert device_cert.public_key() == key.public_key()
    cn = device_cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    assert cn == node_id.decode()
    # Issued by the service's claim CA, read from its state directory, not from the chain
    # under test; the chain's second certificate is that CA.
    claim_ca = x509.load_pem_x509_certificate(claim_service.claim_ca_file.read_bytes())
    device_cert.verify_directly_issued_by(claim_ca)
    assert ca_cert == claim_ca
    assert creds["mqtt_host"] == b"mqtt.rainmaker.espressif.com"
    random = creds["random"]
    assert isinstance(random, bytes) and len(random) == 64

    found = nvsimage.read_identity(data)  # the device library's own store code reads it
    assert found.claimed and found.node_id == node_id.decode()


def self_signed(key: ec.EllipticCurvePrivateKey, cn: str) -> str:
    now = datetime.datetime.now(datetime.UTC)
    end = now + datetime.timedelta(days=3)
    return certs.pem(certs.self_signed(key, certs.cn_name(cn), now, end, serial=1))


def test_takes_existing_files_and_the_image_survives_a_reflash(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    (tmp_path / "node.key").write_bytes(  # esp-rainmaker-cli writes PKCS#8
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    (tmp_path / "node.crt").write_text(self_signed(key, "NodeFromFiles"))
    out = tmp_path / "nvs.bin"
    argv = ["nvs-image", "--out", str(out), "--board", "esp32", "--host-key"]
    argv += ["--cert", str(tmp_path / "node.crt"), "--key", str(tmp_path / "node.key")]
    assert main([*argv, "--mqtt-host", "mqtt.factory.test"]) == 0
    capsys.readouterr()
    image = out.read_bytes()
    found = nvsimage.read_identity(image)
    assert (found.node_id, found.mqtt_host) == ("NodeFromFiles", "mqtt.factory.test")

    # A factory writes it at the nvs offset; a later `rmbench flash` keeps it.
    from rmbench import flash

    profile = get_profile("esp32")
    with mock_board("esp32") as board:
        board.write(0x9000, image)
        firmware = flash.inspect_image(combined_image(profile, app_image(profile)), profile)
        result = flash.flash(board.port, profile, firmware, before="no-reset", after="no-reset")
        assert result.identity is not None and result.identity.node_id == "NodeFromFiles"
        assert board.read(0x9000, 0x6000) == image


def test_a_certificate_for_another_key_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    other = ec.generate_private_key(ec.SECP256R1())
    (tmp_path / "node.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    (tmp_path / "node.crt").write_text(self_signed(other, "Node"))
    out = tmp_path / "nvs.bin"
    argv = ["nvs-image", "--out", str(out), "--board", "esp32s3", "--host-key"]
    code = main([*argv, "--cert", str(tmp_path / "node.crt"), "--key", str(tmp_path / "node.key")])
    assert code == 1
    assert capsys.readouterr().err == (
        f"rmbench: nvs-image: {tmp_path / 'node.crt'}: certificate: it is for another key, "
        "not this board's\n"
    )
    assert not out.exists()
