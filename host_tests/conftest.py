"""Options, markers and shared fixtures for every test under host_tests/."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from rmbench.broker.harness import RunningBroker, running_broker
from rmbench.micropython import Interpreter, cpython, micropython, micropython32
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
    group.addoption(
        "--unix-port",
        choices=("64", "32"),
        default="64",
        help="the MicroPython Unix port device code runs on: 64 (.venv's, default) or 32 (the "
        "32-bit one $MICROPYTHON32 names; `make test` runs host_tests/device on both when given)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "needs(capability): skip unless the board under test has this capability"
    )
    config.addinivalue_line("markers", "slow: takes more than a few seconds")
    if config.getoption("--unix-port") == "32":
        try:
            found = micropython32()
        except (OSError, ValueError) as e:
            raise pytest.UsageError(f"--unix-port=32: {e}") from e
        if found is None:
            raise pytest.UsageError(
                "--unix-port=32 needs MICROPYTHON32=PATH, a 32-bit MicroPython Unix port"
            )


def _unix_port(config: pytest.Config) -> Interpreter:
    if config.getoption("--unix-port") == "32":
        port = micropython32()
        assert port is not None  # checked in pytest_configure
        return port
    return micropython()


def pytest_report_header(config: pytest.Config) -> str:
    try:
        port = _unix_port(config)
        return f"device code on: MicroPython Unix port, {port.bits}-bit ({port.argv[0]})"
    except (OSError, ValueError) as e:
        return f"device code on: no MicroPython Unix port ({e})"


@pytest.fixture(scope="session")
def mpy(request: pytest.FixtureRequest) -> Interpreter:
    """The MicroPython Unix port device code must run on: .venv's, or the 32-bit one with
    --unix-port=32."""
    return _unix_port(request.config)


@pytest.fixture(scope="session")
def mpy32(mpy: Interpreter) -> Interpreter:
    """A 32-bit MicroPython Unix port (objects the size of an ESP32's): `mpy` when it is one,
    else the one $MICROPYTHON32 names; the test is skipped when there is none."""
    if mpy.bits == 32:
        return mpy
    port = micropython32()
    if port is None:
        pytest.skip("needs a 32-bit MicroPython Unix port: set MICROPYTHON32=PATH")
    return port


@pytest.fixture(scope="session", params=["micropython", "cpython"])
def interp(request: pytest.FixtureRequest) -> Iterator[Interpreter]:
    """Each interpreter device code runs on: the MicroPython Unix port, then CPython."""
    yield _unix_port(request.config) if request.param == "micropython" else cpython()


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
