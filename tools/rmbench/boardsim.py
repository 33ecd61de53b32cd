"""Simulated boards for the MicroPython Unix port: state directories for tools/boardsim/.

tools/boardsim/ holds MicroPython modules (esp32, machine, os, network, ntptime, esp) that stand
in for a board's when device code runs on the Unix port. They read the board from the directory
named by RMBENCH_BOARD_DIR:

- board.json  what the board is: profile name, os.uname().machine, base MAC, the 16-byte
              OPTIONAL_UNIQUE_ID and its eFuse address, the bench Wi-Fi it can join;
- nvs.json    committed NVS contents (esp32.NVS writes stay in RAM until commit());
- pins.log    every pin level change, "<epoch ms> <pin> <level>" per line.

Set RMBENCH_POWER_CUT="nvs:N" to cut the power instead of performing the N-th NVS mutation;
device code can also call `_boardsim.power_cut()`. Both kill the interpreter at once.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rmbench import REPO_ROOT
from rmbench.micropython import Interpreter, compile_library, compile_package
from rmbench.profiles import BoardProfile, get_profile

SIM_DIR = REPO_ROOT / "tools" / "boardsim"
DEFAULT_WIFI = ("rmbench", "bench-pass")
# Espressif's OUI, so simulated MACs look like real ones (7C:DF:A1:xx:xx:xx).
_OUI = "7CDFA1"


def deploy_for_heap(target: Path) -> list[Path]:
    """lib/rmclaim and the board doubles compiled into target/lib and target/sim, for heap
    measurements; returns the path entries to run with (relative: run with cwd=target).

    MicroPython interns each module's file name (__file__) as a qstr, which stays on the heap
    for good: with relative entries they are as long as a board's (lib/rmclaim/x.mpy against
    /lib/rmclaim/x.mpy), not a temporary directory's. The doubles come first and as .mpy: on
    a board they are built-in modules and cost no heap to compile.
    """
    compile_library(target / "lib")
    compile_package(SIM_DIR, target / "sim")
    return [Path("sim"), Path("lib")]


def derive_identity(name: str) -> tuple[str, bytes]:
    """The MAC (12 uppercase hex) and 16-byte unique id a board called `name` gets by default."""
    digest = hashlib.sha256(b"rmbench-board:" + name.encode()).digest()
    mac = _OUI + digest[:3].hex().upper()
    unique_id = hashlib.sha256(b"rmbench-unique-id:" + name.encode()).digest()[:16]
    return mac, unique_id


@dataclass(frozen=True)
class SimBoard:
    """One simulated board: its profile, identity and state directory."""

    directory: Path
    profile: BoardProfile
    name: str
    mac: str
    unique_id: bytes
    wifi: tuple[str, str] | None

    def env(self) -> dict[str, str]:
        """Environment variables that point tools/boardsim at this board."""
        return {"RMBENCH_BOARD_DIR": str(self.directory)}

    def path(self) -> list[Path]:
        """Directories to put first on MICROPYPATH (before lib/)."""
        return [SIM_DIR]

    def nvs(self) -> dict[str, dict[str, bytes | int]]:
        """Committed NVS contents: namespace -> key -> bytes (blob) or int (i32)."""
        path = self.directory / "nvs.json"
        if not path.exists():
            return {}
        raw: dict[str, dict[str, list[Any]]] = json.loads(path.read_text())
        out: dict[str, dict[str, bytes | int]] = {}
        for ns, entries in raw.items():
            out[ns] = {
                key: bytes.fromhex(value) if kind == "b" else int(value)
                for key, (kind, value) in entries.items()
            }
        return out

    def pin_log(self) -> list[tuple[int, str, int]]:
        """Every recorded pin change: (epoch ms, pin, level)."""
        path = self.directory / "pins.log"
        if not path.exists():
            return []
        rows = []
        for line in path.read_text().splitlines():
            ms, pin, level = line.split()
            rows.append((int(ms), pin, int(level)))
        return rows

    def run(
        self,
        interpreter: Interpreter,
        code: str,
        *,
        path: Sequence[Path] = (),
        env: dict[str, str] | None = None,
        heap: str | None = None,
        **kwargs: Any,
    ) -> str:
        """Run `code` on this board (boardsim modules first on the path); returns stdout.

        heap defaults to the board's GC heap, as the interpreter needs it (see
        Interpreter.board_heap: scaled on a 64-bit MicroPython).
        """
        full_env = {**self.env(), **(env or {})}
        if heap is None and interpreter.name == "micropython":
            heap = interpreter.board_heap(self.profile.gc_heap)
        return interpreter.run(
            code,
            path=[*self.path(), *path],
            env=full_env,
            heap=heap,
            **kwargs,
        )


def create_board(
    directory: Path,
    profile: BoardProfile | str,
    *,
    name: str,
    mac: str | None = None,
    unique_id: bytes | None = None,
    wifi: tuple[str, str] | None = DEFAULT_WIFI,
) -> SimBoard:
    """Create (or re-describe) a board state directory; existing NVS contents are kept.

    A profile without Wi-Fi (the H2 build) gets no WLAN regardless of `wifi`.
    """
    prof = get_profile(profile) if isinstance(profile, str) else profile
    default_mac, default_uid = derive_identity(name)
    mac = (mac or default_mac).replace(":", "").upper()
    if len(mac) != 12 or any(c not in "0123456789ABCDEF" for c in mac):
        raise ValueError(f"MAC must be 12 hex digits, got {mac!r}")
    unique_id = default_uid if unique_id is None else unique_id
    if len(unique_id) != 16:
        raise ValueError(f"unique id must be 16 bytes, got {len(unique_id)}")
    if not prof.wifi:
        wifi = None
    directory.mkdir(parents=True, exist_ok=True)
    board = {
        "name": name,
        "board": prof.name,
        "machine": prof.machine,
        "mac": mac,
        "unique_id": unique_id.hex(),
        "efuse_addr": prof.efuse_unique_id,
        "wifi": None if wifi is None else {"ssid": wifi[0], "password": wifi[1]},
        "led_pin": prof.led_pin,
    }
    (directory / "board.json").write_text(json.dumps(board, indent=2) + "\n")
    return SimBoard(directory, prof, name, mac, unique_id, wifi)


def open_board(directory: Path) -> SimBoard:
    """The board described by an existing state directory."""
    data = json.loads((directory / "board.json").read_text())
    wifi = data["wifi"]
    return SimBoard(
        directory,
        get_profile(data["board"]),
        data["name"],
        data["mac"],
        bytes.fromhex(data["unique_id"]),
        None if wifi is None else (wifi["ssid"], wifi["password"]),
    )
