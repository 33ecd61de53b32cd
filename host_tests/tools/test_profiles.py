"""Board profiles load, agree with the facts in DESIGN.md, and unknown boards are named."""

from __future__ import annotations

import pytest
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
