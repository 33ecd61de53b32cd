"""Fixtures for the service tests: one running service per test module (cheap to share)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from rmbench.service.harness import RunningService, running_service


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningService]:
    """A service shared by one module's tests; each test uses its own tokens and MACs."""
    with running_service(tmp_path_factory.mktemp("svc")) as service:
        yield service
        service.clear_faults()
