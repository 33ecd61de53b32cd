"""Flash MicroPython with esptool, keeping the board's NVS partition (its identity) unless asked.

MicroPython's combined image (bootloader, partition table, app; written at the profile's
flash_offset) fills 0x9000-0xFFFF with 0xFF, so writing it as downloaded wipes the nvs partition
where rmclaim keeps a claimed identity (MicroPython ports/esp32/makeimg.py pads the gap between
the partition table and the app, which holds nvs at 0x9000, with 0xFF). Rather than
writing only the app part, which would leave an old bootloader and partition table under a new
app, `flash` reads the nvs partition first and writes the image with those bytes spliced back in,
in one esptool write that esptool then verifies by MD5: the user gets exactly the firmware they
chose and the identity stays byte for byte. `erase=True` erases the whole chip instead.
"""

from __future__ import annotations

import struct
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from rmbench import ProgressFn, nvs, nvsimage
from rmbench.errors import BenchError, FlashError, UsageError
from rmbench.profiles import BoardProfile

ROM_BAUD = 115200
DEFAULT_BAUD = 460800
_IMAGE_MAGIC = 0xE9
_PARTITION_TABLE = 0x8000  # where ESP-IDF's partition table sits in flash
_PARTITION_TABLE_SIZE = 0xC00
_PARTITION_MAGIC = b"\xaa\x50"
_PARTITION_MD5 = b"\xeb\xeb"
_NVS_TYPE, _NVS_SUBTYPE = 0x01, 0x02
_NVS_LABEL = "nvs"  # the partition esp32.NVS opens
_CHECK = "check image"
_SERIAL_HINT = (
    "check that the port exists and no other program (mpremote, a serial monitor) holds it; "
    "if the board does not enter its bootloader by itself, hold BOOT and tap RESET"
)


@dataclass(frozen=True)
class FirmwareImage:
    """A firmware file, checked against a board profile."""

    data: bytes
    address: int  # where it is written: flash_offset (combined image) or app_offset (app only)
    combined: bool  # bootloader + partition table + app, as MicroPython's downloads are
    chip_id: int  # esptool IMAGE_CHIP_ID from the image's extended header


@dataclass(frozen=True)
class FlashResult:
    """What `flash` did to one board."""

    port: str
    board: str
    chip: str  # as esptool names it, e.g. "ESP32-S3"
    mac: str  # 12 upper-case hex digits
    address: int
    size: int
    nvs_outcome: str  # "kept" (read, written back), "blank", "erased" (erase=True), "untouched"
    # what the nvs partition held before (None: blank or unread)
    identity: nvsimage.StoredIdentity | None
    seconds: float


def _partition_nvs(table: bytes) -> tuple[int, int] | None:
    # The (offset, size) of the data/nvs partition labelled "nvs" in a partition table, if any.
    for pos in range(0, len(table) - 31, 32):
        entry = table[pos : pos + 32]
        if entry[:2] != _PARTITION_MAGIC:
            break  # the MD5 entry (0xEBEB) or erased flash ends the table
        ptype, subtype, offset, size = struct.unpack_from("<BBII", entry, 2)
        label = entry[12:28].split(b"\0", 1)[0]
        if (ptype, subtype, label) == (_NVS_TYPE, _NVS_SUBTYPE, _NVS_LABEL.encode()):
            return offset, size
    return None


def _chip_names() -> dict[int, str]:
    from esptool.targets import CHIP_DEFS

    return {
        rom.IMAGE_CHIP_ID: rom.CHIP_NAME
        for rom in CHIP_DEFS.values()
        if getattr(rom, "IMAGE_CHIP_ID", None) is not None
    }


def _expected_rom(profile: BoardProfile) -> Any:
    from esptool.targets import CHIP_DEFS

    rom = CHIP_DEFS.get(profile.esptool_chip)
    if rom is None:
        raise UsageError(
            f"board profile {profile.name} names esptool chip {profile.esptool_chip!r}, "
            f"which esptool does not know (known: {', '.join(CHIP_DEFS)})"
        )
    return rom


def inspect_image(data: bytes, profile: BoardProfile) -> FirmwareImage:
    """Check a firmware file against a board profile and decide where it goes.

    A combined image is recognised by the partition table at 0x8000 inside it; anything else that
    starts like an ESP image is taken as the app alone (MicroPython's micropython.bin / .app-bin).

    Args:
        data: the file's bytes.
        profile: the board it is meant for.

    Returns:
        The image with its flash address.

    Raises:
        UsageError: not an ESP image, built for another chip, or a partition table whose nvs
            partition is not where the profile says.
    """
    if len(data) < 24 or data[0] != _IMAGE_MAGIC:
        first = f"0x{data[0]:02x}" if data else "nothing"
        raise UsageError(
            f"not an ESP firmware image (wanted 0xe9 first, got {first})", step=_CHECK
        )
    (chip_id,) = struct.unpack_from("<H", data, 12)
    rom = _expected_rom(profile)
    if chip_id != rom.IMAGE_CHIP_ID:
        built_for = _chip_names().get(chip_id, f"chip id {chip_id}")
        raise UsageError(
            f"built for {built_for}, but board {profile.name} is {rom.CHIP_NAME}; "
            f"download the {profile.micropython_board} image ({profile.firmware_image})",
            step=_CHECK,
        )
    table_at = _PARTITION_TABLE - profile.flash_offset
    table = data[table_at : table_at + _PARTITION_TABLE_SIZE]
    if table[:2] != _PARTITION_MAGIC:
        return FirmwareImage(data, profile.app_offset, False, chip_id)
    found = _partition_nvs(table)
    if found != (profile.nvs_offset, profile.nvs_size):
        where = "no nvs partition" if found is None else f"nvs at 0x{found[0]:x}+0x{found[1]:x}"
        raise UsageError(
            f"its partition table has {where}, but board {profile.name} keeps NVS at "
            f"0x{profile.nvs_offset:x}+0x{profile.nvs_size:x}; use an image with the standard "
            "partition table",
            step=_CHECK,
        )
    return FirmwareImage(data, profile.flash_offset, True, chip_id)


# --- esptool output ----------------------------------------------------------------------------
# esptool reports through one process-wide logger. While an operation runs, a logger of ours is
# installed that sends progress to the callback of the thread that runs it (so several boards can
# be flashed at once) and keeps esptool's recent lines for error messages.


class _Context(threading.local):
    step: str = ""
    progress: ProgressFn | None = None
    lines: list[str]

    def __init__(self) -> None:
        self.lines = []


_context = _Context()
_install_lock = threading.Lock()
_installed = 0
_saved_logger: Any = None


def _make_sink() -> Any:
    from esp_pylib.logger import EspLogBase

    class _Sink(EspLogBase):
        def _keep(self, *args: Any) -> None:
            text = " ".join(str(a) for a in args).strip()
            if text:
                _context.lines = [*_context.lines[-19:], text]

        def print(self, *args: Any, **kwargs: Any) -> None:
            self._keep(*args)

        def err(self, *args: Any, suggestion: str | None = None) -> None:
            self._keep(*args)

        def warn(self, *args: Any, suggestion: str | None = None) -> None:
            self._keep(*args)

        def note(self, *args: Any) -> None:
            self._keep(*args)

        def hint(self, *args: Any) -> None:
            self._keep(*args)

        def debug(self, *args: Any) -> None:
            pass

        def set_verbosity(self, mode: int | str) -> None:
            pass

        def progress_bar(
            self,
            cur_iter: int,
            total_iters: int,
            prefix: str = "",
            suffix: str = "",
            bar_length: int = 30,
        ) -> None:
            if _context.progress is not None:
                _context.progress(_context.step, cur_iter, total_iters)

    return _Sink()


@contextmanager
def _esptool_output(progress: ProgressFn | None) -> Iterator[None]:
    global _installed, _saved_logger
    from esp_pylib.logger import EspLog

    with _install_lock:
        if _installed == 0:
            _saved_logger = EspLog.instance
            EspLog.instance = _make_sink()
        _installed += 1
    _context.progress, _context.lines = progress, []
    try:
        yield
    finally:
        _context.progress = None
        with _install_lock:
            _installed -= 1
            if _installed == 0:
                EspLog.instance = _saved_logger


class _Steps:
    """Runs one board's esptool steps; any failure becomes a FlashError naming port and step."""

    def __init__(self, port: str, board: str) -> None:
        self.port, self.board = port, board

    @contextmanager
    def step(self, name: str, total: int = 0) -> Iterator[None]:
        import serial
        from esptool.util import FatalError

        _context.step = name
        if _context.progress is not None:
            _context.progress(name, 0, total)
        try:
            yield
        except BenchError as e:
            raise e.with_context(board=self.board, port=self.port, step=name) from e
        except (serial.SerialException, FatalError, OSError, struct.error) as e:
            # A board that cannot be reached is most often a busy port or one not in its ROM
            # bootloader: say so. esptool's messages run over lines; the first says it.
            reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            hint = _SERIAL_HINT if name == "connect" else None
            raise FlashError(reason, board=self.board, port=self.port, step=name, hint=hint) from e


def _format_mac(mac: Any) -> str:
    return "".join(f"{b:02X}" for b in mac) if mac else ""


def flash(
    port: str,
    profile: BoardProfile,
    image: FirmwareImage,
    *,
    erase: bool = False,
    baud: int = DEFAULT_BAUD,
    before: str = "default-reset",
    after: str = "hard-reset",
    progress: ProgressFn | None = None,
) -> FlashResult:
    """Write a firmware image to a board over its serial bootloader, keeping its NVS partition.

    Steps: connect, check chip (a chip other than the profile's is refused before anything is
    written), start stub, read nvs (when the image covers the nvs partition), erase (only with
    erase=True), write (esptool verifies it by MD5), reset.

    Args:
        port: serial port or pyserial URL (`/dev/ttyUSB0`, `socket://127.0.0.1:9876`).
        profile: the board profile; its esptool_chip, flash_offset, app_offset, nvs_offset and
            nvs_size are used.
        image: from `inspect_image` for the same profile.
        erase: erase the whole flash first (the identity and the filesystem go too).
        baud: baud rate once the flasher stub runs.
        before: esptool's reset into the bootloader ("default-reset", "no-reset", ...).
        after: esptool's reset when done ("hard-reset" boots the new firmware, "no-reset").
        progress: called with (step, done, total).

    Returns:
        What was written and what became of the nvs partition.

    Raises:
        UsageError: erase with an app-only image (the erased board would not boot).
        FlashError: any esptool or serial failure, or another chip than the profile's; the
            error names the port and the step.
    """
    from esptool import cmds

    if erase and not image.combined:
        raise UsageError(
            "an app-only image cannot be flashed with erase: the erased board would have no "
            f"bootloader; use the combined {profile.firmware_image} image",
            board=profile.name,
            port=port,
        )
    started = time.monotonic()
    steps = _Steps(port, profile.name)
    expected = _expected_rom(profile)
    data = bytearray(image.data)
    nvs_start, nvs_end = profile.nvs_offset, profile.nvs_offset + profile.nvs_size
    overlap_start = max(image.address, nvs_start)
    overlap_end = min(image.address + len(data), nvs_end)
    nvs_state, identity = "untouched", None
    esp: Any = None
    with _esptool_output(progress):
        try:
            with steps.step("connect"):
                esp = cmds.detect_chip(port, ROM_BAUD, before)
            with steps.step("check chip"):
                if esp.CHIP_NAME != expected.CHIP_NAME:
                    raise FlashError(
                        f"found {esp.CHIP_NAME}, but board {profile.name} is "
                        f"{expected.CHIP_NAME}; nothing was written (is this the right port?)"
                    )
                mac = _format_mac(esp.read_mac("BASE_MAC"))
            with steps.step("start stub"):
                esp = cmds.run_stub(esp)
                if baud != ROM_BAUD:
                    esp.change_baud(baud)
                cmds.attach_flash(esp)
            if erase:
                nvs_state = "erased"
                with steps.step("erase"):
                    cmds.erase_flash(esp)
            elif overlap_start < overlap_end:
                with steps.step("read nvs", profile.nvs_size):
                    table = cmds.read_flash(esp, _PARTITION_TABLE, _PARTITION_TABLE_SIZE)
                    old = cmds.read_flash(esp, nvs_start, profile.nvs_size)
                    nvs_state, identity = _keep_nvs(old, table, profile)
                    if nvs_state == "kept":
                        piece = old[overlap_start - nvs_start : overlap_end - nvs_start]
                        lo = overlap_start - image.address
                        data[lo : lo + len(piece)] = piece
            with steps.step("write"):
                cmds.write_flash(esp, [(image.address, bytes(data))])
            with steps.step("reset"):
                cmds.reset_chip(esp, after)
        finally:
            serial_port = getattr(esp, "_port", None)
            if serial_port is not None:
                serial_port.close()
    return FlashResult(
        port=port,
        board=profile.name,
        chip=expected.CHIP_NAME,
        mac=mac,
        address=image.address,
        size=len(data),
        nvs_outcome=nvs_state,
        identity=identity,
        seconds=time.monotonic() - started,
    )


def _keep_nvs(
    old: bytes, table: bytes, profile: BoardProfile
) -> tuple[str, nvsimage.StoredIdentity | None]:
    # Decide what to do with the nvs partition read from the board: ("blank", None) when it was
    # never written, else ("kept", what it holds). Anything written there is kept, credentials or
    # not (a key stored before a claim finished, the user's own keys): only erase=True drops it.
    if nvs.is_erased(old):
        return "blank", None
    on_board = _partition_nvs(table)
    if on_board is not None and on_board != (profile.nvs_offset, profile.nvs_size):
        raise FlashError(
            f"the board's partition table has nvs at 0x{on_board[0]:x}+0x{on_board[1]:x}, "
            f"the new image at 0x{profile.nvs_offset:x}+0x{profile.nvs_size:x}: its NVS cannot "
            "be carried over; flash with erase to drop it, or use an image with the same table"
        )
    return "kept", nvsimage.read_identity(old)
