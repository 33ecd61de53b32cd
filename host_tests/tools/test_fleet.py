"""rmbench fleet claim on virtual boards: parallel, per-board outcomes, one failure isolated."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from cryptography import x509
from rmbench import assist, fleet
from rmbench.boardsim import DEFAULT_WIFI
from rmbench.cli import main
from rmbench.deploy import ClaimConfig
from rmbench.profiles import get_profile
from rmbench.service.harness import RunningService

TOKEN = "fleet-token"


def test_eight_boards_one_with_a_wrong_token(
    claim_service: RunningService, tmp_path: Path
) -> None:
    claim_service.add_user(TOKEN, quota=10)
    target = assist.ServiceTarget(claim_service.base_url, claim_service.server_ca_file, TOKEN)
    config = ClaimConfig(
        claim_service.base_url,
        ca=claim_service.server_ca_pem,
        wifi_ssid=DEFAULT_WIFI[0],
        wifi_password=DEFAULT_WIFI[1],
    )
    plan = fleet.Plan(get_profile("esp32"), target, config)
    members = [fleet.Member() for _ in range(8)]
    members[5] = fleet.Member(token="not-a-token")
    steps: dict[int, list[str]] = {}
    report = fleet.run(
        members,
        plan,
        root=tmp_path / "vboards",
        progress=lambda i, step: steps.setdefault(i, []).append(step),
    )

    assert [o.board for o in report.outcomes] == [f"board-{i}" for i in range(1, 9)]
    assert [o.error for o in report.outcomes if o.result == "failed"] == ["HTTP 401: Unauthorized"]
    assert [o.result for o in report.outcomes] == ["claimed"] * 5 + ["failed"] + ["claimed"] * 2
    bad = report.outcomes[5]
    assert (bad.step, bad.error, bad.node_id) == ("claim initiate", "HTTP 401: Unauthorized", "")
    assert len(bad.mac) == 12
    good = [o for o in report.outcomes if o.result == "claimed"]
    assert len({o.node_id for o in good}) == 7 and all(len(o.node_id) == 22 for o in good)
    assert len({o.mac for o in report.outcomes}) == 8
    assert steps[0] == [
        "connect",
        "deploy",
        "identify",
        "provision",
        "claim stored",
        "claim initiate",
        "claim csr",
        "claim verify",
        "claim store",
    ]
    # Each board really holds a certificate for its node, and its config was written.
    for o in good:
        directory = tmp_path / "vboards" / o.board
        nvs = json.loads(next(directory.rglob("nvs.json")).read_text())["rmaker_creds"]
        cert = x509.load_pem_x509_certificates(bytes.fromhex(nvs["client_cert"][1]))[0]
        assert cert.subject.rfc4514_string() == f"CN={o.node_id}"
        written = json.loads(next(directory.rglob("rmclaim.json")).read_text())
        assert written["wifi_ssid"] == DEFAULT_WIFI[0]

    out = tmp_path / "report.csv"
    report.write(out)
    with out.open() as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == list(fleet.REPORT_FIELDS)
    fields = ("board", "mac", "node_id", "result", "step", "error")
    assert [tuple(r[f] for f in fields) for r in rows] == [
        tuple(getattr(o, f) for f in fields) for o in report.outcomes
    ]
    assert all(float(r["seconds"]) > 0 for r in rows)


def test_cli_fleet_with_a_json_report(
    claim_service: RunningService, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    claim_service.add_user(TOKEN, quota=10)
    report = tmp_path / "fleet.json"
    argv = ["fleet", "claim", "--board", "esp32c3", "--vboards", "2", "--token", TOKEN]
    argv += ["--service-dir", str(claim_service.state_dir), "--report", str(report)]
    argv += ["--vboard-dir", str(tmp_path / "vboards")]
    assert main(argv) == 0
    out = capsys.readouterr().out.splitlines()
    doc = json.loads(report.read_text())
    assert [b["result"] for b in doc["boards"]] == ["claimed", "claimed"]
    assert out[-1] == f"fleet: 2 of 2 claimed in {doc['seconds']:.1f} s; report: {report}"
    for line, row in zip(out, doc["boards"], strict=False):
        assert line.startswith(f"{row['board']}@{row['port']}: claimed as {row['node_id']} (MAC ")

    # Run again on the same boards: nothing to claim, and no quota spent.
    assert main(argv) == 0
    doc = json.loads(report.read_text())
    assert [b["result"] for b in doc["boards"]] == ["already claimed", "already claimed"]


def test_cli_fleet_needs_boards(
    claim_service: RunningService, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["fleet", "claim", "--board", "esp32", "--vboards", "0", "--token", TOKEN]
    assert main([*argv, "--service-dir", str(claim_service.state_dir)]) == 1
    assert capsys.readouterr().err == "rmbench: fleet claim: --vboards must be 1 or more, got 0\n"


def test_fleet_on_boards_given_by_port(claim_service: RunningService, tmp_path: Path) -> None:
    from rmbench import vboard

    claim_service.add_user(TOKEN, quota=10)
    root = tmp_path / "vboards"
    infos = [vboard.start("esp32s3", name=f"s3-{i}", root=root) for i in range(2)]
    try:
        target = assist.ServiceTarget(claim_service.base_url, claim_service.server_ca_file, TOKEN)
        plan = fleet.Plan(get_profile("esp32s3"), target)
        report = fleet.run([fleet.Member(i.pty) for i in infos], plan, root=root)
        assert [(o.board, o.port, o.result) for o in report.outcomes] == [
            (i.name, i.pty, "claimed") for i in infos
        ]
        assert [o.mac for o in report.outcomes] == [i.mac for i in infos]
    finally:
        for info in infos:
            vboard.stop(info)
