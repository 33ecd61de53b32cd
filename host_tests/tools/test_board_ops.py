"""provision, register, claim (host-assisted) and status on virtual boards, against the service."""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cryptography import x509
from rmbench import assist, deploy, provision, status, vboard
from rmbench.board import VirtualBoard
from rmbench.boardsim import DEFAULT_WIFI
from rmbench.cli import main
from rmbench.deploy import ClaimConfig
from rmbench.errors import DeviceError
from rmbench.service.harness import RunningService

TOKEN = "bench-token"


Start = Callable[[str], VirtualBoard]


@pytest.fixture
def start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Start]:
    """start(profile): a running virtual board with the library deployed, its port let go (so
    the CLI can open it; the test's Board reopens it on use). All are stopped at the end."""
    root = tmp_path / "vboards"
    monkeypatch.setenv("RMBENCH_VBOARD_DIR", str(root))  # where the CLI looks them up
    started: list[VirtualBoard] = []

    def start_one(profile: str) -> VirtualBoard:
        b = VirtualBoard(vboard.start(profile, name=f"{profile}-{len(started)}", root=root))
        started.append(b)
        deploy.deploy(b, config=None)
        b.close()
        return b

    yield start_one
    for b in started:
        b.close()
        vboard.stop(b.info)


def service_args(svc: RunningService) -> list[str]:
    return ["--service-url", svc.base_url, "--ca", str(svc.server_ca_file)]


# --- provision ----------------------------------------------------------------------------------


def test_provision_writes_a_config_the_board_loads(
    claim_service: RunningService,
    start: Start,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    b = start("esp32s3")
    wifi = ["--wifi-ssid", DEFAULT_WIFI[0], "--wifi-password", DEFAULT_WIFI[1]]
    argv = ["provision", "--port", b.port, "--board", "esp32s3", *service_args(claim_service)]
    assert main([*argv, *wifi, "--mode", "self"]) == 0
    out = capsys.readouterr().out
    assert out == (
        f"{b.name}@{b.port}: wrote /rmclaim.json (ca, mode, service_url, wifi_password, "
        f"wifi_ssid) in " + out.rsplit(" in ", 1)[1]
    )
    written = json.loads(b.fs_read("/rmclaim.json"))
    assert written == {
        "service_url": claim_service.base_url,
        "ca": claim_service.server_ca_pem,
        "mode": "self",
        "wifi_ssid": DEFAULT_WIFI[0],
        "wifi_password": DEFAULT_WIFI[1],
    }
    loaded = b.exec("from rmclaim import config\nc = config.load()\nprint(c.mode, c.service_url)")
    assert loaded.strip() == f"self {claim_service.base_url}"
    assert not b.fs_exists("/rmclaim.json.tmp")


def test_after_a_flash_the_library_is_deployed_and_the_config_written(
    claim_service: RunningService, tmp_path: Path
) -> None:
    # What `rmbench flash` does once esptool is done, on a board with nothing deployed yet.
    root = tmp_path / "vboards"
    b = VirtualBoard(vboard.start("esp32c6", name="fresh", root=root))
    try:
        config = ClaimConfig(
            claim_service.base_url,
            ca=claim_service.server_ca_pem,
            wifi_ssid=DEFAULT_WIFI[0],
            wifi_password=DEFAULT_WIFI[1],
        )
        deployed, provisioned = provision.deploy_and_provision(b, config)
        assert deployed.written > 0 and provisioned is not None
        assert b.fs_exists("/main.py") and b.fs_exists("/lib/rmclaim/claim.mpy")
        assert json.loads(b.fs_read("/rmclaim.json"))["service_url"] == claim_service.base_url
        assert b.eval("__import__('rmclaim').device_info()")["platform"] == "esp32c6"
    finally:
        b.close()
        vboard.stop(b.info)


def test_provision_rejects_bad_input_and_writes_nothing(
    claim_service: RunningService,
    start: Start,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    b = start("esp32")
    b.fs_write("/rmclaim.json", b'{"mode": "auto"}\n')
    b.close()
    ca = str(claim_service.server_ca_file)
    url = claim_service.base_url
    base = ["provision", "--port", b.port, "--board", "esp32"]
    wifi = ["--wifi-ssid", "bench", "--wifi-password", "bench-pass"]
    where = f"rmbench: provision: esp32@{b.port}: validate: "
    cases = [
        (
            [*base, "--service-url", "http://127.0.0.1:8080", *wifi],
            where + "config: service_url 'http://127.0.0.1:8080' is plain http://, refused "
            "unless allow_insecure_http is true (bench use only)",
        ),
        (
            [*base, "--service-url", url, "--ca", ca, *wifi, "--mode", "self"],
            where + "board esp32 cannot self-claim; use mode token (with an access token) or "
            "host-assisted claiming (rmbench claim)",
        ),
        (
            [
                *base,
                "--service-url",
                url,
                "--ca",
                ca,
                "--wifi-ssid",
                "bench",
                "--wifi-password",
                "short",
            ],
            where + "Wi-Fi password must be empty (open network), 8 to 63 ASCII characters, "
            "or 64 hex digits; got 5 characters",
        ),
        (
            # No Wi-Fi at all is a board that provisions itself in the field; half of it is not.
            [*base, "--service-url", url, "--ca", ca, "--wifi-password", "bench-pass"],
            where + "a Wi-Fi password without an SSID: set the Wi-Fi SSID too",
        ),
        (
            [*base, "--service-url", url, "--ca", ca, "--prov-pop", "has space"],
            where + "config: prov_pop must be 1 to 64 printable ASCII characters, no spaces",
        ),
        (
            [*base, "--service-url", url, "--ca", ca, *wifi, "--max-attempts", "-1"],
            where + "config: max_attempts must be 0 (keep trying) or more, got -1",
        ),
        (
            [*base, "--service-url", url, "--ca", str(tmp_path / "missing.pem"), *wifi],
            f"rmbench: provision: --ca {tmp_path / 'missing.pem'}: No such file or directory",
        ),
    ]
    for argv, message in cases:
        assert main(argv) == 1, argv
        assert capsys.readouterr().err.splitlines()[0] == message
    assert b.fs_read("/rmclaim.json") == b'{"mode": "auto"}\n'


# --- register, then self-claim ------------------------------------------------------------------


def test_register_then_self_claim(
    claim_service: RunningService,
    start: Start,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    b = start("esp32s3")
    state = ["--state-dir", str(claim_service.state_dir)]
    assert main(["register", *state, "--port", b.port, "--board", "esp32s3"]) == 0
    assert capsys.readouterr().out == f"registered {b.sim.mac}\n"

    wifi = ["--wifi-ssid", DEFAULT_WIFI[0], "--wifi-password", DEFAULT_WIFI[1]]
    argv = ["provision", "--port", b.port, "--board", "esp32s3", *service_args(claim_service)]
    assert main([*argv, *wifi, "--mode", "self"]) == 0
    since = b.reset()
    claimed = b.expect_status("claimed", "ok", timeout=120, since=since)
    assert claimed.fields["node_id"] == b.sim.mac  # self-claimed nodes are named by their MAC
    b.close()
    capsys.readouterr()

    assert main(["status", "--port", b.port, "--board", "esp32s3"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(
        f"{b.name}@{b.port} (esp32s3, MAC {b.sim.mac}): claimed as {b.sim.mac};"
    )


def test_register_refuses_a_chip_that_cannot_self_claim(
    claim_service: RunningService,
    start: Start,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    b = start("esp32")
    state = ["--state-dir", str(claim_service.state_dir)]
    assert main(["register", *state, "--port", b.port, "--board", "esp32"]) == 1
    assert capsys.readouterr().err.splitlines()[0] == (
        f"rmbench: register: {b.name}@{b.port}: identify: esp32 cannot self-claim, so there is "
        f"nothing to register; claim it with a token instead: rmbench claim --port {b.port} "
        "--board esp32 ..."
    )


# --- host-assisted claim and status -------------------------------------------------------------


def test_host_assisted_claim_of_an_esp32_and_status(
    claim_service: RunningService,
    start: Start,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    claim_service.add_user(TOKEN, quota=5)
    b = start("esp32")
    assert main(["status", "--port", b.port, "--board", "esp32"]) == 0
    assert capsys.readouterr().out == f"{b.name}@{b.port} (esp32, MAC {b.sim.mac}): not claimed\n"

    argv = ["claim", "--port", b.port, "--board", "esp32", "--token", TOKEN]
    assert main([*argv, *service_args(claim_service)]) == 0
    out = capsys.readouterr().out
    node_id = out.split("claimed as ", 1)[1].split(" ", 1)[0]
    assert len(node_id) == 22
    assert out.startswith(f"{b.name}@{b.port}: claimed as {node_id} (MAC {b.sim.mac}) in ")

    # The key was made on the board and never left it; the certificate matches it.
    creds = b.nvs()["rmaker_creds"]
    key_pem, cert_text = creds["client_key"], creds["client_cert"]
    assert isinstance(key_pem, bytes) and isinstance(cert_text, bytes)
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(key_pem, None)
    cert = x509.load_pem_x509_certificates(cert_text)[0]
    assert cert.public_key() == key.public_key()
    # Made right after a soft reset into the raw REPL, where no radio is on: the board turned
    # its station on first, so os.urandom was seeded (it is a PRNG with no RF subsystem on).
    assert b.sim.urandom_calls() == [(32, True), (64, True)]

    s = status.status(b)
    b.close()
    claim_ca = x509.load_pem_x509_certificate(claim_service.claim_ca_file.read_bytes())
    assert (s.node_id, s.subject, s.issuer) == (
        node_id,
        f"CN={node_id}",
        claim_ca.subject.rfc4514_string(),
    )
    assert s.not_after is not None
    years = (s.not_after - datetime.datetime.now(datetime.UTC)).days / 365.25
    assert 3.9 < years <= 4.0

    assert main([*argv, *service_args(claim_service)]) == 0
    assert capsys.readouterr().out == (
        f"{b.name}@{b.port}: already claimed as {node_id}; nothing done\n"
    )


def test_a_certificate_for_another_key_is_refused_and_nothing_stored(
    claim_service: RunningService, start: Start
) -> None:
    claim_service.add_user(TOKEN, quota=5)
    claim_service.inject_fault("wrong_key_cert", path="verify")
    b = start("esp32")
    target = assist.ServiceTarget(claim_service.base_url, claim_service.server_ca_file, TOKEN)
    with pytest.raises(DeviceError) as info:
        assist.claim(b, target)
    err = info.value
    assert (err.board, err.step, err.device_type) == (b.name, "store", "BadCertificate")
    creds = b.nvs().get("rmaker_creds", {})
    assert "client_key" in creds  # the key made for the CSR stays for the next attempt
    assert "client_cert" not in creds and "node_id" not in creds
    assert status.status(b).claimed is False
    assert not b.fs_exists("/.rmbench-cert.pem")


def test_status_of_all_running_virtual_boards(
    claim_service: RunningService,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = tmp_path / "vboards"
    monkeypatch.setenv("RMBENCH_VBOARD_DIR", str(root))
    claim_service.add_user(TOKEN, quota=5)
    target = assist.ServiceTarget(claim_service.base_url, claim_service.server_ca_file, TOKEN)
    # Not owned by the test's Board objects: closing those lets go of the ports only.
    boards = [VirtualBoard(vboard.start("esp32c3", name=f"c3-{i}", root=root)) for i in range(2)]
    try:
        for b in boards:
            deploy.deploy(b, config=None)
        node_id = assist.claim(boards[1], target).node_id
        for b in boards:
            b.close()
        assert main(["status"]) == 0
        lines = capsys.readouterr().out.splitlines()
        assert lines[0] == f"c3-0@{boards[0].port} (esp32c3, MAC {boards[0].sim.mac}): not claimed"
        assert lines[1].startswith(
            f"c3-1@{boards[1].port} (esp32c3, MAC {boards[1].sim.mac}): claimed as {node_id}; "
            f"subject CN={node_id}; issuer "
        )
        assert len(lines) == 2
    finally:
        for info in vboard.list_boards(root=root):
            vboard.stop(info)
