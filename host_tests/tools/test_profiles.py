"""Board profiles load, agree with the chips' known facts, and unknown boards are named."""

from __future__ import annotations

from pathlib import Path

import pytest
from rmbench import BOARDS_DIR
from rmbench.errors import UsageError
from rmbench.profiles import all_profiles, get_profile


def test_every_generic_board_has_a_profile() -> None:
    assert set(all_profiles()) == {
        "esp32",
        "esp32s2",
        "esp32s3",
        "esp32c3",
        "esp32c6",
        "esp32c2",
        "esp32h2",
    }


@pytest.mark.parametrize(
    ("name", "offset", "self_claim"),
    [
        ("esp32", 0x1000, False),
        ("esp32s2", 0x1000, True),
        ("esp32s3", 0x0, True),
        ("esp32c3", 0x0, True),
        ("esp32c6", 0x0, True),
        ("esp32c2", 0x0, False),
        ("esp32h2", 0x0, True),
    ],
)
def test_flash_offsets_and_self_claim(name: str, offset: int, self_claim: bool) -> None:
    profile = get_profile(name)
    assert profile.flash_offset == offset
    assert profile.self_claim is self_claim
    assert profile.nvs_offset == 0x9000
    assert profile.platform == name


def test_lookup_by_micropython_board_name() -> None:
    assert get_profile("ESP32_GENERIC_S3").name == "esp32s3"


def test_unknown_board_lists_known_ones() -> None:
    with pytest.raises(UsageError) as info:
        get_profile("esp8266")
    assert str(info.value) == (
        "unknown board 'esp8266'; known boards: "
        "esp32, esp32c2, esp32c3, esp32c6, esp32h2, esp32s2, esp32s3"
    )


# MICROPY_GC_INITIAL_HEAP_SIZE of each board's released firmware (MicroPython v1.23.0-v1.28.0
# ports/esp32/mpconfigport.h): 56 KB on the ESP32; 36 KB on the C2 and on an S2 built without
# CONFIG_SPIRAM (ESP32_GENERIC_S2 is built with it: boards/sdkconfig.spiram_sx); 64 KB on every
# other chip. The heap then grows from internal RAM, sized to grow once (double it).
@pytest.mark.parametrize(
    ("name", "initial", "working"),
    [
        ("esp32", "56K", "112K"),
        ("esp32s2", "64K", "128K"),
        ("esp32s3", "64K", "128K"),
        ("esp32c3", "64K", "128K"),
        ("esp32c6", "64K", "128K"),
        ("esp32c2", "36K", "72K"),
        ("esp32h2", "64K", "128K"),
    ],
)
def test_gc_heap_is_the_ports_initial_heap_grown_once(
    name: str, initial: str, working: str
) -> None:
    profile = get_profile(name)
    assert (profile.gc_heap_initial, profile.gc_heap) == (initial, working)


def test_a_heap_that_is_no_size_is_refused(tmp_path: Path) -> None:
    text = (BOARDS_DIR / "esp32.toml").read_text()
    (tmp_path / "esp32.toml").write_text(
        text.replace('gc_heap_initial = "56K"', 'gc_heap_initial = "56Q"')
    )
    with pytest.raises(UsageError, match=r"esp32\.toml: gc_heap_initial: heap must be a size"):
        all_profiles(tmp_path)
