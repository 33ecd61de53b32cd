"""`make demo` (rmbench demo): the first-boot story (claim, MQTT, the user's mapping), and nothing
left running afterwards."""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import processes_under

# esp-rainmaker-cli's venv, made by the service tests' fixture (pytest puts host_tests/ on the
# path; mypy does not see it).
rainmaker_cli = importlib.import_module("service.test_rainmaker_cli").rainmaker_cli


@pytest.mark.needs("virtual")
@pytest.mark.parametrize(
    ("profile", "way"), [("esp32s3", "self-claimed"), ("esp32", "claimed with a token")]
)
def test_demo_claims_once_and_stops_everything(tmp_path: Path, profile: str, way: str) -> None:
    rmbench = Path(sys.executable).with_name("rmbench")
    argv = [str(rmbench), "demo", "--board", profile, "--workdir", str(tmp_path / "demo")]
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as p:
        try:
            out, err = p.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            p.terminate()  # the demo stops what it started (and its board dies with it)
            out, err = p.communicate(timeout=30)
            raise AssertionError(f"the demo hung:\n{out}\n{err}") from None
    assert p.returncode == 0, out + err
    summary = re.search(rf"^{profile} ([0-9A-F]{{12}}) {way}", out, re.MULTILINE)
    assert summary, out
    node_id = re.search(r"^  node id +(\S+)$", out, re.MULTILINE)
    assert node_id, out
    assert re.search(rf"^  subject +CN={node_id.group(1)}$", out, re.MULTILINE)
    assert re.search(r"^  issuer +CN=ESP-RainMaker local claim CA", out, re.MULTILINE)
    assert re.search(r"^  expires +20\d\d-\d\d-\d\d ", out, re.MULTILINE)
    assert re.search(r"^  time taken +\d+\.\d\d s from reset to stored credentials$", out, re.M)
    assert "board> rmclaim: step=verify ok" in out
    reboot = re.search(r"^  reboot +identity read from NVS, no claim: (.*)$", out, re.MULTILINE)
    assert reboot and reboot.group(1) == "config wifi time claimed mqtt nodeconfig"
    # Then MQTT with that certificate, and the user's mapping confirmed by the board's request.
    assert re.search(
        rf"^  mqtt +connected to mqtts://localhost:\d+ as {node_id.group(1)} with that", out, re.M
    )
    assert "board> rmclaim: step=mapping ok" in out
    mapping = re.search(r"^  mapping +user (\S+): confirmed; the user's nodes: (\S+)$", out, re.M)
    assert mapping and mapping.group(2) == node_id.group(1), out
    if profile == "esp32s3":
        assert node_id.group(1) == summary.group(1)  # self-claim: the node id is the MAC
    assert f"logs in {tmp_path / 'demo'}" in out
    assert processes_under(tmp_path) == []


@pytest.mark.needs("virtual")
@pytest.mark.parametrize("claimed_first", [False, True])
def test_field_demo_provisions_claims_maps_and_stops_everything(
    tmp_path: Path, rainmaker_cli: Path, claimed_first: bool
) -> None:
    rmbench = Path(sys.executable).with_name("rmbench")
    argv = [str(rmbench), "demo", "--field", "--workdir", str(tmp_path / "demo")]
    argv += ["--claimed-first"] if claimed_first else []
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as p:
        try:
            out, err = p.communicate(timeout=180)
        except subprocess.TimeoutExpired:
            p.terminate()
            out, err = p.communicate(timeout=30)
            raise AssertionError(f"the demo hung:\n{out}\n{err}") from None
    assert p.returncode == 0, out + err
    summary = re.search(
        r"^esp32s3 ([0-9A-F]{12}) provisioned in the field by esp-rainmaker-cli:$", out, re.M
    )
    assert summary, out
    soft_ap = re.search(
        r"^  soft-AP +PROV_([0-9a-f]{6}) \(192\.168\.4\.1:80 here at 127\.0\.0\.1:\d+\), "
        r"pop ([0-9a-f]{8})$",
        out,
        re.M,
    )
    assert soft_ap and soft_ap.group(1) == summary.group(1)[6:].lower(), out
    assert "  cli>         ==== WiFi state: Connected ====" in out
    assert re.search(rf"^  node id +{summary.group(1)}$", out, re.M)  # self-claimed: the MAC
    if claimed_first:
        assert "  mapped       to user demo-user by challenge-response (no MQTT needed)" in out
        assert (
            f"  cli>         ✅ Node {summary.group(1)} added to your account successfully!" in out
        )
    else:
        assert "  user mapping user demo-user and its secret key kept for the MQTT step" in out
        assert "board> rmclaim: step=verify ok" in out
    assert processes_under(tmp_path) == []
