"""Fleet claim: wall time for 1, 4 and 8 virtual boards, and its ratio to one board.

Each run is what `rmbench fleet claim --vboards N` does against the local claiming service:
start N virtual boards (ESP32, host-assisted), deploy, write the claim config, and claim each
(key and CSR made on the board, the host relaying initiate and verify). The boards are
MicroPython processes sharing this machine's cores with the service and the host, so the ratio
shows how far the fleet scales here (2 cores in CI); on real boards the on-board P-256 work runs
on each board's own CPU.
"""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path

from rmbench import assist, fleet
from rmbench.boardsim import DEFAULT_WIFI
from rmbench.deploy import ClaimConfig
from rmbench.profiles import get_profile
from rmbench.service.harness import running_service

from benchmarks.record import record

SIZES = (1, 4, 8)
RUNS = 3  # median of these, per size
TOKEN = "bench-fleet"


def main() -> None:
    figures: dict[str, float | int] = {}
    with (
        tempfile.TemporaryDirectory(prefix="bench-fleet-") as tmp,
        running_service(Path(tmp) / "service") as svc,
    ):
        svc.add_user(TOKEN, quota=RUNS * sum(SIZES) + 1)
        target = assist.ServiceTarget(svc.base_url, svc.server_ca_file, TOKEN)
        config = ClaimConfig(
            svc.base_url,
            ca=svc.server_ca_pem,
            wifi_ssid=DEFAULT_WIFI[0],
            wifi_password=DEFAULT_WIFI[1],
        )
        plan = fleet.Plan(get_profile("esp32"), target, config)
        for size in SIZES:
            walls, per_board = [], []
            for _ in range(RUNS):
                report = fleet.run([fleet.Member() for _ in range(size)], plan)
                if report.failed:
                    first = report.failed[0]
                    raise RuntimeError(
                        f"fleet of {size}: {first.board}: {first.step}: {first.error}"
                    )
                walls.append(report.seconds)
                per_board.append(statistics.mean(o.seconds for o in report.outcomes))
            figures[f"fleet_wall_s_{size}"] = round(statistics.median(walls), 3)
            figures[f"fleet_board_mean_s_{size}"] = round(statistics.median(per_board), 3)
    one = figures["fleet_wall_s_1"]
    for size in SIZES[1:]:
        figures[f"fleet_ratio_{size}_to_1"] = round(figures[f"fleet_wall_s_{size}"] / one, 2)
    for size in SIZES:
        ratio = f", {figures[f'fleet_ratio_{size}_to_1']}x one board" if size > 1 else ""
        print(
            f"fleet of {size}: {figures[f'fleet_wall_s_{size}']:.2f} s wall "
            f"(median of {RUNS}; {figures[f'fleet_board_mean_s_{size}']:.2f} s per board{ratio})"
        )
    record(figures)


if __name__ == "__main__":
    main()
