"""Fixtures of the provisioning tests: lib/rmprov as deployed, esp-rainmaker-cli's venv."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from rmbench import LIB_DIR
from rmbench.micropython import compile_package

from .support import Peer, client_peer

# The CLI's venv (build/rainmaker-cli-venv, made once from tools/pyproject.toml's
# `rainmaker-cli` group) comes from the fixture the service tests already use, imported at
# run time (pytest puts host_tests/ on the path; mypy does not see it).
rainmaker_cli = importlib.import_module("service.test_rainmaker_cli").rainmaker_cli


@pytest.fixture(scope="session")
def prov_lib(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """lib/rmprov as .mpy files in <dir>/rmprov, as a board runs it: put <dir> first on the
    MicroPython path."""
    target = tmp_path_factory.mktemp("prov-deployed")
    compile_package(LIB_DIR / "rmprov", target / "rmprov")
    return target


@pytest.fixture(scope="session")
def cli_python(rainmaker_cli: Path) -> Path:
    """The Python of esp-rainmaker-cli's venv (its security classes and protobuf)."""
    return rainmaker_cli.with_name("python")


@pytest.fixture(scope="module")
def client(cli_python: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Peer]:
    """esp-rainmaker-cli's own code as a peer (client_peer.py), one per test module."""
    peer = client_peer(cli_python)
    try:
        yield peer
    finally:
        peer.close()
