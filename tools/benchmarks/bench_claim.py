"""Device claim on loopback: self-claims and token claims on the MicroPython Unix port, by step.

Each run is one fresh simulated board (tools/boardsim: an ESP32-S3 for self-claims, an ESP32 for
token claims) claiming from the local claiming service over TLS, with lib/rmclaim and the board
doubles deployed as .mpy files at paths as long as a board's (rmbench.boardsim.deploy_for_heap:
the doubles first on the path, and on a board they are built-in modules and cost no heap to
compile), and the config read from a JSON file, as a board reads /rmclaim.json. Figures:
- wall time of each step of a self-claim (medians of RUNS claims), the whole claim, and the TLS
  handshakes per claim;
- claim_peak_heap_bytes: the claim's high-water mark on the GC heap, by bench_crypto's ballast
  method: on a large heap, once the board doubles are imported (a board's built-ins, network
  included, with the station's state, which a board keeps in its Wi-Fi driver), all but
  RESERVE bytes are filled with ballast, holes included, and a claim (importing rmclaim
  included) must then complete in what is left; bisection finds the least RESERVE (to 128
  bytes) and the figure is the free heap measured there: library code, data and
  fragmentation, the largest over REPEAT boards;
- claim_min_heap_kb: the smallest -X heapsize (1K steps) with which the whole process
  completes a claim (interpreter, script, board doubles and all), the largest over REPEAT
  boards: the heap layout, and so its fragmentation, varies with the random key, MAC and
  certificate serials;
- claim_token_peak_heap_bytes and claim_token_min_heap_kb: the same for token claims.
The .venv Unix port is 64-bit: its pointers, object headers and GC blocks are twice an ESP32's.
With MICROPYTHON32=PATH (a 32-bit Unix port, see rmbench.micropython) the four heap figures are
measured on it too, the same way, as claim_peak_heap_bytes_32, claim_min_heap_kb_32,
claim_token_peak_heap_bytes_32 and claim_token_min_heap_kb_32: a board's own figures.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from rmbench.boardsim import create_board, deploy_for_heap
from rmbench.micropython import Interpreter, micropython, micropython32
from rmbench.service.harness import RunningService, running_service

from benchmarks.bench_crypto import BALLAST
from benchmarks.record import record

RUNS = 5
REPEAT = 3
STEPS = ("identity", "efuse", "key", "csr", "initiate", "hmac", "verify", "check", "store")
BALLAST_HEAP = "256K"

TIMED = """
import json, time
import rmclaim
steps = {}
def on(step, outcome, info):
    if step == "claimed":
        steps["handshakes"] = info.get("handshakes", 0)
    elif outcome == "ok":
        steps[step] = info["ms"]
    elif outcome == "error":
        steps[step] = "error: " + info["error"]
t0 = time.ticks_ms()
c = rmclaim.ensure_claimed(%r, on)
total = time.ticks_diff(time.ticks_ms(), t0)
print(json.dumps({"steps": steps, "total": total, "node_id": c.node_id}))
"""

PLAIN = """
import rmclaim
c = rmclaim.ensure_claimed(%r)
print("ok", c.node_id)
"""

BALLASTED = """
import gc
import _boardsim, os, esp32, machine, network
network.WLAN(network.STA_IF)
RESERVE = %d
%s
import rmclaim
c = rmclaim.ensure_claimed(%%r)
print("ok", free)
"""


class _Bench:
    def __init__(
        self,
        svc: RunningService,
        root: Path,
        deployed: tuple[Path, list[Path]],
        port: Interpreter | None = None,
    ) -> None:
        self.svc = svc
        self.root = root
        self.deployed, self.path = deployed  # run in it, with that path (deploy_for_heap)
        self.port = port or micropython()
        self.n = 0

    def claim(self, script: str, heap: str, token: bool = False) -> str:
        """One claim on a fresh board with `script` (%r: the config file); its stdout."""
        self.n += 1
        profile = "esp32" if token else "esp32s3"
        board = create_board(self.root / f"b{self.n}", profile, name=f"bench-claim-{self.n}")
        cfg: dict[str, Any] = {
            "service_url": self.svc.base_url,
            "ca": self.svc.server_ca_pem,
            "max_attempts": 1,
        }
        if token:
            cfg["access_token"] = f"bench-token-{self.n}"
            self.svc.add_user(cfg["access_token"], quota=1)
        else:
            self.svc.register(board.mac, board.unique_id)
        config = board.directory / "rmclaim.json"
        config.write_text(json.dumps(cfg))
        # Not board.run(), which puts the doubles' sources first on the path.
        return self.port.run(
            script % str(config),
            heap=heap,
            path=self.path,
            env=board.env(),
            check=False,
            cwd=self.deployed,
        )

    def timed(self) -> dict[str, Any]:
        out = self.claim(TIMED, "1M")
        lines = [line for line in out.splitlines() if line.startswith("{")]
        if not lines:
            raise RuntimeError(f"bench_claim: a claim at a 1 MB heap failed:\n{out[-2000:]}")
        result: dict[str, Any] = json.loads(lines[-1])
        return result

    def min_heap_kb(self, token: bool, lo: int = 16, hi: int = 160) -> int:
        """The smallest -X heapsize in KB with which a claim completes (bisection)."""
        while lo < hi:
            mid = (lo + hi) // 2
            if "\nok " in "\n" + self.claim(PLAIN, f"{mid}K", token):
                hi = mid
            else:
                lo = mid + 1
        return lo

    def peak_heap_bytes(self, token: bool) -> int:
        """The least free heap (to 128 bytes) a claim needs once the board doubles are in."""

        def ok(reserve: int) -> int:
            out = self.claim(BALLASTED % (reserve, BALLAST), BALLAST_HEAP, token)
            lines = [line for line in out.splitlines() if line.startswith("ok ")]
            return int(lines[-1].split()[1]) if lines else -1

        lo, hi = 0, 128 * 1024
        free = ok(hi)
        if free < 0:
            raise RuntimeError(f"bench_claim: a claim fails with {hi} bytes free")
        while hi - lo > 128:
            mid = (lo + hi) // 2
            got = ok(mid)
            if got >= 0:
                hi, free = mid, got
            else:
                lo = mid
        return free


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-claim-") as tmp:
        root = Path(tmp)
        deployed = root / "deployed", deploy_for_heap(root / "deployed")
        with running_service(root / "svc") as svc:
            bench = _Bench(svc, root / "boards", deployed)
            bench.timed()  # warm-up: the service's first TLS session and imports
            runs = []
            for _ in range(RUNS):
                res = bench.timed()
                bad = {s: v for s, v in res["steps"].items() if not isinstance(v, int)}
                if bad:
                    raise RuntimeError(f"bench_claim: a step failed: {bad}")
                runs.append(res)
            t0 = time.perf_counter()
            heap: dict[str, list[int]] = {}
            ports = [("", bench)]
            port32 = micropython32()
            if port32 is not None:
                ports.append(("_32", _Bench(svc, root / "boards32", deployed, port32)))
            for suffix, on in ports:
                for kind, token in (("", False), ("token_", True)):
                    heap[kind + "peak" + suffix] = [
                        on.peak_heap_bytes(token) for _ in range(REPEAT)
                    ]
                    heap[kind + "min" + suffix] = [on.min_heap_kb(token) for _ in range(REPEAT)]
            search_s = time.perf_counter() - t0
    figures: dict[str, float | int] = {}
    for step in STEPS:
        figures[f"claim_step_{step}_ms"] = statistics.median(r["steps"][step] for r in runs)
    figures["claim_total_ms"] = statistics.median(r["total"] for r in runs)
    figures["claim_tls_handshakes"] = max(r["steps"]["handshakes"] for r in runs)
    for suffix, _ in ports:
        for kind in ("", "token_"):
            figures[f"claim_{kind}peak_heap_bytes{suffix}"] = max(heap[kind + "peak" + suffix])
            figures[f"claim_{kind}min_heap_kb{suffix}"] = max(heap[kind + "min" + suffix])
    width = max(len(k) for k in figures)
    for name, value in figures.items():
        print(f"  {name:<{width}}  {value}")
    share = {s: figures[f"claim_step_{s}_ms"] / figures["claim_total_ms"] for s in STEPS}
    print("  share of the claim: " + ", ".join(f"{s} {v:.0%}" for s, v in share.items()))
    for name, values in heap.items():
        print(f"  {name} over {REPEAT} boards: {sorted(values)}")
    widths = " and ".join(f"{on.port.bits}-bit" for _, on in ports)
    print(f"  (heap searches took {search_s:.1f} s; {widths} Unix port, board doubles as .mpy)")
    record(figures)


if __name__ == "__main__":
    main()
