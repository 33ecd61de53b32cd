"""Fixtures of the broker tests: one claiming service and one broker for the package, client
identities from its claim CA."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from rmbench.boardsim import SimBoard, create_board
from rmbench.broker.harness import RunningBroker, running_broker
from rmbench.broker.identities import ClientIdentity, client_identity
from rmbench.service.harness import RunningService, running_service

IdentityFactory = Callable[..., ClientIdentity]
BoardFactory = Callable[..., SimBoard]


@pytest.fixture(scope="package")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningService]:
    """The local claiming service: its CAs are the broker's, and boards claim from it."""
    with running_service(tmp_path_factory.mktemp("svc")) as svc:
        yield svc


@pytest.fixture(scope="package")
def broker(
    service: RunningService, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningBroker]:
    """One broker for the package's tests (each test uses its own node ids); tests that stop
    or restart a broker use the `mqtt_broker` fixture instead."""
    with running_broker(tmp_path_factory.mktemp("broker"), service.state_dir) as b:
        yield b


@pytest.fixture
def identity(broker: RunningBroker, request: pytest.FixtureRequest) -> IdentityFactory:
    """identity(name, **kw) -> a client identity from the claim CA with a node id unique to
    the test (kw: issuer, not_before, not_after, as rmbench.broker.identities takes them)."""
    stem = "".join(ch for ch in request.node.name if ch.isalnum())[-24:]

    def make(name: str, **kw: Any) -> ClientIdentity:
        issuer = kw.pop("issuer", None) or broker.claim_ca
        return client_identity(issuer, f"{stem}{name}", **kw)

    return make


@pytest.fixture
def new_board(tmp_path: Path) -> BoardFactory:
    """new_board(name, profile="esp32s3", **kw) -> a fresh simulated board."""

    def make(name: str, profile: str = "esp32s3", **kw: Any) -> SimBoard:
        return create_board(tmp_path / name, profile, name=f"{tmp_path.name}-{name}", **kw)

    return make
