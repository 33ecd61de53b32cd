"""Options, markers and shared fixtures for every test under host_tests/."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from rmbench.broker.harness import RunningBroker, running_broker
from rmbench.micropython import Interpreter, cpython, micropython
from rmbench.service.harness import RunningService, running_service

# Capabilities a bench test may need; `@pytest.mark.needs("power_cut")` skips where the board
# under test lacks it, naming the capability and the board.
CAPABILITIES = ("power_cut", "virtual", "efuse_unique_id", "wifi")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("rmclaim")
    group.addoption(
        "--port",
        action="append",
        default=[],
        help="serial port of a real board (repeat for several); default: virtual boards",
    )
    group.addoption("--board", default=None, help="board profile name, e.g. esp32s3")
    group.addoption(
        "--firmware",
        default=None,
        help="MicroPython release the virtual boards run, e.g. 1.23 or preview (default 1.28)",
    )
    group.addoption("--wifi-ssid", default=None, help="Wi-Fi the real boards join (bench tests)")
    group.addoption("--wifi-password", default=None, help="its password")
    group.addoption(
        "--service-host",
        default=None,
        help="this machine's address as real boards reach it (the bench tests' local service)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "needs(capability): skip unless the board under test has this capability"
    )
    config.addinivalue_line("markers", "slow: takes more than a few seconds")


@pytest.fixture(scope="session")
def mpy() -> Interpreter:
    """The MicroPython Unix port from .venv (the interpreter device code must run on)."""
    return micropython()


@pytest.fixture(scope="session", params=["micropython", "cpython"])
def interp(request: pytest.FixtureRequest) -> Iterator[Interpreter]:
    """Each interpreter device code runs on: the MicroPython Unix port, then CPython."""
    yield micropython() if request.param == "micropython" else cpython()


@pytest.fixture
def claim_service(tmp_path: Path) -> Iterator[RunningService]:
    """The local claiming service (`rmbench serve --faults`) on a fresh state dir."""
    with running_service(tmp_path / "claim-service") as svc:
        yield svc


@pytest.fixture
def mqtt_broker(claim_service: RunningService, tmp_path: Path) -> Iterator[RunningBroker]:
    """The bench MQTT broker (rmbench.broker) for `claim_service`'s CAs: boards pin its server
    CA and present certificates from its claim CA."""
    with running_broker(tmp_path / "mqtt-broker", claim_service.state_dir) as broker:
        yield broker
