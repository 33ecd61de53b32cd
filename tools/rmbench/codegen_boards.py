"""Generate the chip table the device carries (lib/rmclaim/chip.py) from boards/*.toml.

The board profiles are the one home of every board fact. The device cannot read them, so the
rows it needs (chip detection, self-claim, the eFuse address of OPTIONAL_UNIQUE_ID, the status
LED) are written into chip.py between the BEGIN/END lines below; `make test` runs `--check`,
which fails when the table and the profiles disagree.

Run `python -m rmbench.codegen_boards` to rewrite the table, `--check` to compare.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rmbench import BOARDS_DIR, LIB_DIR
from rmbench.profiles import BoardProfile, all_profiles

CHIP_PATH = LIB_DIR / "rmclaim" / "chip.py"
BEGIN = "# BEGIN chip table, generated from boards/*.toml by `python -m rmbench.codegen_boards`"
END = "# END chip table"


def _row(p: BoardProfile) -> str:
    names = ", ".join(f'"{n}"' for n in p.mcu_names) + ("," if len(p.mcu_names) == 1 else "")
    efuse = f"0x{p.efuse_unique_id:08X}" if p.efuse_unique_id is not None else "0"
    kind, pin = (p.led.kind, p.led.pin) if p.led else ("", 0)
    return f'    ("{p.platform}", ({names}), {p.self_claim}, {efuse}, "{kind}", {pin}),'


def table(directory: Path = BOARDS_DIR) -> str:
    """The generated block, BEGIN and END lines included."""
    profiles = all_profiles(directory).values()
    # A name that prefixes others ("ESP32" of the classic chip) must come after them.
    rows = sorted(profiles, key=lambda p: (-min(len(n) for n in p.mcu_names), p.platform))
    lines = [
        BEGIN,
        "_CHIPS = (",
        *(_row(p) for p in rows),
        ")",
        END,
    ]
    return "\n".join(lines) + "\n"


def render(source: str, directory: Path = BOARDS_DIR) -> str:
    """`source` (chip.py's text) with its table block replaced by a fresh one."""
    start = source.index(BEGIN)
    end = source.index(END, start) + len(END) + 1
    return source[:start] + table(directory) + source[end:]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rmbench.codegen_boards", description=__doc__)
    parser.add_argument("--check", action="store_true", help="compare, do not write")
    parser.add_argument("--output", type=Path, default=CHIP_PATH, help="file to rewrite or check")
    args = parser.parse_args(argv)
    path: Path = args.output
    source = path.read_text()
    fresh = render(source)
    if args.check:
        if fresh != source:
            print(
                f"{path}: its chip table differs from boards/*.toml; "
                "run python -m rmbench.codegen_boards"
            )
            return 1
        print(f"{path}: chip table up to date")
        return 0
    path.write_text(fresh)
    print(f"wrote the chip table of {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
