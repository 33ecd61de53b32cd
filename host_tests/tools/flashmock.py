"""A board in its ROM bootloader, without hardware (PyPI esp32-mock-bootloader); stand-in images.

For the tests of `rmbench flash` and `rmbench nvs-image` (esp32-mock-bootloader is a dev
dependency). The mock runs in its PTY mode: esptool then reads its replies in bulk, whereas over
socket:// it reads one byte per call and the mock gives up on a read-flash acknowledgement after
50 ms, which makes small reads fail at random. Its flash (4 MiB, erased) lives as long as the
process does.
"""

from __future__ import annotations

import os
import struct
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rmbench.profiles import BoardProfile

_MOCK = Path(sys.executable).with_name("esp32-mock-bootloader")


@dataclass
class MockBoard:
    """A running mock ROM bootloader for one chip; `port` is the pty esptool opens."""

    chip: str
    port: str
    process: subprocess.Popen[str]

    def _connect(self) -> Any:
        from esptool import cmds

        esp = cmds.detect_chip(self.port, 115200, "no-reset")
        esp = cmds.run_stub(esp)
        cmds.attach_flash(esp)
        return esp

    def read(self, address: int, size: int) -> bytes:
        """Read flash through esptool on its own connection (not through rmbench.flash)."""
        esp = self._connect()
        try:
            return bytes(esp.read_flash(address, size))
        finally:
            esp._port.close()

    def erase(self) -> None:
        """Erase the whole flash (esptool erase-flash), as a fresh chip comes."""
        from esptool import cmds

        esp = self._connect()
        try:
            cmds.erase_flash(esp)
        finally:
            esp._port.close()

    def write(self, address: int, data: bytes) -> None:
        """Write flash through esptool directly, as a board's own firmware would have left it."""
        from esptool import cmds

        esp = self._connect()
        try:
            cmds.write_flash(esp, [(address, data)])
        finally:
            esp._port.close()


@contextmanager
def mock_board(chip: str) -> Iterator[MockBoard]:
    """Start `esp32-mock-bootloader run --pty --chip CHIP` (esptool's chip names); always stopped
    on exit, and it stops itself after 10 minutes in any case."""
    proc = subprocess.Popen(
        [str(_MOCK), "run", "--pty", "--chip", chip, "--timeout", "600"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        port = proc.stdout.readline().strip() if proc.stdout is not None else ""
        if not port.startswith("/dev/"):
            raise RuntimeError(f"esp32-mock-bootloader printed {port!r}, not a pty path")
        yield MockBoard(chip, port, proc)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def _chip_id(profile: BoardProfile) -> int:
    from esptool.targets import CHIP_DEFS

    return int(CHIP_DEFS[profile.esptool_chip].IMAGE_CHIP_ID)


def _esp_header(chip_id: int) -> bytes:
    # An ESP image header: magic, no segments, flash params, entry; then the extended header
    # with the chip id at byte 12.
    header = bytearray(b"\xff" * 24)
    header[0:4] = bytes([0xE9, 0, 2, 0x20])
    struct.pack_into("<I", header, 4, 0x40080000)
    struct.pack_into("<H", header, 12, chip_id)
    header[14:24] = bytes(10)
    return bytes(header)


def _partition(ptype: int, subtype: int, offset: int, size: int, label: str) -> bytes:
    return (
        b"\xaa\x50"
        + struct.pack("<BBII", ptype, subtype, offset, size)
        + label.encode().ljust(16, b"\0")
        + bytes(4)
    )


def partition_table(nvs_offset: int = 0x9000, nvs_size: int = 0x6000) -> bytes:
    """MicroPython's default table (nvs, phy_init, factory app), then the end marker."""
    return (
        _partition(1, 2, nvs_offset, nvs_size, "nvs")
        + _partition(1, 1, 0xF000, 0x1000, "phy_init")
        + _partition(0, 0, 0x10000, 0x1F0000, "factory")
        + b"\xeb\xeb"
        + b"\xff" * 14
    )


def app_image(profile: BoardProfile, size: int = 0x9000, seed: bytes = b"") -> bytes:
    """An app image (what micropython.bin is) for the profile's chip, with distinct contents."""
    body = (seed + os.urandom(size)) if not seed else (seed * (size // len(seed) + 1))[:size]
    return _esp_header(_chip_id(profile)) + body


def combined_image(
    profile: BoardProfile, app: bytes, *, nvs_offset: int = 0x9000, nvs_size: int = 0x6000
) -> bytes:
    """A combined image like MicroPython's downloads: bootloader at the profile's flash offset,
    partition table at 0x8000, 0xFF over nvs and phy_init, the app at 0x10000."""
    base = profile.flash_offset
    image = bytearray(b"\xff" * (0x10000 - base))
    bootloader = _esp_header(_chip_id(profile)) + os.urandom(0x3000)
    image[0 : len(bootloader)] = bootloader
    table = partition_table(nvs_offset, nvs_size)
    image[0x8000 - base : 0x8000 - base + len(table)] = table
    return bytes(image) + app
