"""Power-on to stored credentials on a virtual ESP32-S3 against the local service
(`make bench BENCH=boot`).

The board is deployed once and registered; each run forgets the identity (so the key is made
anew, as on a first boot), cuts the power and turns it on again, and follows main.py's status
lines. The total is host time from power-on (the supervisor has started the interpreter) to
the "store ok" line: the credentials are in NVS. Each step's time is the board's own figure
in its status line; "boot" is the rest of the total (interpreter start, boot.py, imports,
the serial link). Figures are medians over the runs; shares are of the median total.
"""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path

from rmbench.board import VirtualBoard
from rmbench.boardsim import DEFAULT_WIFI
from rmbench.deploy import ClaimConfig, deploy
from rmbench.service.harness import running_service

from benchmarks.boots import timed_boot
from benchmarks.record import record

RUNS = 7
STEPS = (
    "config",
    "wifi",
    "time",
    "identity",
    "efuse",
    "key",
    "csr",
    "initiate",
    "hmac",
    "verify",
    "check",
    "store",
)


def _one_boot(board: VirtualBoard) -> tuple[float, dict[str, int]]:
    board.exec("import rmclaim\nrmclaim.forget()")
    total, _, lines = timed_boot(board, "store", STEPS)
    steps = {s.step: s.ms or 0 for s in lines if s.outcome == "ok" and s.step in STEPS}
    return total, steps


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp, running_service(Path(tmp) / "svc") as svc:
        board = VirtualBoard.start("esp32s3", name="bench-boot", root=Path(tmp) / "vboards")
        try:
            config = ClaimConfig(
                service_url=svc.base_url,
                ca=svc.server_ca_pem,
                wifi_ssid=DEFAULT_WIFI[0],
                wifi_password=DEFAULT_WIFI[1],
            )
            deploy(board, config=config)
            info = board.eval("__import__('rmclaim').device_info(True)")
            svc.register(info["mac"], bytes.fromhex(info["unique_id"]))
            runs = [_one_boot(board) for _ in range(RUNS)]
        finally:
            board.close()
    total = statistics.median(t for t, _ in runs)
    per_step = {s: statistics.median(r[s] for _, r in runs) for s in STEPS}
    boot = max(0.0, total - sum(per_step.values()))
    print(f"power-on to stored credentials, virtual esp32s3, median of {RUNS} boots:")
    each = ", ".join(f"{t:.0f}" for t, _ in runs)
    print(f"  {total:8.0f} ms total (runs: {each})")
    figures: dict[str, float | int] = {
        "boot_runs": RUNS,
        "boot_power_on_to_stored_ms": round(total, 1),
        "boot_step_boot_ms": round(boot, 1),
        "boot_step_boot_share": round(boot / total, 3),
    }
    print(f"  {boot:8.0f} ms {100 * boot / total:5.1f} %  boot (interpreter, boot.py, imports)")
    for step in STEPS:
        ms = per_step[step]
        print(f"  {ms:8.0f} ms {100 * ms / total:5.1f} %  {step}")
        figures[f"boot_step_{step}_ms"] = ms
        figures[f"boot_step_{step}_share"] = round(ms / total, 3)
    record(figures)


if __name__ == "__main__":
    main()
