"""Fixtures for the device-library tests: lib/rmclaim compiled as deployed, and a JSON runner."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from rmbench.micropython import Interpreter, compile_library

RunJSON = Callable[..., list[Any]]


@pytest.fixture(scope="session")
def deployed_lib(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """lib/rmclaim as .mpy files plus data files: what a board runs. At a 64 KB heap the
    library must come this way; compiling its source on the device needs more heap."""
    return compile_library(tmp_path_factory.mktemp("deployed"))


@pytest.fixture(scope="session")
def run_json(deployed_lib: Path) -> RunJSON:
    """run_json(interp, script, items, heap="64K") -> one JSON result per printed line.

    Each item goes to the script as one JSON line on stdin, so a small heap never holds the
    whole batch. MicroPython runs the deployed (.mpy) library, CPython the source.
    """

    def run(interp: Interpreter, script: str, items: list[Any], heap: str = "64K") -> list[Any]:
        stdin = "".join(json.dumps(item) + "\n" for item in items)
        # make_der.py (the tests' DER encoders) beside this file, importable on both.
        here = Path(__file__).parent
        path = [deployed_lib, here] if interp.name == "micropython" else [here]
        out = interp.run(script, stdin=stdin, heap=heap, path=path)
        return [json.loads(line) for line in out.strip().splitlines()]

    return run
