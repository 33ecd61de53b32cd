"""rmclaim.chip: the family table on real board strings, the board profiles, MAC and eFuse id."""

from __future__ import annotations

import importlib
import shutil
import struct
import warnings
from pathlib import Path
from typing import Any

import pytest
from rmbench import BOARDS_DIR, codegen_boards
from rmbench.boardsim import create_board
from rmbench.errors import UsageError
from rmbench.micropython import Interpreter
from rmbench.profiles import all_profiles, family_of
from rmbench.releases import RELEASES

from .support import run_device

# os.uname().machine strings with the family each must give. The generic boards' strings of
# every release (v1.22 to the preview) come from the board profiles (test_release_strings);
# these are the variants of the generic boards, as released firmware and the preview spell them
# (MICROPY_HW_BOARD_NAME " with " MICROPY_HW_MCU_NAME in each variant's mpconfigvariant_*.cmake,
# v1.23.0-v1.28.0 and master 1c3c201149), then third-party boards.
MACHINES = {
    # ESP32_GENERIC variants: SPIRAM and OTA change the board name, D2WD and UNICORE the MCU
    # name, with a hyphen in every release.
    "Generic ESP32 module with SPIRAM with ESP32": "esp32",
    "Generic ESP32 module with ESP32-D2WD": "esp32",
    "Generic ESP32 module with ESP32-UNICORE": "esp32",
    "Generic ESP32 module with OTA with ESP32": "esp32",
    # ESP32_GENERIC_S3 SPIRAM_OCT, released and preview.
    "Generic ESP32S3 module with Octal-SPIRAM with ESP32S3": "esp32s3",
    "Generic ESP32S3 module with Octal-SPIRAM with ESP32-S3": "esp32s3",
    # ESP32_GENERIC_C2 FLASH_2M (v1.27+): a hyphen in the board name of a release.
    "Generic ESP32-C2 module with 2MiB Flash with ESP32C2": "esp32c2",
    "Generic ESP32-C2 module with 2MiB Flash with ESP32-C2": "esp32c2",
    # ESP32_GENERIC_C3 QEMU (preview only).
    "Generic ESP32C3 module with QEMU with ESP32-C3": "esp32c3",
    # third-party boards: their own MCU names
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
# Chips the table does not know must be refused, not taken for a classic ESP32: C5 and P4
# (generic boards from v1.27.0, released and preview spellings), C61, and other ports.
UNKNOWN = [
    "ESP32C5 module with ESP32C5",
    "ESP32C5 module with ESP32-C5",
    "Generic ESP32P4 module with ESP32P4",
    "Generic ESP32P4 module with ESP32-P4",
    "Generic ESP32P4 module with WIFI module of external ESP32C6 with ESP32P4",
    "ESP32C61 module with ESP32-C61",
    "linux [GCC 14.2.1] version",
    "Raspberry Pi Pico with RP2040",
]
KNOWN_FAMILIES = "known families: esp32c2, esp32c3, esp32c6, esp32h2, esp32s2, esp32s3, esp32"


def release_strings() -> dict[str, str]:
    """Every generic board's machine string in every release that has it (v1.22 included)."""
    out = {}
    for p in all_profiles().values():
        for release in RELEASES:
            if release.at_least(p.first_release):
                out[p.machine_for(release)] = p.platform
    return out


LOOKUP = """
from rmclaim import chip
res = {}
for m in ARGS:
    try:
        i = chip.lookup(m)
        res[m] = [i.family, i.platform, i.self_claim, i.efuse_addr, i.led_kind, i.led_pin]
    except Exception as e:
        res[m] = err(e)
out(res)
"""


def test_release_strings() -> None:
    # What the profiles say each release prints (verified at the release tags): no hyphen in
    # any released generic board's MCU name, one after "ESP32" in the preview's.
    got = release_strings()
    assert "Generic ESP32S3 module with ESP32S3" in got
    assert "Generic ESP32S3 module with ESP32-S3" in got
    assert "ESP32C6 module with ESP32C6" in got
    for p in all_profiles().values():
        for release in p.releases():
            mcu = p.machine_for(release).rsplit(" with ", 1)[1]
            hyphen = release.name == "preview" and p.platform != "esp32"
            assert ("-" in mcu) is hyphen, (p.name, release.name, mcu)


def test_family_table_on_real_board_strings(interp: Interpreter) -> None:
    expected = {**release_strings(), **MACHINES}
    res = run_device(interp, LOOKUP, [*expected, *UNKNOWN])
    for machine, family in expected.items():
        assert res[machine][:2] == [family, family], machine
    for machine in UNKNOWN:
        r = res[machine]
        assert r["kind"] == "UnsupportedChip", machine
        assert repr(machine) in r["error"]
        assert KNOWN_FAMILIES in r["error"]


def test_host_tools_read_machine_strings_as_the_device_does(interp: Interpreter) -> None:
    # rmbench's family_of (deploy's chip check) and the device library give the same answer
    # on every string, unknown ones included.
    strings = [*release_strings(), *MACHINES, *UNKNOWN]
    res = run_device(interp, LOOKUP, strings)
    for machine in strings:
        try:
            host: Any = family_of(machine)
        except UsageError as e:
            host = str(e)
            assert res[machine]["error"] == host
            continue
        assert res[machine][0] == host, machine


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
    res = run_device(interp, LOOKUP, [*release_strings(), *MACHINES])
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
for family, machine in ARGS["families"]:
    try:
        res[family] = chip.optional_unique_id(chip.lookup(machine)).hex()
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
    machines = [[f, all_profiles()[f].machine] for f in families]
    res = run_device(interp, UNIQUE_ID, {"words": words, "families": machines})
    assert res == expected


def test_chip_table_agrees_with_board_profiles(interp: Interpreter) -> None:
    profiles = all_profiles()
    res = run_device(interp, LOOKUP, [p.machine for p in profiles.values()])
    assert len(profiles) == 7
    for p in profiles.values():
        family, platform, self_claim, efuse, led_kind, led_pin = res[p.machine]
        assert (family, platform) == (p.name, p.platform), p.name
        assert self_claim == p.self_claim, p.name
        assert efuse == (p.efuse_unique_id or 0), p.name
        assert p.led is not None
        assert (led_kind, led_pin) == (p.led.kind, p.led.pin), p.name


def test_generated_chip_table_is_up_to_date() -> None:
    # `python -m rmbench.codegen_boards --check`: the table chip.py carries is the profiles'.
    assert codegen_boards.main(["--check"]) == 0
    source = codegen_boards.CHIP_PATH.read_text()
    assert codegen_boards.render(source) == source


def test_chip_table_check_fails_when_a_profile_changes(tmp_path: Path) -> None:
    # The check bites: a profile whose LED moved makes the carried table stale.
    boards = tmp_path / "boards"
    shutil.copytree(BOARDS_DIR, boards)
    s3 = boards / "esp32s3.toml"
    s3.write_text(s3.read_text().replace("pin = 48", "pin = 38"))
    source = codegen_boards.CHIP_PATH.read_text()
    assert codegen_boards.render(source, boards) != source
    assert '("esp32s3", ("ESP32S3",), True, 0x6000705C, "rgb", 38)' in codegen_boards.render(
        source, boards
    )


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
