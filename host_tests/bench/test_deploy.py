"""rmbench deploy on the board under test: what it writes, skips and removes."""

from __future__ import annotations

from rmbench.board import Board
from rmbench.deploy import deploy

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
