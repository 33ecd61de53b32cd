"""rmbench deploy on the board under test: what it writes, skips and removes."""

from __future__ import annotations

from pathlib import Path

import pytest
from rmbench.board import Board, SerialBoard, VirtualBoard
from rmbench.deploy import deploy
from rmbench.errors import UsageError
from rmbench.profiles import get_profile

from .helpers import BenchSetup


def test_deploy_writes_changes_only_and_removes_stale_modules(
    bench: BenchSetup, board: Board
) -> None:
    config = bench.config()
    deploy(board, config=config)
    board.fs_write("/lib/rmclaim/stale.mpy", b"M\\x06old")
    board.fs_write("/lib/rmclaim/claim.py", b"# would shadow claim.mpy")
    progress: list[str] = []
    again = deploy(board, config=config, progress=lambda p: progress.append(p.step))
    assert again.written == 0
    assert again.unchanged == len(again.files) - 2
    assert sorted(f.path for f in again.files if f.action == "removed") == [
        "/lib/rmclaim/claim.py",
        "/lib/rmclaim/stale.mpy",
    ]
    assert "compile" in progress and "remove" in progress and "write" not in progress
    changed = deploy(board, config={**config, "timeout_s": 7})
    assert [f.path for f in changed.files if f.action == "written"] == ["/rmclaim.json"]
    assert b'"timeout_s": 7' in board.fs_read("/rmclaim.json")
    deploy(board, config=config)  # as the other tests expect it
    assert changed.mpy_version == "6.3" or board.has("virtual") is False


@pytest.mark.needs("virtual")
def test_deploy_refuses_firmware_older_than_1_23_before_writing(
    bench: BenchSetup, tmp_path: Path
) -> None:
    # v1.22 has no tls module and no WLAN.IF_STA: the board is refused with the minimum
    # version named, and nothing is written to it.
    old = VirtualBoard.start("esp32s3", name="old-fw", root=tmp_path, firmware="1.22")
    try:
        before = old.fs_listdir("/")
        with pytest.raises(UsageError) as info:
            deploy(old, config=bench.config())
        assert str(info.value) == (
            "the board runs MicroPython v1.22.2; v1.23.0 or newer is needed "
            "(the tls module and network.WLAN.IF_STA)"
        )
        assert info.value.step == "check firmware"
        assert old.fs_listdir("/") == before
        assert not old.fs_exists("/lib")
    finally:
        old.close()


@pytest.mark.needs("virtual")
def test_deploy_refuses_a_board_of_another_chip(bench: BenchSetup, tmp_path: Path) -> None:
    # The board's machine string, read with the device library's own chip table, must be the
    # profile's chip: an ESP32-C3 is not deployed as an ESP32-S3.
    other = VirtualBoard.start("esp32c3", name="other-chip", root=tmp_path)
    try:
        mislabelled = SerialBoard(other.port, get_profile("esp32s3"))  # --board esp32s3
        try:
            with pytest.raises(UsageError) as info:
                deploy(mislabelled, config=bench.config())
        finally:
            mislabelled.close()
        assert str(info.value) == (
            "the board says it is 'ESP32C3 module with ESP32C3' (esp32c3), "
            "but board esp32s3 is esp32s3"
        )
        assert not other.fs_exists("/lib")
    finally:
        other.close()
