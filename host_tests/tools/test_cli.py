"""The rmbench entry point: exit codes and the one-line error format."""

from __future__ import annotations

import subprocess
import sys

import pytest
from rmbench.cli import main


def test_boards_lists_profiles(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["boards"]) == 0
    out = capsys.readouterr().out
    assert "esp32s3   ESP32_GENERIC_S3   offset 0x0  self-claim" in out
    assert "esp32     ESP32_GENERIC      offset 0x1000  host claim" in out


def test_console_script_runs() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "rmbench.cli", "--version"], capture_output=True, text=True
    )
    assert proc.returncode == 0
    assert proc.stdout.startswith("rmbench ")


def test_missing_command_is_a_usage_error() -> None:
    with pytest.raises(SystemExit) as info:
        main([])
    assert info.value.code == 1
