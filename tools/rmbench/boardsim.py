"""Simulated boards for the MicroPython Unix port: state directories for tools/boardsim/.

tools/boardsim/ holds MicroPython modules (esp32, machine, os, network, ntptime, esp) that stand
in for a board's when device code runs on the Unix port. They read the board from the directory
named by RMBENCH_BOARD_DIR:

- board.json     what the board is: profile name, the MicroPython release it runs and what
                 that reports (os.uname(), sys.implementation), base MAC, the 16-byte
                 OPTIONAL_UNIQUE_ID and its eFuse address, the access points in range, its
                 LED, whether its firmware has the bluetooth module, and the loopback port
                 that stands for its soft-AP's 192.168.4.1:80 (softap_port);
- nvs.json       NVS contents; esp32.NVS writes through, as ESP-IDF 5 does (each set_blob,
                 set_i32, erase_key is stored when it returns; commit() does nothing);
- pins.log       every pin level change, "<epoch ms> <pin> <level>" per line, and what
                 machine.bitstream sent to an addressable LED, "<epoch ms> <pin> bits <hex>";
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
from rmbench.micropython import Interpreter, compile_library, compile_package
from rmbench.profiles import BoardProfile, get_profile
from rmbench.releases import DEFAULT_RELEASE, Release, get_release

SIM_DIR = REPO_ROOT / "tools" / "boardsim"
DEFAULT_WIFI = ("rmbench", "bench-pass")
# Espressif's OUI, so simulated MACs look like real ones (7C:DF:A1:xx:xx:xx).
_OUI = "7CDFA1"
# MicroPython builds without the bluetooth module: the esp32 port has it unless a board sets
# MICROPY_PY_BLUETOOTH 0 (ports/esp32/mpconfigport.h), as ESP32_GENERIC_S2 does (v1.23-v1.28;
# the ESP32-S2 has no Bluetooth). The H2 preview build has it (sdkconfig.ble) but no WLAN.
_NO_BLUETOOTH = frozenset({"ESP32_GENERIC_S2"})


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
    firmware: str = DEFAULT_RELEASE  # the MicroPython release it runs (rmbench.releases)
    bluetooth: bool = True
    softap_port: int | None = None  # the loopback port standing for its soft-AP's 192.168.4.1:80

    @property
    def softap(self) -> str | None:
        """HOST:PORT of the board's port 80 as its soft-AP clients reach it, or None."""
        return None if self.softap_port is None else f"127.0.0.1:{self.softap_port}"

    def env(self) -> dict[str, str]:
        """Environment variables that point tools/boardsim at this board."""
        return {"RMBENCH_BOARD_DIR": str(self.directory)}

    def path(self) -> list[Path]:
        """Directories to put first on MICROPYPATH (before lib/)."""
        return [SIM_DIR]

    def update(self, **fields: Any) -> None:
        """Change board.json (the doubles read it at each use): e.g. `aps`, `wifi_faults`,
        `ntp_fault`, `idf_log`, `ap_stations` (see tools/boardsim)."""
        path = self.directory / "board.json"
        data = json.loads(path.read_text())
        data.update(fields)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2) + "\n")
        tmp.replace(path)

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
        """Every recorded pin change: (epoch ms, pin, level).

        An addressable LED's write counts as level 1 when any colour is lit, else 0 (its
        colours: `led_colors`).
        """
        return [
            (ms, pin, int(any(data)) if isinstance(data, bytes) else data)
            for ms, pin, data in self._pin_rows()
        ]

    def led_colors(self, pin: str | int) -> list[tuple[int, tuple[int, int, int]]]:
        """(epoch ms, (r, g, b)) of every write to the WS2812 LED on `pin` (first pixel)."""
        return [
            (ms, (data[1], data[0], data[2]))
            for ms, p, data in self._pin_rows()
            if p == str(pin) and isinstance(data, bytes)
        ]

    def _pin_rows(self) -> list[tuple[int, str, int | bytes]]:
        # pins.log: "<ms> <pin> <level>" for a GPIO, "<ms> <pin> bits <hex>" for what
        # machine.bitstream sent (a WS2812 pixel is G, R, B).
        path = self.directory / "pins.log"
        if not path.exists():
            return []
        rows: list[tuple[int, str, int | bytes]] = []
        for line in path.read_text().splitlines():
            parts = line.split()
            if parts[2] == "bits":
                rows.append((int(parts[0]), parts[1], bytes.fromhex(parts[3])))
            else:
                rows.append((int(parts[0]), parts[1], int(parts[2])))
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


def firmware_facts(profile: BoardProfile, release: Release) -> dict[str, Any]:
    """board.json "firmware": what `release` reports on `profile`'s board (see releases)."""
    return {
        "name": release.name,
        "release": release.release,
        "git_tag": release.git_tag,
        "date": release.date,
        "version": list(release.version),
        "mpy": release.mpy(profile.mpy_arch),
        # sys.implementation._build arrived in v1.25.0, _thread in v1.26.0 (py/modsys.c).
        "build": profile.micropython_board if release.at_least("1.25") else None,
        "thread": "GIL" if release.at_least("1.26") else None,
        "if_sta": release.at_least("1.23"),
    }


def create_board(
    directory: Path,
    profile: BoardProfile | str,
    *,
    name: str,
    mac: str | None = None,
    unique_id: bytes | None = None,
    wifi: tuple[str, str] | None = DEFAULT_WIFI,
    aps: Sequence[dict[str, Any]] = (),
    firmware: str | Release | None = None,
    bluetooth: bool | None = None,
    wlan: bool | None = None,
    softap_port: int | None = None,
) -> SimBoard:
    """Create (or re-describe) a board state directory; existing NVS contents are kept.

    Args:
        wifi: the bench access point (SSID, password) the board's config names, or None.
        aps: more access points in range (dicts as tools/boardsim/network.py reads them:
            ssid, password, rssi, channel, auth_fail_reason).
        firmware: the MicroPython release the board runs (default: the profile's default,
            1.28 where it has the board).
        bluetooth: whether its build has the bluetooth module (None: as the profile's
            MicroPython build).
        wlan: whether its build has network.WLAN (None: as the profile's; False with no
            bluetooth makes a build with no radio at all).
        softap_port: the loopback port the board's port 80 is bound to (its soft-AP's
            192.168.4.1:80, see tools/boardsim/socket.py), or None (no server reachable).
    A profile without Wi-Fi (the H2 build) gets no WLAN regardless of `wifi`.
    Raises:
        ValueError: a bad MAC or unique id.
        UsageError: the release has no firmware for this board.
    """
    prof = get_profile(profile) if isinstance(profile, str) else profile
    release = (
        get_release(firmware or prof.default_release())
        if not isinstance(firmware, Release)
        else firmware
    )
    machine = prof.machine_for(release)
    default_mac, default_uid = derive_identity(name)
    mac = (mac or default_mac).replace(":", "").upper()
    if len(mac) != 12 or any(c not in "0123456789ABCDEF" for c in mac):
        raise ValueError(f"MAC must be 12 hex digits, got {mac!r}")
    unique_id = default_uid if unique_id is None else unique_id
    if len(unique_id) != 16:
        raise ValueError(f"unique id must be 16 bytes, got {len(unique_id)}")
    if not prof.wifi:
        wifi = None
    access_points = [] if wifi is None else [{"ssid": wifi[0], "password": wifi[1]}]
    access_points += [dict(ap) for ap in aps if prof.wifi]
    if bluetooth is None:
        bluetooth = prof.micropython_board not in _NO_BLUETOOTH
    directory.mkdir(parents=True, exist_ok=True)
    board = {
        "name": name,
        "board": prof.name,
        "machine": machine,
        "firmware": firmware_facts(prof, release),
        "mac": mac,
        "unique_id": unique_id.hex(),
        "efuse_addr": prof.efuse_unique_id,
        "wlan": prof.wifi if wlan is None else wlan,
        "wifi": None if wifi is None else {"ssid": wifi[0], "password": wifi[1]},
        "aps": access_points,
        "led": None if prof.led is None else {"kind": prof.led.kind, "pin": prof.led.pin},
        "bluetooth": bluetooth,
        "softap_port": softap_port,
    }
    (directory / "board.json").write_text(json.dumps(board, indent=2) + "\n")
    return SimBoard(
        directory, prof, name, mac, unique_id, wifi, release.name, bluetooth, softap_port
    )


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
        (data.get("firmware") or {}).get("name", DEFAULT_RELEASE),
        bool(data.get("bluetooth", True)),
        data.get("softap_port"),
    )
