"""firmware/manifest.py drives what a deploy puts on a board (micropython-lib's manifest verbs)."""

from __future__ import annotations

from pathlib import Path

import pytest
from rmbench import FIRMWARE_DIR, LIB_DIR
from rmbench.deploy import MANIFEST, bundle
from rmbench.errors import UsageError
from rmbench.manifest import read_manifest

CONFIG = {"service_url": "https://x", "ca": "-----BEGIN CERTIFICATE-----"}


def test_the_project_manifest_lists_every_library_file_and_the_boot_module() -> None:
    m = read_manifest(MANIFEST)
    assert m.packages == ["rmclaim", "rmprov", "rmnode"]
    # Every module and data file of each package, found on disk independently of the reader.
    expected = {
        f"{pkg}/{p.name}"
        for pkg in m.packages
        for p in (LIB_DIR / pkg).iterdir()
        if p.is_file() and p.suffix != ".pyc"
    } | {"rmboot.py"}
    assert {f.target for f in m.files} == expected
    assert "rmclaim/p256g.bin" in {f.target for f in m.data}
    assert m.metadata and m.metadata[0]["version"]


def test_deploy_bundles_exactly_what_the_manifest_lists() -> None:
    m = read_manifest(MANIFEST)
    files = bundle("6.3", config=CONFIG)
    wanted = {f"/lib/{f.target[:-3]}.mpy" for f in m.modules} | {
        f"/lib/{f.target}" for f in m.data
    }
    assert set(files) == wanted | {"/boot.py", "/main.py", "/rmclaim.json"}
    assert files["/lib/rmclaim/p256g.bin"] == (LIB_DIR / "rmclaim" / "p256g.bin").read_bytes()


def _firmware(tmp_path: Path, manifest: str) -> Path:
    fw = tmp_path / "fw"
    fw.mkdir()
    for name in ("boot.py", "main.py"):
        (fw / name).write_bytes((FIRMWARE_DIR / name).read_bytes())
    (fw / "manifest.py").write_text(manifest)
    return fw / "manifest.py"


def test_a_manifest_of_our_own_changes_what_a_deploy_puts_on_the_board(tmp_path: Path) -> None:
    lib = tmp_path / "lib" / "demo"
    lib.mkdir(parents=True)
    (lib / "__init__.py").write_text("X = 1\n")
    (lib / "table.bin").write_bytes(b"\x01\x02")
    (lib / "__pycache__").mkdir()
    (lib / "__pycache__" / "junk.pyc").write_bytes(b"")
    manifest = _firmware(
        tmp_path,
        'metadata(version="1.0")\npackage("demo", base_path="../lib")\nmodule("app.py")\n',
    )
    (manifest.parent / "app.py").write_text("print('app')\n")
    files = bundle("6.3", config=None, manifest=manifest)
    assert sorted(files) == [
        "/boot.py",
        "/lib/app.mpy",
        "/lib/demo/__init__.mpy",
        "/lib/demo/table.bin",
        "/main.py",
    ]
    assert files["/lib/demo/__init__.mpy"][:2] == b"M\x06"


def test_package_with_a_file_list_takes_only_those(tmp_path: Path) -> None:
    pkg = tmp_path / "p"
    pkg.mkdir()
    for name in ("a.py", "b.py"):
        (pkg / name).write_text("")
    (tmp_path / "manifest.py").write_text('package("p", files=["b.py"])\n')
    assert [f.target for f in read_manifest(tmp_path / "manifest.py").files] == ["p/b.py"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('package("nothere")', "no folder"),
        ('module("nothere.py")', "no .py file"),
        ('require("umqtt.simple")', "frozen in its firmware"),
        ('include("manifest.py")', "includes itself"),
        ('module("m.py")\nmodule("m.py")', "listed twice"),
        ('metadata(colour="red")', "unknown field"),
        ("package(", "SyntaxError"),
        ('package("p", files=["gone.py"])', "no file"),
    ],
)
def test_a_broken_manifest_is_refused_naming_the_file(
    tmp_path: Path, text: str, message: str
) -> None:
    manifest = _firmware(tmp_path, text)
    (manifest.parent / "m.py").write_text("")
    (manifest.parent / "p").mkdir()
    (manifest.parent / "p" / "a.py").write_text("")
    with pytest.raises(UsageError, match=message) as e:
        bundle("6.3", config=CONFIG, manifest=manifest)
    assert str(manifest) in str(e.value)
