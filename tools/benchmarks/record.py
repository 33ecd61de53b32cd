"""build/bench.json: one flat object of figure names to numbers, merged by every benchmark."""

from __future__ import annotations

import json
from pathlib import Path

from rmbench import BUILD_DIR

BENCH_JSON = BUILD_DIR / "bench.json"


def record(figures: dict[str, float | int], path: Path = BENCH_JSON) -> None:
    """Merge `figures` into the bench file, keeping what other benchmarks wrote."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data: dict[str, float | int] = {}
    if path.exists():
        data = json.loads(path.read_text())
    for name, value in figures.items():
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise TypeError(f"bench figure {name} must be a number, got {value!r}")
        data[name] = value
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
