"""Start, stop, list and power-cycle virtual boards (each one a background supervisor)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rmbench import BUILD_DIR
from rmbench.boardsim import DEFAULT_WIFI, SimBoard, create_board, open_board
from rmbench.errors import BoardError, UsageError
from rmbench.micropython import board_micropython, heap_bytes
from rmbench.profiles import BoardProfile, get_profile
from rmbench.releases import Release
from rmbench.vboard.supervisor import (
    CONSOLE_LOG,
    FS_DIR,
    STATE_FILE,
    control_address,
)

# Where boards live unless --state-dir (or RMBENCH_VBOARD_DIR) says otherwise.
DEFAULT_STATE_ROOT = BUILD_DIR / "vboards"
SUPERVISOR_LOG = "supervisor.log"
_START_TIMEOUT_S = 15.0
_STOP_TIMEOUT_S = 5.0

# Supervisors started by this process: waited for on stop so none is left a zombie.
_children: dict[int, subprocess.Popen[bytes]] = {}


@dataclass(frozen=True)
class VBoardInfo:
    """A virtual board as its supervisor last described it."""

    name: str
    board: str
    directory: Path
    pty: str
    pid: int
    state: str  # "on" | "off" | "stopped"
    phase: str  # "boot" | "main" (boot.py/main.py running) | "repl" | "off"
    boots: int
    last_reset: str
    mac: str
    firmware: str  # the MicroPython release it runs ("1.28", "preview")
    softap: str = ""  # "127.0.0.1:PORT": its soft-AP's 192.168.4.1:80 as the host reaches it

    @property
    def running(self) -> bool:
        """True while its supervisor runs (the board itself may be powered off)."""
        return self.state != "stopped"

    @property
    def console_log(self) -> Path:
        """Everything the board has printed, across boots."""
        return self.directory / CONSOLE_LOG

    @property
    def fs_dir(self) -> Path:
        """The host directory that is the board's filesystem."""
        return self.directory / FS_DIR


def state_root(path: Path | str | None = None) -> Path:
    """The directory holding one subdirectory per board."""
    if path is not None:
        return Path(path)
    env = os.environ.get("RMBENCH_VBOARD_DIR")
    return Path(env) if env else DEFAULT_STATE_ROOT


def _stop_with_parent() -> None:
    # In the supervisor between fork and exec: SIGTERM (a clean stop) when our thread ends.
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG


def _alive(pid: int) -> bool:
    # A supervisor we started and that has exited is reaped here, so it is not a zombie.
    child = _children.get(pid)
    if child is not None:
        if child.poll() is None:
            return True
        del _children[pid]
        return False
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmdline = f.read()
        with open(f"/proc/{pid}/stat") as f:
            zombie = f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return False
    return b"rmbench.vboard.supervisor" in cmdline and not zombie


def _read_info(directory: Path) -> VBoardInfo | None:
    try:
        data: dict[str, Any] = json.loads((directory / STATE_FILE).read_text())
    except (OSError, ValueError):
        return None
    state = data["state"] if _alive(int(data["pid"])) else "stopped"
    return VBoardInfo(
        name=data["name"],
        board=data["board"],
        directory=directory,
        pty=data["pty"],
        pid=int(data["pid"]),
        state=state,
        phase=data["phase"] if state != "stopped" else "off",
        boots=int(data["boots"]),
        last_reset=data["last_reset"],
        mac=data["mac"],
        firmware=data.get("firmware", sim_firmware(directory)),
        softap=data.get("softap") or "",
    )


def sim_firmware(directory: Path) -> str:
    """The release a board's state directory says it runs."""
    try:
        return open_board(directory).firmware
    except (OSError, ValueError, KeyError):
        return "?"


def _stopped_info(sim: SimBoard) -> VBoardInfo:
    return VBoardInfo(
        sim.name,
        sim.profile.name,
        sim.directory,
        "",
        0,
        "stopped",
        "off",
        0,
        "",
        sim.mac,
        sim.firmware,
        sim.softap or "",
    )


def free_port() -> int:
    """A loopback TCP port free now (for a board's soft-AP server)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _free_name(root: Path, profile: BoardProfile) -> str:
    # The first "<profile>-N" not running: a stopped one is restarted with its files and NVS.
    n = 1
    while True:
        name = f"{profile.name}-{n}"
        info = _read_info(root / name)
        if info is None or not info.running:
            return name
        n += 1


def start(
    profile: BoardProfile | str,
    *,
    name: str | None = None,
    root: Path | None = None,
    heap: str | None = None,
    mac: str | None = None,
    unique_id: bytes | None = None,
    wifi: tuple[str, str] | None = DEFAULT_WIFI,
    files: dict[str, bytes] | None = None,
    detach: bool = True,
    firmware: Release | str | None = None,
) -> VBoardInfo:
    """Start a virtual board in the background; returns once it is powered on.

    Args:
        profile: board profile (or its name), e.g. "esp32s3".
        name: the board's name (default: "<profile>-N", the first one not running); it keys
            the state directory and, unless `mac`/`unique_id` are given, the board's identity.
        root: the directory of board state directories (default: build/vboards).
        heap: GC heap size (default: the profile's gc_heap).
        mac, unique_id, wifi: identity and the bench Wi-Fi it can join (see rmbench.boardsim).
        files: files to put on the board's filesystem before it boots ({"/main.py": b"..."}).
        firmware: the MicroPython release it runs (default: the profile's default, 1.28 where
            that release has the board); its os.uname(), sys.implementation and banner.
        detach: keep running after this process ends (`rmbench vboard start`); False ties the
            board to this process, so a crash or kill of it stops the board too.
    Its port 80 (the soft-AP's HTTP server, 192.168.4.1:80 on a board) is a loopback port
    free at start (board.json softap_port; `VBoardInfo.softap`).

    Returns:
        The board, with the /dev/pts/N path that `mpremote connect` takes.
    Raises:
        UsageError: a board of that name is already running, or a bad name, identity, heap
            or $MICROPYTHON32.
        BoardError: the supervisor did not come up (its log is quoted).
    """
    prof = get_profile(profile) if isinstance(profile, str) else profile
    heap = heap or prof.gc_heap
    try:
        heap_bytes(heap)
        board_micropython()  # a bad $MICROPYTHON32 is a usage error, before anything starts
    except (ValueError, FileNotFoundError) as e:
        raise UsageError(str(e)) from e
    base = state_root(root)
    base.mkdir(parents=True, exist_ok=True)
    name = name or _free_name(base, prof)
    if not name or "/" in name or name.startswith("."):
        raise UsageError(f"bad board name {name!r}: use letters, digits, '-' and '_'")
    directory = base / name
    running = _read_info(directory)
    if running is not None and running.running:
        raise UsageError(
            f"virtual board {name} is already running on {running.pty}",
            board=name,
            hint=f"stop it first: rmbench vboard stop {name}",
        )
    try:
        create_board(
            directory,
            prof,
            name=name,
            mac=mac,
            unique_id=unique_id,
            wifi=wifi,
            firmware=firmware,
            softap_port=free_port(),
        )
    except ValueError as e:
        raise UsageError(str(e), board=name) from e
    except UsageError as e:
        raise e.with_context(board=name, step="start") from None
    fs = directory / FS_DIR
    fs.mkdir(exist_ok=True)
    for path, data in (files or {}).items():
        target = fs / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    with contextlib.suppress(FileNotFoundError):
        (directory / STATE_FILE).unlink()
    log = (directory / SUPERVISOR_LOG).open("wb")
    with log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "rmbench.vboard.supervisor",
                str(directory),
                "--heap",
                heap,
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
            preexec_fn=None if detach else _stop_with_parent,
        )
    _children[proc.pid] = proc
    deadline = time.monotonic() + _START_TIMEOUT_S
    while time.monotonic() < deadline:
        info = _read_info(directory)
        if info is not None and info.pid == proc.pid and info.state != "stopped":
            return info
        if proc.poll() is not None:
            break
        time.sleep(0.02)
    with contextlib.suppress(ProcessLookupError):
        proc.kill()
    proc.wait()
    _children.pop(proc.pid, None)
    tail = (directory / SUPERVISOR_LOG).read_text(errors="replace")[-2000:]
    raise BoardError(f"virtual board did not start: {tail.strip() or 'no output'}", board=name)


def find(name: str, *, root: Path | None = None) -> VBoardInfo:
    """The board called `name` (running or not).

    Raises:
        UsageError: no such board; the message lists the known ones.
    """
    directory = state_root(root) / name
    info = _read_info(directory)
    if info is not None:
        return info
    if (directory / "board.json").exists():
        return _stopped_info(open_board(directory))
    known = ", ".join(b.name for b in list_boards(root=root)) or "none"
    raise UsageError(f"no virtual board {name!r} (known: {known})", board=name)


def list_boards(*, root: Path | None = None) -> list[VBoardInfo]:
    """Every board under the state directory, running or not, by name."""
    base = state_root(root)
    boards = []
    if base.is_dir():
        for directory in sorted(base.iterdir()):
            if not (directory / "board.json").exists():
                continue
            info = _read_info(directory)
            boards.append(info or _stopped_info(open_board(directory)))
    return boards


def request(info: VBoardInfo, payload: dict[str, Any], timeout: float = 10.0) -> dict[str, Any]:
    """Send one control request to a running board's supervisor; returns its reply."""
    if not info.running:
        raise BoardError("virtual board is not running", board=info.name, step=payload["cmd"])
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(control_address(info.directory))
            s.sendall(json.dumps(payload).encode() + b"\n")
            reply: dict[str, Any] = json.loads(s.makefile("rb").readline() or b"{}")
    except (OSError, ValueError) as e:
        raise BoardError(
            f"control request failed: {e}", board=info.name, port=info.pty, step=payload["cmd"]
        ) from e
    if not reply.get("ok"):
        raise BoardError(str(reply.get("error", "no reply")), board=info.name, step=payload["cmd"])
    return reply


def _refresh(info: VBoardInfo) -> VBoardInfo:
    return _read_info(info.directory) or _stopped_info(open_board(info.directory))


def power_cycle(
    info: VBoardInfo, *, power_cut: str | None = None, off_ms: int = 100
) -> VBoardInfo:
    """Cut the power and turn it on again: NVS keeps every write that finished (ESP-IDF 5
    writes through), the interpreter's state is gone.

    power_cut "nvs:N" makes the new boot cut its own power just before its N-th NVS write (it
    does not happen), "nvs:N:after" just after it (it is stored).
    """
    request(info, {"cmd": "power-cycle", "power_cut": power_cut, "off_ms": off_ms})
    return _refresh(info)


def power_off(info: VBoardInfo) -> VBoardInfo:
    """Cut the power and leave it off."""
    request(info, {"cmd": "power-off"})
    return _refresh(info)


def power_on(info: VBoardInfo, *, power_cut: str | None = None) -> VBoardInfo:
    """Turn a board that is off on again (no effect on one that is on)."""
    request(info, {"cmd": "power-on", "power_cut": power_cut})
    return _refresh(info)


def wait_for(
    info: VBoardInfo,
    predicate: Callable[[VBoardInfo], bool],
    *,
    timeout: float,
    what: str,
) -> VBoardInfo:
    """Poll the board's state until `predicate` holds.

    Raises:
        BoardError: not within `timeout`; names `what` and the last state.
    """
    deadline = time.monotonic() + timeout
    current = _refresh(info)
    while not predicate(current):
        if time.monotonic() > deadline:
            raise BoardError(
                f"timed out after {timeout:g} s waiting for {what} "
                f"(state {current.state}, phase {current.phase}, boots {current.boots})",
                board=info.name,
                port=info.pty,
            )
        time.sleep(0.02)
        current = _refresh(info)
    return current


def stop(info: VBoardInfo) -> VBoardInfo:
    """Stop the board and its supervisor; its files and NVS stay for the next start."""
    if info.running:
        with contextlib.suppress(BoardError):
            request(info, {"cmd": "stop"}, timeout=_STOP_TIMEOUT_S)
        deadline = time.monotonic() + _STOP_TIMEOUT_S
        while _alive(info.pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        for sig in (signal.SIGTERM, signal.SIGKILL):
            if not _alive(info.pid):
                break
            with contextlib.suppress(ProcessLookupError):
                os.kill(info.pid, sig)
            end = time.monotonic() + 2.0
            while _alive(info.pid) and time.monotonic() < end:
                time.sleep(0.02)
        child = _children.pop(info.pid, None)
        if child is not None:
            child.wait()
        with contextlib.suppress(FileNotFoundError):
            (info.directory / STATE_FILE).unlink()
    return _stopped_info(open_board(info.directory))
