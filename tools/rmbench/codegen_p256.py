"""Generate lib/rmclaim/p256g.bin, the comb tables of multiples of the P-256 generator.

Run `python -m rmbench.codegen_p256` to (re)write the file, `--check` to compare it with a
fresh computation. The layout is the one lib/rmclaim/p256.py reads: table g (0..TABLES-1),
entry b (1..255) is the affine point sum over the set bits r of b of 2^(32*r + 16*g) * G,
stored as x || y (32 bytes each, big-endian) at offset (255*g + b - 1) * 64.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rmbench import LIB_DIR

TABLE_PATH = LIB_DIR / "rmclaim" / "p256g.bin"
TEETH = 8
TABLES = 2
COLUMNS = 32 // TABLES  # comb columns per table
ENTRIES = (1 << TEETH) - 1
POINT_BYTES = 64

P = 0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF
N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
G = (
    0x6B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C296,
    0x4FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5,
)

Point = tuple[int, int] | None


def add(a: Point, b: Point) -> Point:
    """Affine point addition on P-256 (None is the point at infinity)."""
    if a is None:
        return b
    if b is None:
        return a
    if a[0] == b[0]:
        if (a[1] + b[1]) % P == 0:
            return None
        slope = 3 * (a[0] * a[0] - 1) * pow(2 * a[1], -1, P) % P
    else:
        slope = (b[1] - a[1]) * pow(b[0] - a[0], -1, P) % P
    x = (slope * slope - a[0] - b[0]) % P
    return x, (slope * (a[0] - x) - a[1]) % P


def multiply(k: int, point: Point) -> Point:
    """k * point by double-and-add (host side only, so no care for speed or timing)."""
    result: Point = None
    while k:
        if k & 1:
            result = add(result, point)
        point = add(point, point)
        k >>= 1
    return result


def entry_scalar(table: int, entry: int) -> int:
    """The multiple of G stored at (table, entry)."""
    return sum(1 << (32 * r + COLUMNS * table) for r in range(TEETH) if entry >> r & 1)


def build_table() -> bytes:
    """All TABLES * 255 points, in file order."""
    out = bytearray()
    for table in range(TABLES):
        teeth = [multiply(1 << (32 * r + COLUMNS * table), G) for r in range(TEETH)]
        points: list[Point] = [None]
        for entry in range(1, ENTRIES + 1):
            low = entry & -entry  # lowest set bit: entry = (entry - low) + low
            point = add(points[entry - low], teeth[low.bit_length() - 1])
            if point is None:
                raise ArithmeticError(f"table {table} entry {entry} is the point at infinity")
            points.append(point)
            out += point[0].to_bytes(32, "big") + point[1].to_bytes(32, "big")
    return bytes(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rmbench.codegen_p256", description=__doc__)
    parser.add_argument("--check", action="store_true", help="compare, do not write")
    parser.add_argument("--output", type=Path, default=TABLE_PATH, help="file to write or check")
    args = parser.parse_args(argv)
    table = build_table()
    path: Path = args.output
    if args.check:
        if not path.exists() or path.read_bytes() != table:
            print(f"{path}: differs from a fresh computation; run python -m rmbench.codegen_p256")
            return 1
        print(f"{path}: up to date ({len(table)} bytes)")
        return 0
    path.write_bytes(table)
    print(f"wrote {path} ({len(table)} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
