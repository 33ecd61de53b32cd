"""What a deploy puts on a board, read from manifest files in micropython-lib's verbs.

`firmware/manifest.py` is the one list of what a board gets; `lib/manifest.py`, which it
includes, names the library's packages. The files are Python that call the verbs of MicroPython's
manifest format (tools/manifestfile.py of the MicroPython repository, as micropython-lib's
manifests use them), with the same meaning, so the same files could drive a firmware build:

- `metadata(description=, version=, license=, author=)`: recorded, no effect;
- `include(path)`: another manifest, relative to this one's folder (a folder means its
  manifest.py);
- `package(name, files=None, base_path=".", opt=None)`: every .py file under base_path/name
  (or only `files`, relative to that folder), installed as the package `name`;
- `module(name, base_path=".", opt=None)`: one .py file, installed at the top level.

`require()` (a micropython-lib dependency) is refused: a board gets nothing this project does
not hold; what it needs from micropython-lib (`umqtt.simple`, `ntptime`) is frozen in stock
firmware. Beyond MicroPython's format, a package's data files (files that are not Python, such as
rmclaim's p256g.bin) travel with its modules, since the code reads them next to itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rmbench.errors import UsageError


@dataclass(frozen=True)
class ManifestFile:
    """One file for the board: its source and where it goes under /lib (e.g. rmclaim/p256.py)."""

    source: Path
    target: str

    @property
    def is_module(self) -> bool:
        return self.source.suffix == ".py"


@dataclass
class Manifest:
    """Everything a manifest (and those it includes) lists, in the order it lists them."""

    path: Path
    files: list[ManifestFile] = field(default_factory=list)
    packages: list[str] = field(default_factory=list)  # top-level package names
    metadata: list[dict[str, str]] = field(default_factory=list)

    @property
    def modules(self) -> list[ManifestFile]:
        return [f for f in self.files if f.is_module]

    @property
    def data(self) -> list[ManifestFile]:
        return [f for f in self.files if not f.is_module]


def _shipped(relative: Path) -> bool:
    # A file a package ships: no hidden file, nothing under a hidden or private folder
    # (__pycache__), no compiled leftovers, not a manifest.
    *folders, name = relative.parts
    return (
        not name.startswith(".")
        and not any(f.startswith((".", "_")) for f in folders)
        and relative.suffix not in (".pyc", ".mpy")
        and name != "manifest.py"
    )


def _error(path: Path, message: str) -> UsageError:
    return UsageError(f"{path}: {message}", step="manifest")


class _Reader:
    def __init__(self, top: Path) -> None:
        self.result = Manifest(top)
        self.seen: set[str] = set()
        self.active: list[Path] = []

    def run(self, path: Path) -> None:
        path = path.resolve()
        if path.is_dir():
            path = path / "manifest.py"
        if path in self.active:
            raise _error(path, "includes itself")
        try:
            source = path.read_text()
        except OSError as e:
            raise _error(path, f"cannot read: {e.strerror or e}") from e
        self.active.append(path)
        here = path.parent
        verbs: dict[str, Any] = {
            "metadata": lambda **kw: self.metadata(path, **kw),
            "include": lambda p, **kw: self.run(here / p),
            "package": lambda name, files=None, base_path=".", opt=None: self.package(
                path, here / base_path, name, files
            ),
            "module": lambda name, base_path=".", opt=None: self.module(
                path, here / base_path, name
            ),
            "require": lambda name, **kw: self.require(path, name),
        }
        try:
            exec(compile(source, str(path), "exec"), {"__builtins__": __builtins__, **verbs})
        except UsageError:
            raise
        except Exception as e:  # a broken manifest: say which and why
            raise _error(path, f"{type(e).__name__}: {e}") from e
        finally:
            self.active.pop()

    def metadata(self, path: Path, **kw: Any) -> None:
        allowed = {"description", "version", "license", "author"}
        unknown = set(kw) - allowed
        if unknown:
            raise _error(path, f"metadata(): unknown field(s) {sorted(unknown)}")
        self.result.metadata.append({k: str(v) for k, v in kw.items()})

    def add(self, path: Path, source: Path, target: str) -> None:
        if target in self.seen:
            raise _error(path, f"{target} is listed twice")
        self.seen.add(target)
        self.result.files.append(ManifestFile(source, target))

    def package(self, path: Path, base: Path, name: str, files: list[str] | None) -> None:
        folder = base / name
        if not folder.is_dir():
            raise _error(path, f"package({name!r}): no folder {folder}")
        if files is None:
            found = sorted(
                p for p in folder.rglob("*") if p.is_file() and _shipped(p.relative_to(folder))
            )
        else:
            found = [folder / f for f in files]
            for p in found:
                if not p.is_file():
                    raise _error(path, f"package({name!r}): no file {p}")
        modules = [p for p in found if p.suffix == ".py"]
        if not modules:
            raise _error(path, f"package({name!r}): no modules in {folder}")
        top = name.split("/")[0]
        if top not in self.result.packages:
            self.result.packages.append(top)
        for p in found:
            self.add(path, p, f"{name}/{p.relative_to(folder).as_posix()}")

    def module(self, path: Path, base: Path, name: str) -> None:
        source = base / name
        if source.suffix != ".py" or not source.is_file():
            raise _error(path, f"module({name!r}): no .py file {source}")
        self.add(path, source, source.name)

    def require(self, path: Path, name: str) -> None:
        raise _error(
            path,
            f"require({name!r}): a deploy installs only this project's files; what the board "
            "needs from micropython-lib must be frozen in its firmware",
        )


def read_manifest(path: Path) -> Manifest:
    """Evaluate the manifest at `path` (and what it includes).

    Raises:
        UsageError: the manifest cannot be read, fails, names a missing file or folder, lists a
            file twice, or requires a micropython-lib package.
    """
    reader = _Reader(path)
    reader.run(path)
    return reader.result
