"""Board profiles: one TOML file per board in boards/, loaded into frozen BoardProfile values."""

from __future__ import annotations

import importlib
import sys
import tomllib
from dataclasses import dataclass, fields
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

from rmbench import BOARDS_DIR
from rmbench.errors import UsageError
from rmbench.micropython import heap_bytes
from rmbench.releases import DEFAULT_RELEASE, RELEASES, Release, get_release

CLAIM_MODES = ("self", "token", "host")
LED_KINDS = ("rgb", "gpio")
MPY_ARCHS = ("xtensawin", "rv32imc")


@dataclass(frozen=True)
class StatusLED:
    """The board's user LED: an addressable RGB LED (WS2812, "rgb") or a plain one ("gpio")."""

    kind: str
    pin: int
    variants: tuple[tuple[str, int], ...] = ()  # other board revisions: (name, pin)

    def spec(self, pin: int | None = None) -> str:
        """The firmware's `status_led` config value for this LED ("rgb:48")."""
        return f"{self.kind}:{self.pin if pin is None else pin}"


def led_spec(profile: BoardProfile, value: str) -> str:
    """The `status_led` config value for `--status-led VALUE`: "rgb:PIN", "gpio:PIN", "none",
    or the name of a board revision in the profile's [led] variants (e.g. devkitc-1-v1.1).

    Raises:
        UsageError: neither; the message lists the profile's revisions.
    """
    kind, sep, pin = value.partition(":")
    if value == "none" or (sep and kind in LED_KINDS and pin.isdigit()):
        return value
    for name, variant_pin in profile.led.variants if profile.led else ():
        if name == value and profile.led is not None:
            return profile.led.spec(variant_pin)
    revisions = ", ".join(n for n, _ in profile.led.variants) if profile.led else ""
    raise UsageError(
        "--status-led wants rgb:PIN, gpio:PIN, none"
        + (f" or a board revision of {profile.name} ({revisions})" if revisions else "")
        + f"; got {value!r}"
    )


@dataclass(frozen=True)
class BoardProfile:
    """What the bench needs to know about one supported board (see boards/*.toml)."""

    name: str
    description: str
    micropython_board: str
    firmware_image: str
    esptool_chip: str
    platform: str
    mcu_names: tuple[str, ...]
    mpy_arch: str
    # (first release, os.uname().machine from then on), oldest first
    machine_by_release: tuple[tuple[str, str], ...]
    flash_offset: int
    app_offset: int
    nvs_offset: int
    nvs_size: int
    self_claim: bool
    wifi: bool
    claim_mode: str
    led: StatusLED | None
    # The GC heap the board works with: what the port allocates at start-up (gc_heap_initial),
    # grown once (doubled). Sizes at 32 bits, as on the chip.
    gc_heap: str
    gc_heap_initial: str
    efuse_unique_id: int | None = None

    @property
    def first_release(self) -> str:
        """The first MicroPython release with a firmware for this board ("preview": none yet)."""
        return self.machine_by_release[0][0]

    @property
    def machine(self) -> str:
        """os.uname().machine on the default release (or the first one with this board)."""
        return self.machine_for(self.default_release())

    @property
    def led_pin(self) -> int | None:
        """The status LED's pin, or None when the board has none."""
        return self.led.pin if self.led else None

    def releases(self) -> list[Release]:
        """The MicroPython releases (and the preview) that have a firmware for this board."""
        first = get_release(self.first_release)
        return [r for r in RELEASES if r.supported and r.key() >= first.key()]

    def default_release(self) -> str:
        """DEFAULT_RELEASE, or the first release with this board when that is newer."""
        if get_release(DEFAULT_RELEASE).at_least(self.first_release):
            return DEFAULT_RELEASE
        return self.first_release

    def check_release(self, release: Release) -> None:
        """Raises UsageError when `release` has no firmware for this board (naming the first)."""
        if not release.at_least(self.first_release):
            first = get_release(self.first_release)
            have = (
                "no MicroPython release has one yet; the preview is the first"
                if first.name == "preview"
                else f"the first release with one is v{first.release}"
            )
            raise UsageError(
                f"MicroPython v{release.release} has no firmware for {self.name} "
                f"({self.micropython_board}): {have}",
                board=self.name,
            )

    def machine_for(self, release: str | Release) -> str:
        """os.uname().machine as `release` spells it for this board.

        Raises:
            UsageError: that release has no firmware for this board.
        """
        rel = get_release(release) if isinstance(release, str) else release
        self.check_release(rel)
        found = self.machine_by_release[0][1]
        for first, machine in self.machine_by_release:
            if rel.at_least(first):
                found = machine
        return found


def _profile(path: Path, data: dict[str, Any]) -> BoardProfile:
    # The TOML tables ([machine], [led]) as the dataclass holds them.
    machine = data.pop("machine", None)
    if not isinstance(machine, dict) or not machine:
        raise UsageError(f"{path.name}: [machine] must map releases to machine strings")
    try:
        rows = sorted(((get_release(k), v) for k, v in machine.items()), key=lambda r: r[0].key())
    except UsageError as e:
        raise UsageError(f"{path.name}: [machine]: {e}") from e
    data["machine_by_release"] = tuple((r.name, str(v)) for r, v in rows)
    led = data.pop("led", None)
    if led is not None:
        try:
            variants = tuple((str(k), int(v)) for k, v in led.get("variants", {}).items())
            data["led"] = StatusLED(str(led["kind"]), int(led["pin"]), variants)
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise UsageError(f"{path.name}: [led] needs kind and pin ({e})") from e
        if data["led"].kind not in LED_KINDS:
            raise UsageError(f"{path.name}: [led] kind must be one of {', '.join(LED_KINDS)}")
    else:
        data["led"] = None
    data["mcu_names"] = tuple(data.get("mcu_names", ()))
    return BoardProfile(**data)


def _load(path: Path) -> BoardProfile:
    with path.open("rb") as f:
        data: dict[str, Any] = tomllib.load(f)
    known = {f.name for f in fields(BoardProfile)} - {"machine_by_release"} | {"machine"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise UsageError(f"{path.name}: unknown key(s) {', '.join(unknown)}")
    try:
        profile = _profile(path, data)
    except TypeError as e:
        raise UsageError(f"{path.name}: {e}") from e
    if profile.claim_mode not in CLAIM_MODES:
        raise UsageError(f"{path.name}: claim_mode must be one of {', '.join(CLAIM_MODES)}")
    if profile.self_claim and profile.efuse_unique_id is None:
        raise UsageError(f"{path.name}: a self-claim board needs efuse_unique_id")
    if profile.mpy_arch not in MPY_ARCHS:
        raise UsageError(f"{path.name}: mpy_arch must be one of {', '.join(MPY_ARCHS)}")
    if not profile.mcu_names:
        raise UsageError(f"{path.name}: mcu_names must name the chip's MCU strings")
    for key in ("gc_heap", "gc_heap_initial"):
        try:
            heap_bytes(getattr(profile, key))
        except ValueError as e:
            raise UsageError(f"{path.name}: {key}: {e}") from e
    if heap_bytes(profile.gc_heap) < heap_bytes(profile.gc_heap_initial):
        raise UsageError(f"{path.name}: gc_heap is smaller than gc_heap_initial")
    if path.stem != profile.name:
        raise UsageError(f"{path.name}: name {profile.name!r} does not match the file name")
    return profile


@cache
def all_profiles(directory: Path = BOARDS_DIR) -> dict[str, BoardProfile]:
    """Every board profile, by name."""
    return {p.stem: _load(p) for p in sorted(directory.glob("*.toml"))}


@cache
def _device_chip() -> ModuleType:
    # The device library's own chip detection (lib/rmclaim/chip.py), imported into this
    # process: the host reads machine strings with the very code and table the boards run.
    from rmbench import LIB_DIR
    from rmbench.micropython import HOSTSHIMS_DIR

    for folder in (str(LIB_DIR), str(HOSTSHIMS_DIR)):
        if folder not in sys.path:
            sys.path.append(folder)
    return importlib.import_module("rmclaim.chip")


def family_of(machine: str) -> str:
    """The chip family (RainMaker platform) of an os.uname().machine string, as the device
    library finds it ("Generic ESP32S3 module with ESP32S3" -> "esp32s3").

    Raises:
        UsageError: the device library knows no chip in it (the message lists the families).
    """
    chip = _device_chip()
    try:
        return str(chip.lookup(machine).family)
    except chip.UnsupportedChip as e:
        raise UsageError(str(e)) from e


def check_machine(profile: BoardProfile, machine: str, *, board: str | None = None) -> None:
    """Refuse a board whose machine string is not `profile`'s chip.

    Raises:
        UsageError: names what the board says and which board the profile is.
    """
    family = family_of(machine)
    if family != profile.platform:
        raise UsageError(
            f"the board says it is {machine!r} ({family}), but board {profile.name} is "
            f"{profile.platform}",
            board=board,
            step="check chip",
            hint=f"use --board {family}",
        )


def get_profile(name: str, directory: Path = BOARDS_DIR) -> BoardProfile:
    """The profile called `name` (case-insensitive; ESP32_GENERIC_S3 also finds esp32s3)."""
    profiles = all_profiles(directory)
    key = name.strip().lower()
    if key in profiles:
        return profiles[key]
    for profile in profiles.values():
        if profile.micropython_board.lower() == key:
            return profile
    raise UsageError(f"unknown board {name!r}; known boards: {', '.join(profiles)}")
