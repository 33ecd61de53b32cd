"""Bench fixtures: `board` (one Board: real with --port, else virtual), `boards`, the service.

Precedence for which board a test gets (as pytest-embedded's option handling): a test's
`@pytest.mark.parametrize("board", ["esp32"], indirect=True)`, then --board, then esp32s3.
With --port, every test drives that real board; a test whose parametrized profile differs,
or that `@pytest.mark.needs(...)` a capability the board lacks, is skipped with the reason.

Boards are shared by the tests of a session (one per profile): each test starts from a known
state through `prepare()`, as it must on a real bench with one board.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from rmbench import BUILD_DIR
from rmbench.board import Board, SerialBoard, VirtualBoard
from rmbench.profiles import get_profile
from rmbench.releases import DEFAULT_RELEASE, get_release
from rmbench.service.harness import RunningService, running_service

from .helpers import BenchSetup

DEFAULT_BOARD = "esp32s3"
LOG_DIR = BUILD_DIR / "bench-logs"


def _virtual_capabilities(profile: str) -> frozenset[str]:
    p = get_profile(profile)
    caps = {"virtual", "power_cut"}
    if p.wifi:
        caps.add("wifi")
    if p.efuse_unique_id is not None:
        caps.add("efuse_unique_id")
    return frozenset(caps)


def _firmware(request: pytest.FixtureRequest, profile: str) -> str:
    # The release virtual boards run (--firmware); a profile that release lacks is skipped.
    release = get_release(request.config.getoption("--firmware") or DEFAULT_RELEASE)
    if not release.at_least(get_profile(profile).first_release):
        pytest.skip(f"MicroPython v{release.release} has no firmware for {profile}")
    return release.name


def _wanted_profile(request: pytest.FixtureRequest) -> str:
    param = getattr(request, "param", None)
    return str(param or request.config.getoption("--board") or DEFAULT_BOARD)


@pytest.fixture(scope="session")
def bench_service(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningService]:
    """The local claiming service for the whole bench session (faults on).

    On a real bench it listens on every interface and boards reach it at --service-host (this
    machine's address on the boards' Wi-Fi); the tests still drive it (faults, users) over
    loopback. Virtual boards use loopback.
    """
    host = request.config.getoption("--service-host")
    state = tmp_path_factory.mktemp("bench-service")
    if not host:
        with running_service(state) as svc:
            yield svc
        return
    with running_service(state, host="0.0.0.0", names=[host]) as svc:
        svc.base_url = svc.base_url.replace(f"//{host}:", "//localhost:", 1)
        yield svc


@pytest.fixture(scope="session")
def board_service_url(request: pytest.FixtureRequest, bench_service: RunningService) -> str:
    """The service's URL as the boards under test reach it."""
    host = request.config.getoption("--service-host")
    url = bench_service.base_url
    return url.replace("//localhost:", f"//{host}:", 1) if host else url


def processes_under(path: Path) -> list[str]:
    """Command lines of live processes that mention `path` (boards, services started there)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (
                (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            )
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if str(path) in cmdline and state != "Z":
            found.append(f"{entry.name}: {cmdline.strip()}")
    return found


@pytest.fixture(scope="session", autouse=True)
def _no_processes_left(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    # Set up first, torn down last: after every board and service of the session has stopped,
    # nothing started under the session's temporary folder may still run.
    base = tmp_path_factory.getbasetemp()
    yield
    left = processes_under(base)
    assert not left, "processes left behind by the bench suite:\n" + "\n".join(left)


@pytest.fixture(scope="session")
def _board_pool() -> Iterator[dict[str, Board]]:
    # One board per profile (or port) for the session, closed (virtual ones stopped) at its end.
    pool: dict[str, Board] = {}
    yield pool
    for b in pool.values():
        b.close()


def _capabilities(request: pytest.FixtureRequest, profile: str) -> tuple[frozenset[str], str]:
    ports: list[str] = request.config.getoption("--port")
    if ports:
        cli_profile = request.config.getoption("--board") or DEFAULT_BOARD
        return SerialBoard(ports[0], get_profile(cli_profile)).capabilities, ports[0]
    return _virtual_capabilities(profile), "a virtual board"


@pytest.fixture(autouse=True)
def _capability_gate(request: pytest.FixtureRequest) -> None:
    # Skip a test that needs what the board under test lacks, naming both.
    params = getattr(getattr(request.node, "callspec", None), "params", {})
    profile = str(params.get("board") or request.config.getoption("--board") or DEFAULT_BOARD)
    ports: list[str] = request.config.getoption("--port")
    if ports:
        cli_profile = request.config.getoption("--board") or DEFAULT_BOARD
        if profile != cli_profile:
            pytest.skip(f"needs board {profile}; the board under test is {cli_profile}")
    caps, where = _capabilities(request, profile)
    for mark in request.node.iter_markers("needs"):
        if mark.args[0] not in caps:
            pytest.skip(f"needs {mark.args[0]}, which {profile} on {where} lacks")


@pytest.fixture
def board(
    request: pytest.FixtureRequest,
    _board_pool: dict[str, Board],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Board]:
    """The board under test: the real one on --port, or a virtual board of the wanted profile."""
    profile = _wanted_profile(request)
    ports: list[str] = request.config.getoption("--port")
    key = ports[0] if ports else profile
    b = _board_pool.get(key)
    if b is None:
        if ports:
            b = SerialBoard(ports[0], get_profile(profile))
        else:
            root = tmp_path_factory.getbasetemp() / "vboards"
            b = VirtualBoard.start(
                profile, name=f"bench-{profile}", root=root, firmware=_firmware(request, profile)
            )
        _board_pool[key] = b
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    b.log = LOG_DIR / (re.sub(r"[^\w.-]+", "_", request.node.name) + ".log")
    b.log.write_text(f"# {request.node.nodeid} on {b!r}\n")
    yield b
    b.log = None


@pytest.fixture
def boards(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[Board]]:
    """Several boards: each --port, or two new virtual boards of --board's profile."""
    ports: list[str] = request.config.getoption("--port")
    profile = request.config.getoption("--board") or DEFAULT_BOARD
    made: list[Board] = []
    try:
        if ports:
            made = [SerialBoard(p, get_profile(profile)) for p in ports]
        else:
            root = tmp_path_factory.mktemp("vboards-multi")
            release = _firmware(request, profile)
            made = [
                VirtualBoard.start(profile, name=f"multi-{i}", root=root, firmware=release)
                for i in (1, 2)
            ]
        yield made
    finally:
        for b in made:
            b.close()


@pytest.fixture
def bench(
    request: pytest.FixtureRequest,
    board: Board,
    bench_service: RunningService,
    board_service_url: str,
) -> BenchSetup:
    """Helpers bound to this test's board and the service (see helpers.BenchSetup)."""
    return BenchSetup(
        board=board,
        service=bench_service,
        service_url=board_service_url,
        wifi=(
            request.config.getoption("--wifi-ssid"),
            request.config.getoption("--wifi-password"),
        ),
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Unknown capability names are a typo: fail loudly instead of skipping for ever.
    from rmbench.board import CAPABILITIES

    for item in items:
        for mark in item.iter_markers("needs"):
            if not mark.args or mark.args[0] not in CAPABILITIES:
                raise pytest.UsageError(
                    f"{item.nodeid}: needs({mark.args}) is not one of {CAPABILITIES}"
                )
