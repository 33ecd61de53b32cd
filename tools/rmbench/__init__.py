"""Bench and factory tooling for device-side ESP RainMaker claiming (the `rmbench` CLI)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

__version__ = "0.1.0"

# The repository this package is installed from (editable install by `make setup`).
REPO_ROOT = Path(__file__).resolve().parents[2]
LIB_DIR = REPO_ROOT / "lib"
FIRMWARE_DIR = REPO_ROOT / "firmware"
BOARDS_DIR = REPO_ROOT / "boards"
BUILD_DIR = REPO_ROOT / "build"

# A long operation's progress callback (flash, claim): (step, done, total). Each step is announced
# with done=0; steps that move bytes then report byte counts (total 0 when a step has no size).
ProgressFn = Callable[[str, int, int], None]
