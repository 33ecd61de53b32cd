"""rmclaim.chip: the family table on real board strings, the board profiles, MAC and eFuse id."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import pytest
from rmbench.boardsim import create_board
from rmbench.micropython import Interpreter
from rmbench.profiles import all_profiles

from .support import run_device

# os.uname().machine of every generic MicroPython board and variant (MICROPY_HW_BOARD_NAME
# "with" MICROPY_HW_MCU_NAME), then third-party boards, with the family each must give.
MACHINES = {
    "Generic ESP32 module with ESP32": "esp32",
    "Generic ESP32 module with SPIRAM with ESP32": "esp32",
    "Generic ESP32 module with ESP32-D2WD": "esp32",
    "Generic ESP32 module with ESP32-UNICORE": "esp32",
    "Generic ESP32 module with OTA with ESP32": "esp32",
    "Generic ESP32S2 module with ESP32-S2": "esp32s2",
    "Generic ESP32S3 module with ESP32-S3": "esp32s3",
    "Generic ESP32S3 module with Octal-SPIRAM with ESP32-S3": "esp32s3",
    "ESP32C2 module with ESP32-C2": "esp32c2",
    "Generic ESP32-C2 module with 2MiB Flash with ESP32-C2": "esp32c2",
    "ESP32C3 module with ESP32-C3": "esp32c3",
    "Generic ESP32C3 module with QEMU with ESP32-C3": "esp32c3",
    "ESP32C6 module with ESP32-C6": "esp32c6",
    "ESP32H2 module with ESP32-H2": "esp32h2",
    # third-party boards: longer MCU names
    "Adafruit QT Py ESP32-S3 no psram with ESP32-S3-FN8": "esp32s3",
    "Seeed Studio XIAO ESP32C3 with ESP32-C3FH4": "esp32c3",
    "LOLIN_S2_MINI with ESP32-S2FN4R2": "esp32s2",
    "TinyPICO with ESP32-PICO-D4": "esp32",
    "M5Stack ATOM with ESP32-PICO-V3-02": "esp32",
    "Olimex ESP32 with ESP32-U4WDH": "esp32",
    "ESP32 SOLO with ESP32-S0WD": "esp32",
    "ESP32-C3 SuperMini with ESP8685": "esp32c3",
    "ESP8684 DevKit with ESP8684": "esp32c2",
    "UM FeatherS3 with ESP32S3": "esp32s3",
}
# Chips the table does not know must be refused, not taken for a classic ESP32.
UNKNOWN = [
    "ESP32C5 module with ESP32-C5",
    "ESP32P4 module with ESP32-P4",
    "ESP32C61 module with ESP32-C61",
    "linux [GCC 14.2.1] version",
    "Raspberry Pi Pico with RP2040",
]

LOOKUP = """
from rmclaim import chip
res = {}
for m in ARGS:
    try:
        i = chip.lookup(m)
        res[m] = [i.family, i.platform, i.self_claim, i.efuse_addr]
    except Exception as e:
        res[m] = err(e)
out(res)
"""


def test_family_table_on_real_board_strings(interp: Interpreter) -> None:
    res = run_device(interp, LOOKUP, [*MACHINES, *UNKNOWN])
    for machine, family in MACHINES.items():
        assert res[machine][:2] == [family, family], machine
    for machine in UNKNOWN:
        r = res[machine]
        assert r["kind"] == "UnsupportedChip", machine
        assert repr(machine) in r["error"]
        assert (
            "known families: esp32s2, esp32s3, esp32c2, esp32c3, esp32c6, esp32h2, esp32"
            in (r["error"])
        )


def test_capabilities_per_family(interp: Interpreter) -> None:
    res = run_device(interp, LOOKUP, list(MACHINES))
    caps = {r[0]: (r[2], r[3]) for r in res.values()}
    assert caps == {
        "esp32": (False, 0),
        "esp32c2": (False, 0),
        "esp32s2": (True, 0x3F41A05C),
        "esp32s3": (True, 0x6000705C),
        "esp32c3": (True, 0x6000885C),
        "esp32c6": (True, 0x600B085C),
        "esp32h2": (True, 0x600B085C),
    }


def test_chip_table_agrees_with_board_profiles(interp: Interpreter) -> None:
    profiles = all_profiles()
    res = run_device(interp, LOOKUP, [p.machine for p in profiles.values()])
    assert len(profiles) == 7
    for p in profiles.values():
        family, platform, self_claim, efuse = res[p.machine]
        assert (family, platform) == (p.name, p.platform), p.name
        assert self_claim == p.self_claim, p.name
        assert efuse == (p.efuse_unique_id or 0), p.name


def test_words_to_bytes_known_value(interp: Interpreter) -> None:
    # Words as mem32 returns them on a 32-bit port (the last one >= 0x80000000 comes back
    # negative) and the bytes ESP-IDF's esp_efuse_read_field_blob gives for them: each
    # register word little-endian, lowest address first (checked here with struct "<4I").
    words = [0x03020100, 0x07060504, 0x0B0A0908, 0x8F0E0D0C - (1 << 32)]
    code = "from rmclaim import chip\nout(chip.words_to_bytes(ARGS).hex())"
    got = run_device(interp, code, words)
    expected = struct.pack("<4I", *(w & 0xFFFFFFFF for w in words))
    assert got == expected.hex() == "000102030405060708090a0b0c0d0e8f"


IDENTITY = """
from rmclaim import chip
try:
    i = chip.identity()
    res = {"machine": i.machine, "family": i.info.family, "mac": i.mac,
           "self_claim": i.self_claim}
    res["uid"] = chip.optional_unique_id(i.info).hex() if i.self_claim else None
except Exception as e:
    res = err(e)
out(res)
"""


@pytest.mark.parametrize("name", sorted(all_profiles()))
def test_identity_on_simulated_boards(mpy: Interpreter, tmp_path: Path, name: str) -> None:
    # The first uid byte >= 0x80 makes a word negative: masking is exercised on every board.
    uid = bytes([0x9C]) + bytes(range(1, 16))
    board = create_board(tmp_path / name, name, name="b-" + name, unique_id=uid)
    res = run_device(mpy, IDENTITY, None, board=board)
    profile = all_profiles()[name]
    assert res["family"] == profile.platform
    assert res["mac"] == board.mac and len(res["mac"]) == 12 and res["mac"] == res["mac"].upper()
    assert res["self_claim"] == profile.self_claim
    assert res["uid"] == (uid.hex() if profile.self_claim else None)


def test_unprogrammed_unique_id_refused(mpy: Interpreter, tmp_path: Path) -> None:
    board = create_board(tmp_path / "zero", "esp32c3", name="zero", unique_id=bytes(16))
    res: dict[str, Any] = run_device(mpy, IDENTITY, None, board=board)
    assert res["kind"] == "UnsupportedChip"
    assert "0x6000885C reads as all zeros" in res["error"]
