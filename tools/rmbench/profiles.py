"""Board profiles: one TOML file per board in boards/, loaded into frozen BoardProfile values."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, fields
from functools import cache
from pathlib import Path
from typing import Any

from rmbench import BOARDS_DIR
from rmbench.errors import UsageError
from rmbench.micropython import heap_bytes

CLAIM_MODES = ("self", "token", "host")


@dataclass(frozen=True)
class BoardProfile:
    """What the bench needs to know about one supported board (see boards/*.toml)."""

    name: str
    description: str
    micropython_board: str
    firmware_image: str
    esptool_chip: str
    platform: str
    machine: str
    flash_offset: int
    app_offset: int
    nvs_offset: int
    nvs_size: int
    self_claim: bool
    wifi: bool
    claim_mode: str
    led_pin: int | None
    # The GC heap the board works with: what the port allocates at start-up (gc_heap_initial),
    # grown once (doubled). Sizes at 32 bits, as on the chip.
    gc_heap: str
    gc_heap_initial: str
    efuse_unique_id: int | None = None


def _load(path: Path) -> BoardProfile:
    with path.open("rb") as f:
        data: dict[str, Any] = tomllib.load(f)
    known = {f.name for f in fields(BoardProfile)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise UsageError(f"{path.name}: unknown key(s) {', '.join(unknown)}")
    data.setdefault("led_pin", None)
    try:
        profile = BoardProfile(**data)
    except TypeError as e:
        raise UsageError(f"{path.name}: {e}") from e
    if profile.claim_mode not in CLAIM_MODES:
        raise UsageError(f"{path.name}: claim_mode must be one of {', '.join(CLAIM_MODES)}")
    if profile.self_claim and profile.efuse_unique_id is None:
        raise UsageError(f"{path.name}: a self-claim board needs efuse_unique_id")
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
