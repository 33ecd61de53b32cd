"""Chip identity: family, RainMaker platform, base MAC, self-claim capability, eFuse unique id."""

from micropython import const

from rmclaim.errors import UnsupportedChip

# One row per chip family (esptool CHIP_DEFS style): callers ask for capabilities, never names.
#   family: CONFIG_IDF_TARGET, which RainMaker sends as "platform";
#   MCU names: what the MCU part of os.uname().machine starts with, once upper-cased with "-",
#     "_" and spaces removed (released firmware says "ESP32S3", the preview "ESP32-S3", a
#     third-party board "ESP32-S3-FN8": all "ESP32S3..."; ESP8684/ESP8685 are C2/C3 in another
#     package);
#   self-claim: RainMaker's unauthenticated claiming (Kconfig ESP_RMAKER_SELF_CLAIM: not on
#     ESP32 and C2); the eFuse address of OPTIONAL_UNIQUE_ID, its HMAC key, or 0;
#   the status LED of the board's DevKit: kind ("rgb" WS2812, "gpio" plain) and pin.
# The sources of each fact are in boards/*.toml, which this table is generated from; the
# classic ESP32 row, whose name prefixes all the others, comes last.
# BEGIN chip table, generated from boards/*.toml by `python -m rmbench.codegen_boards`
_CHIPS = (
    ("esp32c2", ("ESP32C2", "ESP8684"), False, 0, "rgb", 8),
    ("esp32c3", ("ESP32C3", "ESP8685"), True, 0x6000885C, "rgb", 8),
    ("esp32c6", ("ESP32C6",), True, 0x600B085C, "rgb", 8),
    ("esp32h2", ("ESP32H2",), True, 0x600B085C, "rgb", 8),
    ("esp32s2", ("ESP32S2",), True, 0x3F41A05C, "rgb", 18),
    ("esp32s3", ("ESP32S3",), True, 0x6000705C, "rgb", 48),
    ("esp32", ("ESP32",), False, 0, "gpio", 2),
)
# END chip table
_UID_LEN = const(16)
_MAC_LEN = const(6)


class ChipInfo:
    # What the claim and the firmware need to know about a chip family (one row of _CHIPS).
    # Plain data, no methods: holding one does not keep this module loaded.
    family = ""
    platform = ""
    self_claim = False
    efuse_addr = 0
    led_kind = ""
    led_pin = 0


def _info(row):
    info = ChipInfo()
    info.family = info.platform = row[0]
    info.self_claim = row[2]
    info.efuse_addr = row[3]
    info.led_kind = row[4]
    info.led_pin = row[5]
    return info


def families():
    return tuple(row[0] for row in _CHIPS)


def _mcu_part(machine):
    # "<board name> with <MCU name>" (MICROPY_BANNER_MACHINE): the MCU name says the chip; a
    # board name such as "Generic ESP32S3 module" must not. Without " with ", use it all.
    i = machine.rfind(" with ")
    s = machine[i + 6 :] if i >= 0 else machine
    out = []
    for c in s.upper():
        if c not in "-_ ":
            out.append(c)
    return "".join(out)


def _is_newer_family(rest):
    # What follows "ESP32" in an MCU name the table does not know: "C5", "C61", "P4", "H4",
    # "S31"... (a letter then a digit, or S then two digits) is a newer chip, not a classic
    # ESP32 variant such as "D0WD", "PICOD4", "U4WDH", "S0WD", "D2WD", "UNICORE".
    if len(rest) < 2 or not rest[1].isdigit():
        return False
    if rest[0] in "CHP":
        return True
    return rest[0] == "S" and len(rest) > 2 and rest[2].isdigit()


def lookup(machine):
    # The chip family of an os.uname().machine string, e.g. "Generic ESP32S3 module with
    # ESP32-S3" or a third-party "... with ESP32-S3-FN8". Raises UnsupportedChip otherwise.
    mcu = _mcu_part(machine)
    for row in _CHIPS:
        family = row[0]
        for name in row[1]:
            i = mcu.find(name)
            if i < 0:
                continue
            rest = mcu[i + len(name) :]
            # "ESP32C61" is not a C6, and "ESP32C5" is not a classic ESP32.
            if family == "esp32" and _is_newer_family(rest):
                continue
            if family != "esp32" and rest[:1].isdigit():
                continue
            return _info(row)
    raise UnsupportedChip(
        "chip: unknown chip in machine string %r; known families: %s"
        % (machine, ", ".join(families()))
    )


def machine_string():
    import os

    try:
        return os.uname().machine
    except AttributeError:
        # The Unix port and CPython on some hosts lack os.uname; so do odd firmwares.
        import sys

        return getattr(sys.implementation, "_machine", sys.platform)


def base_mac():
    # The factory base MAC from eFuse as RainMaker sends it: 12 uppercase hex digits, no
    # separators (the self-claim node id).
    import machine

    mac = machine.unique_id()
    if len(mac) != _MAC_LEN:
        raise UnsupportedChip(
            "chip: wanted a %d-byte base MAC from machine.unique_id(), got %d bytes"
            % (_MAC_LEN, len(mac))
        )
    return "%02X%02X%02X%02X%02X%02X" % tuple(mac)


def words_to_bytes(words):
    # The eFuse block as ESP-IDF's esp_efuse_read_field_blob returns it: each 32-bit register
    # word little-endian, lowest address first. mem32 gives words >= 0x80000000 as negative
    # numbers on 32-bit ports, so each is masked to 32 bits first.
    out = bytearray(4 * len(words))
    for i, w in enumerate(words):
        w &= 0xFFFFFFFF
        out[4 * i] = w & 0xFF
        out[4 * i + 1] = (w >> 8) & 0xFF
        out[4 * i + 2] = (w >> 16) & 0xFF
        out[4 * i + 3] = w >> 24
    return bytes(out)


def optional_unique_id(info):
    # The 16-byte OPTIONAL_UNIQUE_ID, the self-claim HMAC key. Factory-burned on chips that can
    # self-claim; all zeros means it was never programmed.
    if not info.efuse_addr:
        raise UnsupportedChip(
            "chip: %s has no OPTIONAL_UNIQUE_ID to self-claim with" % info.family
        )
    import machine

    addr = info.efuse_addr
    words = []
    for i in range(_UID_LEN // 4):
        words.append(machine.mem32[addr + 4 * i])
    uid = words_to_bytes(words)
    if uid == bytes(_UID_LEN):
        raise UnsupportedChip(
            "chip: eFuse OPTIONAL_UNIQUE_ID at 0x%08X reads as all zeros (not programmed); "
            "use token or host-assisted claiming" % addr
        )
    return uid


class Identity:
    # This board: its chip row (info), the machine string it was found from, the base MAC,
    # and, copied from the row, platform and self_claim. Plain data, as ChipInfo.
    info = ChipInfo()
    machine = ""
    mac = ""
    platform = ""
    self_claim = False


def identity():
    ident = Identity()
    ident.machine = machine_string()
    ident.info = lookup(ident.machine)
    ident.mac = base_mac()
    ident.platform = ident.info.platform
    ident.self_claim = ident.info.self_claim
    return ident
