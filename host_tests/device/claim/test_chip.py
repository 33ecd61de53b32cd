"""rmclaim.chip: the family table on real board strings, the board profiles, MAC and eFuse id."""

from __future__ import annotations

import importlib
import struct
import warnings
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


def espefuse_unique_id_words(family: str) -> tuple[int, ...]:
    """The register addresses of OPTIONAL_UNIQUE_ID's 32-bit words, lowest first, from
    espefuse's own definitions for the chip (esptool 5.6.0 in .venv: espefuse/efuse/<chip>/
    mem_definition.py, its block table and the fields it loads from efuse_defs/<chip>.yaml);
    () when espefuse defines no such field for the chip."""
    with warnings.catch_warnings():  # espefuse's CLI module imports a deprecated click API
        warnings.simplefilter("ignore", DeprecationWarning)
        mem = importlib.import_module(f"espefuse.efuse.{family}.mem_definition")
    fields = mem.EfuseDefineFields(None)
    found = [
        f
        for group in vars(fields).values()
        if isinstance(group, list)
        for f in group
        if getattr(f, "name", None) == "OPTIONAL_UNIQUE_ID"
    ]
    if not found:
        return ()
    field = found[0]
    assert (field.pos, field.bit_len) == (0, 128), field  # 4 whole words
    blocks = [mem.EfuseDefineBlocks.get(b) for b in mem.EfuseDefineBlocks.BLOCKS]
    (block,) = [b for b in blocks if b.id == field.block]
    return tuple(block.rd_addr + 4 * (field.word + i) for i in range(field.bit_len // 32))


# The families the table knows, as espefuse names the chips.
FAMILIES = ("esp32", "esp32s2", "esp32s3", "esp32c2", "esp32c3", "esp32c6", "esp32h2")


def test_capabilities_per_family(interp: Interpreter) -> None:
    res = run_device(interp, LOOKUP, list(MACHINES))
    caps = {r[0]: (r[2], r[3]) for r in res.values()}
    assert sorted(caps) == sorted(FAMILIES)
    for family in FAMILIES:
        words = espefuse_unique_id_words(family)
        # Self-claim where RainMaker allows it (Kconfig ESP_RMAKER_SELF_CLAIM: not ESP32, C2),
        # always reading OPTIONAL_UNIQUE_ID where espefuse places it.
        self_claim = family not in ("esp32", "esp32c2")
        assert caps[family] == (self_claim, words[0] if self_claim else 0), family
        assert bool(words) >= self_claim, f"espefuse has no OPTIONAL_UNIQUE_ID on {family}"


UNIQUE_ID = """
import sys

class Mem32:
    # Only the words ARGS gives exist: any other address is an error, not a zero.
    def __getitem__(self, addr):
        return ARGS["words"][str(addr)]

class FakeMachine:
    mem32 = Mem32()

sys.modules["machine"] = FakeMachine
from rmclaim import chip
res = {}
for family in ARGS["families"]:
    try:
        res[family] = chip.optional_unique_id(chip.info_for(family)).hex()
    except Exception as e:
        res[family] = err(e)
out(res)
"""


def test_unique_id_read_from_the_words_espefuse_defines(interp: Interpreter) -> None:
    words: dict[str, int] = {}
    expected: dict[str, str] = {}
    families = [f for f in FAMILIES if espefuse_unique_id_words(f)]
    assert families == ["esp32s2", "esp32s3", "esp32c3", "esp32c6", "esp32h2"]
    for n, family in enumerate(families):
        # Each chip its own values, so that no other chip's address can give the right answer
        # (C6 and H2 share theirs: espefuse has them at the same addresses).
        values = [0x11223344 * (n + 1) + i for i in range(4)]
        for addr, value in zip(espefuse_unique_id_words(family), values, strict=True):
            words.setdefault(str(addr), value)
        got_values = [words[str(a)] for a in espefuse_unique_id_words(family)]
        # The field's bytes: each word little-endian, lowest address first (ESP-IDF
        # esp_efuse_read_field_blob, as test_words_to_bytes_known_value checks).
        expected[family] = struct.pack("<4I", *got_values).hex()
    res = run_device(interp, UNIQUE_ID, {"words": words, "families": families})
    assert res == expected


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
