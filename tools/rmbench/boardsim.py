"""Simulated boards for the MicroPython Unix port: state directories for tools/boardsim/.

tools/boardsim/ holds MicroPython modules (esp32, machine, os, network, ntptime, esp) that stand
in for a board's when device code runs on the Unix port. They read the board from the directory
named by RMBENCH_BOARD_DIR:

- board.json     what the board is: profile name, os.uname().machine, base MAC, the 16-byte
                 OPTIONAL_UNIQUE_ID and its eFuse address, the bench Wi-Fi it can join, whether
                 its firmware has the bluetooth module;
- nvs.json       NVS contents; esp32.NVS writes through, as ESP-IDF 5 does (each set_blob,
                 set_i32, erase_key is stored when it returns; commit() does nothing);
- pins.log       every pin level change, "<epoch ms> <pin> <level>" per line;
- nvs-opens.log  one line per esp32.NVS construction, "<session> <namespace>" (a session is
                 one run of the interpreter: a boot or a soft reset);
- urandom.log    one line per os.urandom call, "<session> <bytes> on|off": whether a radio
                 was on (with none on, the bytes are a fixed-seed sequence, as predictable as
                 esp_random() without an RF subsystem).

Set RMBENCH_POWER_CUT="nvs:N" to cut the power just before the N-th NVS write (it does not
happen), "nvs:N:after" just after it (it is stored); device code can also call
`_boardsim.power_cut()`. Both kill the interpreter at once.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rmbench import REPO_ROOT
from rmbench.micropython import Interpreter
from rmbench.profiles import BoardProfile, get_profile

SIM_DIR = REPO_ROOT / "tools" / "boardsim"
DEFAULT_WIFI = ("rmbench", "bench-pass")
# Espressif's OUI, so simulated MACs look like real ones (7C:DF:A1:xx:xx:xx).
_OUI = "7CDFA1"
# MicroPython builds without the bluetooth module: the esp32 port has it unless a board sets
# MICROPY_PY_BLUETOOTH 0 (ports/esp32/mpconfigport.h), as ESP32_GENERIC_S2 does (v1.23-v1.28;
# the ESP32-S2 has no Bluetooth). The H2 preview build has it (sdkconfig.ble) but no WLAN.
_NO_BLUETOOTH = frozenset({"ESP32_GENERIC_S2"})


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
    bluetooth: bool = True

    def env(self) -> dict[str, str]:
        """Environment variables that point tools/boardsim at this board."""
        return {"RMBENCH_BOARD_DIR": str(self.directory)}

    def path(self) -> list[Path]:
        """Directories to put first on MICROPYPATH (before lib/)."""
        return [SIM_DIR]

    def nvs(self) -> dict[str, dict[str, bytes | int]]:
        """NVS contents (every finished write): namespace -> key -> bytes (blob) or int (i32)."""
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

    def nvs_opens(self) -> list[dict[str, int]]:
        """esp32.NVS constructions per namespace, one dict per session (boot or soft reset)
        that made any, oldest first."""
        out: dict[str, dict[str, int]] = {}
        for session, namespace in self._log("nvs-opens.log"):
            counts = out.setdefault(session, {})
            counts[namespace] = counts.get(namespace, 0) + 1
        return list(out.values())

    def urandom_calls(self) -> list[tuple[int, bool]]:
        """Every os.urandom call: (bytes asked for, whether a radio was on), oldest first."""
        return [(int(n), state == "on") for _, n, state in self._log("urandom.log")]

    def radio_off_urandom(self) -> list[int]:
        """The sizes of the os.urandom calls made with no radio on (predictable bytes)."""
        return [n for n, on in self.urandom_calls() if not on]

    def _log(self, name: str) -> list[list[str]]:
        path = self.directory / name
        if not path.exists():
            return []
        return [line.split() for line in path.read_text().splitlines() if line]

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
        """Run `code` on this board (boardsim modules first on the path); returns stdout."""
        full_env = {**self.env(), **(env or {})}
        return interpreter.run(
            code,
            path=[*self.path(), *path],
            env=full_env,
            heap=heap or self.profile.gc_heap,
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
    bluetooth: bool | None = None,
) -> SimBoard:
    """Create (or re-describe) a board state directory; existing NVS contents are kept.

    A profile without Wi-Fi (the H2 build) gets no WLAN regardless of `wifi`; `wifi=None`
    describes a build without WLAN. `bluetooth` None: as the profile's MicroPython build.
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
    if bluetooth is None:
        bluetooth = prof.micropython_board not in _NO_BLUETOOTH
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
        "bluetooth": bluetooth,
    }
    (directory / "board.json").write_text(json.dumps(board, indent=2) + "\n")
    return SimBoard(directory, prof, name, mac, unique_id, wifi, bluetooth)


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
        bool(data.get("bluetooth", True)),
    )
