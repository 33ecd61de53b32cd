"""Fixtures of the claim-flow tests: one local claiming service for the package, board factory."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from rmbench.boardsim import SimBoard, create_board
from rmbench.service.harness import RunningService, running_service

BoardFactory = Callable[..., SimBoard]


@pytest.fixture(scope="package")
def svc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningService]:
    """The real local claiming service (with faults), shared by the package's tests; each test
    uses its own boards (MACs) and tokens."""
    with running_service(tmp_path_factory.mktemp("claim-svc")) as service:
        yield service


@pytest.fixture
def new_board(tmp_path: Path) -> BoardFactory:
    """new_board(name, profile="esp32s3", **kw) -> a fresh simulated board."""

    def make(name: str, profile: str = "esp32s3", **kw: Any) -> SimBoard:
        return create_board(tmp_path / name, profile, name=f"{tmp_path.name}-{name}", **kw)

    return make
