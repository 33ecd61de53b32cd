"""MicroPython releases for ESP32 boards: what each one reports about itself, and which we support.

Facts read at each release tag of micropython/micropython (file and line numbers of v1.28.0
unless said otherwise):

- `os.uname()`: sysname and nodename "esp32", release MICROPY_VERSION_STRING ("1.28.0"),
  version MICROPY_GIT_TAG " on " MICROPY_BUILD_DATE ("v1.28.0 on 2026-04-06"), machine
  MICROPY_HW_BOARD_NAME " with " MICROPY_HW_MCU_NAME (extmod/modos.c:97-119). The REPL banner
  is "MicroPython " the same version text "; " the machine (shared/runtime/pyexec.c:451).
- `sys.implementation` (py/modsys.c): name "micropython", version (major, minor, micro, "" or
  "preview"), _machine (the machine string), _mpy (py/persistentcode.h MPY_FILE_HEADER_INT:
  6 | sub << 8 | arch << 10, arch 10 for xtensawin, 11 for rv32imc; before v1.24 the C3
  has no native emitter, arch 0), _build (the board build name, from v1.25.0), _thread
  ("GIL", from v1.26.0).
- `.mpy` 6.2 in v1.22, 6.3 from v1.23 (py/persistentcode.h:37-38); bytecode loads on any 6.x.
- v1.22 has no `tls` module (only `ssl`) and no `WLAN.IF_STA`: v1.23.0 is the oldest release
  the device code runs on.
- Build dates are the release commits' dates (the downloads are built from the tag).
"""

from __future__ import annotations

from dataclasses import dataclass

from rmbench.errors import UsageError


@dataclass(frozen=True)
class Release:
    """One MicroPython release line (the newest patch release of a minor version)."""

    name: str  # "1.23" ... "1.28", "preview": what `--firmware` takes
    git_tag: str  # MICROPY_GIT_TAG, as os.uname().version and the banner print it
    version: tuple[int, int, int, str]  # sys.implementation.version
    date: str  # MICROPY_BUILD_DATE of its downloads
    mpy_sub: int  # .mpy sub-version (major 6 throughout)
    supported: bool = True

    @property
    def release(self) -> str:
        """os.uname().release (MICROPY_VERSION_STRING)."""
        major, minor, micro, pre = self.version
        return f"{major}.{minor}.{micro}" + (f"-{pre}" if pre else "")

    @property
    def uname_version(self) -> str:
        """os.uname().version."""
        return f"{self.git_tag} on {self.date}"

    def banner(self, machine: str) -> str:
        """The REPL banner line's text (without the trailing newline)."""
        return f"MicroPython {self.git_tag} on {self.date}; {machine}"

    def key(self) -> tuple[int, int, int]:
        """Sorts releases oldest first (the preview after every release)."""
        return self.version[:3]

    def at_least(self, name: str) -> bool:
        """Whether this release is `name` (e.g. "1.24") or newer."""
        return self.key() >= get_release(name).key()

    def mpy(self, arch: str) -> int:
        """sys.implementation._mpy on a chip whose native code is `arch` (xtensawin, rv32imc)."""
        code = {"xtensawin": 10, "rv32imc": 11}[arch]
        if arch == "rv32imc" and self.version[:2] < (1, 24):
            code = 0  # no RISC-V native emitter before v1.24 (ports/esp32/mpconfigport.h:45-47)
        return 6 | (self.mpy_sub | code << 2) << 8


# Oldest first. v1.22 is listed so that a board running it can be recognised and refused.
RELEASES = (
    Release("1.22", "v1.22.2", (1, 22, 2, ""), "2024-02-20", 2, supported=False),
    Release("1.23", "v1.23.0", (1, 23, 0, ""), "2024-05-31", 3),
    Release("1.24", "v1.24.1", (1, 24, 1, ""), "2024-11-29", 3),
    Release("1.25", "v1.25.0", (1, 25, 0, ""), "2025-04-16", 3),
    Release("1.26", "v1.26.1", (1, 26, 1, ""), "2025-09-11", 3),
    Release("1.27", "v1.27.0", (1, 27, 0, ""), "2025-12-10", 3),
    Release("1.28", "v1.28.0", (1, 28, 0, ""), "2026-04-06", 3),
    # master at 1c3c201149 (1.29.0-preview): `git describe` gives the tag text below.
    Release("preview", "v1.29.0-preview.731.g1c3c201149", (1, 29, 0, "preview"), "2026-08-19", 3),
)
DEFAULT_RELEASE = "1.28"
MINIMUM = "1.23"
# What v1.23 brought that the device code needs (why older firmware is refused).
MINIMUM_WHY = "the tls module and network.WLAN.IF_STA"


def release_names(*, supported_only: bool = True) -> list[str]:
    """The names `--firmware` takes, oldest first."""
    return [r.name for r in RELEASES if r.supported or not supported_only]


def get_release(name: str) -> Release:
    """The release called `name` ("1.23", "v1.23.0", "1.23.0" or "preview").

    Raises:
        UsageError: no such release; the message lists the known ones.
    """
    key = name.strip().lower().removeprefix("v")
    for r in RELEASES:
        if key in (r.name, r.release, r.git_tag.removeprefix("v")):
            return r
        if key.count(".") == 2 and key.rsplit(".", 1)[0] == r.name:
            return r
    known = ", ".join(release_names(supported_only=False))
    raise UsageError(f"unknown MicroPython release {name!r}; known: {known}")


def release_of(version: tuple[int, ...]) -> Release | None:
    """The release line a board's sys.implementation.version belongs to, if known."""
    for r in RELEASES:
        if tuple(version[:2]) == r.version[:2]:
            return r
    return None


def check_supported(version: tuple[int, ...], *, board: str | None = None) -> None:
    """Refuse a board whose firmware is older than MINIMUM.

    Args:
        version: the board's sys.implementation.version (major, minor, micro[, pre]).
    Raises:
        UsageError: too old; the message names the minimum version and what it brings.
    """
    minimum = get_release(MINIMUM)
    if tuple(version[:3]) < minimum.version[:3]:
        found = ".".join(str(v) for v in version[:3])
        raise UsageError(
            f"the board runs MicroPython v{found}; v{minimum.release} or newer is needed "
            f"({MINIMUM_WHY})",
            board=board,
            step="check firmware",
            hint="flash a newer MicroPython (rmbench flash --firmware ...)",
        )
