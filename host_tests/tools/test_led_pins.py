"""firmware/rmboot.py's status LED pin per chip agrees with every board profile (boards/*.toml)."""

from __future__ import annotations

from pathlib import Path

import pytest
from rmbench import FIRMWARE_DIR
from rmbench.boardsim import create_board
from rmbench.micropython import Interpreter
from rmbench.profiles import all_profiles


@pytest.mark.parametrize("name", sorted(all_profiles()))
def test_status_led_pin_matches_the_profile(name: str, tmp_path: Path, mpy: Interpreter) -> None:
    board = create_board(tmp_path / name, name, name=f"led-{name}")
    out = board.run(mpy, "import rmboot\nprint(rmboot.LED().pin)", path=[FIRMWARE_DIR])
    assert out.strip() == f"Pin({board.profile.led_pin})"
