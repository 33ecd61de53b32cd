"""Run every benchmark module (tools/benchmarks/bench_*.py) in name order; `make bench` calls this.

Select some with `python -m benchmarks crypto service` (module name without the bench_ prefix).
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

from benchmarks.record import BENCH_JSON


def main(argv: list[str]) -> int:
    here = Path(__file__).parent
    names = sorted(p.stem for p in here.glob("bench_*.py"))
    if argv:
        wanted = {f"bench_{a}" for a in argv}
        unknown = wanted - set(names)
        if unknown:
            print(f"benchmarks: unknown: {', '.join(sorted(unknown))}; known: {', '.join(names)}")
            return 1
        names = [n for n in names if n in wanted]
    for name in names:
        print(f"== {name.removeprefix('bench_')} ==", flush=True)
        module = importlib.import_module(f"benchmarks.{name}")
        module.main()
    print(f"figures written to {BENCH_JSON}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
