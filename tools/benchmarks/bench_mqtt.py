"""A claimed node's MQTT connection against the bench broker (`make bench BENCH=mqtt`).

- Boot: a virtual ESP32-S3, claimed once, power-cycled RUNS times; each run is host time from
  power-on to the "nodeconfig ok" line (connected over mutual TLS, node config acknowledged).
  Each step's time is the board's own figure in its status line (config, wifi, time, mqtt:
  connection and TLS handshake up to the CONNACK, nodeconfig: the config's publish and its
  PUBACK; claim: reading the stored identity, the claimed line's ms less the steps before
  it; flashes: the claimed LED pattern the firmware shows before its claimed line, 800 ms by
  design, host clock; setup: from the claimed line to the mqtt line less mqtt's own ms, host
  clock: the config read again, the LED, the stored identity as DER, the TLS context); "boot"
  is the rest
  (interpreter start, boot.py, imports, the serial link). Medians over the runs, shares of
  the median total.
- Messages per second one board publishes (MicroPython Unix port, a simulated ESP32-S3):
  MESSAGES param reports with QoS 1 (each waits for its PUBACK), and MESSAGES with QoS 0 then
  one QoS 1 (in order on one connection: when that is acknowledged, all are at the broker);
  timed on the board, counted at the broker.
- Eight boards at once: FLEET already claimed boards (each a Unix port process) start their
  MQTT step at the same moment; wall time until the broker has every node's config, and each
  board's own connect time.
- Heap (32-bit figures when MICROPYTHON32 names a 32-bit port, see rmbench.micropython): with
  the library and the board doubles deployed as .mpy (rmbench.boardsim.deploy_for_heap; the
  doubles, umqtt.simple's included, imported first: a board has them built in),
  mqtt_live_heap_bytes is what stays on the GC heap while the session runs (rmnode and the
  rmclaim package that keeps the NVS handles, the session's objects, and the names interned
  for good), after rmnode.start() from a stored identity with a mapping request to send;
  mqtt_min_heap_kb the smallest -X heapsize with which that whole run completes (interpreter,
  doubles and all), the largest over REPEAT runs.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from rmbench.board import VirtualBoard
from rmbench.boardsim import DEFAULT_WIFI, SimBoard, create_board, deploy_for_heap
from rmbench.broker.harness import RunningBroker, running_broker
from rmbench.deploy import ClaimConfig, deploy
from rmbench.micropython import Interpreter, micropython, micropython32
from rmbench.service.harness import RunningService, running_service

from benchmarks.boots import timed_boot
from benchmarks.record import record

RUNS = 5
MESSAGES = 200
FLEET = 8
REPEAT = 3
STEPS = ("config", "wifi", "time", "claim", "flashes", "setup", "mqtt", "nodeconfig")

CLAIM = """
import rmclaim
print("claimed", rmclaim.ensure_claimed(%r).node_id)
"""

PUBLISH = """
import time, rmnode
node = rmnode.start(%r)
payload = '{"Light": {"Brightness": 50}}'
t0 = time.ticks_ms()
for _ in range(%d):
    node.publish("params/local", payload, 1)
qos1 = time.ticks_diff(time.ticks_ms(), t0)
t0 = time.ticks_ms()
for _ in range(%d):
    node.publish("params/local", payload, 0)
node.publish("params/local", payload, 1)
qos0 = time.ticks_diff(time.ticks_ms(), t0)
node.disconnect()
print("timed", qos1, qos0)
"""

START = """
import time
t0 = time.ticks_ms()
import rmnode
node = rmnode.start(%r)
print("connected", time.ticks_diff(time.ticks_ms(), t0))
node.poll(%d)
node.disconnect()
"""

HEAP = """
import gc, sys
import _boardsim, os, esp32, machine, network, socket, tls, select, errno, json, binascii
import umqtt.simple
import rmclaim
n = rmclaim.nvs("rmclaim_map")
n.set_blob("user_id", "u-0123456789abcdef")
n.set_blob("secret_key", "3b0e7c5c-5a63-4c5f-9b0a-3c2c8d2f7e11")
del n
for m in [m for m in sys.modules if m.startswith("rmclaim")]:
    del sys.modules[m]  # counted again below: a board keeps the package after its claim
gc.collect()
base = gc.mem_alloc()
import rmnode
node = rmnode.start(%r)
gc.collect()
print("live", gc.mem_alloc() - base)
node.disconnect()
"""


def _config(svc: RunningService, broker: RunningBroker, **more: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "service_url": svc.base_url,
        "ca": svc.server_ca_pem,
        "max_attempts": 1,
        "mqtt_ca": broker.server_ca_pem,
        "mqtt_host": "localhost",
        "mqtt_port": broker.port,
    }
    cfg.update(more)
    return cfg


def _sim_board(
    svc: RunningService, broker: RunningBroker, root: Path, name: str, port: Interpreter
) -> tuple[SimBoard, Path]:
    # A fresh simulated ESP32-S3, claimed, with its config file (mqtt included).
    board = create_board(root / name, "esp32s3", name=name)
    svc.register(board.mac, board.unique_id)
    config = board.directory / "rmclaim.json"
    config.write_text(json.dumps(_config(svc, broker)))
    board.run(port, CLAIM % str(config), heap="1M")
    return board, config


# --- boot --------------------------------------------------------------------------------------


def _one_boot(board: VirtualBoard) -> tuple[float, dict[str, int]]:
    wanted = ("config", "wifi", "time", "claimed", "mqtt", "nodeconfig")
    total, seen, lines = timed_boot(board, "nodeconfig", wanted)
    ms = {s.step: s.ms or 0 for s in lines if s.outcome == "ok"}
    ms["claim"] = max(0, ms.pop("claimed") - ms["config"] - ms["wifi"] - ms["time"])
    # The claimed pattern (three green flashes, 800 ms) comes before the claimed line on every
    # boot: from the time line to the claimed line, less the claim's own ms, host clock.
    ms["flashes"] = max(0, round((seen["claimed"] - seen["time"]) * 1000) - ms["claim"])
    # From the claimed line to the mqtt line, less the connection itself: the MQTT step's
    # preparation (config read again, LED, stored identity to DER, TLS context), host clock.
    between = (seen["mqtt"] - seen["claimed"]) * 1000
    ms["setup"] = max(0, round(between) - ms["mqtt"])
    return total, ms


def boot_figures(svc: RunningService, broker: RunningBroker, root: Path) -> dict[str, float]:
    board = VirtualBoard.start("esp32s3", name="bench-mqtt-boot", root=root)
    try:
        config = ClaimConfig(
            service_url=svc.base_url,
            ca=svc.server_ca_pem,
            wifi_ssid=DEFAULT_WIFI[0],
            wifi_password=DEFAULT_WIFI[1],
            mqtt_ca=broker.server_ca_pem,
            mqtt_host="localhost",
            mqtt_port=broker.port,
        )
        deploy(board, config=config)
        info = board.eval("__import__('rmclaim').device_info(True)")
        svc.register(info["mac"], bytes.fromhex(info["unique_id"]))
        board.watch_status(board.reset(), until=("nodeconfig", "ok"), timeout=60)  # claims
        runs = [_one_boot(board) for _ in range(RUNS)]
    finally:
        board.close()
    total = statistics.median(t for t, _ in runs)
    per_step = {s: statistics.median(r[s] for _, r in runs) for s in STEPS}
    rest = max(0.0, total - sum(per_step.values()))
    print(f"power-on to MQTT connected and config published, claimed esp32s3, median of {RUNS}:")
    print(f"  {total:8.0f} ms total (runs: {', '.join(f'{t:.0f}' for t, _ in runs)})")
    print(f"  {rest:8.0f} ms {100 * rest / total:5.1f} %  boot (interpreter, imports, the rest)")
    figures: dict[str, float] = {
        "mqtt_boot_runs": RUNS,
        "mqtt_boot_to_config_ms": round(total, 1),
        "mqtt_boot_step_boot_ms": round(rest, 1),
        "mqtt_boot_step_boot_share": round(rest / total, 3),
    }
    for step in STEPS:
        ms = per_step[step]
        print(f"  {ms:8.0f} ms {100 * ms / total:5.1f} %  {step}")
        figures[f"mqtt_boot_step_{step}_ms"] = ms
        figures[f"mqtt_boot_step_{step}_share"] = round(ms / total, 3)
    return figures


# --- messages per second -----------------------------------------------------------------------


def rate_figures(svc: RunningService, broker: RunningBroker, root: Path) -> dict[str, float]:
    port = micropython()
    board, config = _sim_board(svc, broker, root, "bench-mqtt-rate", port)
    out = board.run(port, PUBLISH % (str(config), MESSAGES, MESSAGES), heap="1M", timeout=300)
    qos1_ms, qos0_ms = (int(x) for x in out.split("timed", 1)[1].split()[:2])
    got = len(broker.published(topic=f"node/{board.mac}/params/local", client_id=board.mac))
    if got != 2 * MESSAGES + 1:
        raise RuntimeError(f"bench_mqtt: the broker got {got} of {2 * MESSAGES + 1} messages")
    qos1 = MESSAGES * 1000 / max(qos1_ms, 1)
    qos0 = (MESSAGES + 1) * 1000 / max(qos0_ms, 1)
    print(f"one board publishing {MESSAGES} param reports: QoS 1 {qos1:.0f}/s, QoS 0 {qos0:.0f}/s")
    return {"mqtt_publish_qos1_per_s": round(qos1, 1), "mqtt_publish_qos0_per_s": round(qos0, 1)}


# --- eight boards at once ----------------------------------------------------------------------


def fleet_figures(svc: RunningService, broker: RunningBroker, root: Path) -> dict[str, float]:
    port = micropython()
    boards = [_sim_board(svc, broker, root, f"bench-mqtt-fleet-{i}", port) for i in range(FLEET)]
    mark = broker.mark()
    connect_ms: list[int] = []
    lock = threading.Lock()

    def run(board: SimBoard, config: Path) -> None:
        out = board.run(port, START % (str(config), 3000), heap="1M", timeout=120)
        with lock:
            connect_ms.append(int(out.split("connected", 1)[1].split()[0]))

    threads = [threading.Thread(target=run, args=b) for b in boards]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    wanted = {f"node/{b.mac}/config" for b, _ in boards}
    while True:
        got = {
            e["topic"]
            for e in broker.events()[mark:]
            if e["event"] == "publish" and e["topic"] in wanted
        }
        if got == wanted or time.monotonic() - t0 > 120:
            break
        time.sleep(0.02)
    wall = time.monotonic() - t0
    for t in threads:
        t.join(120)
    if got != wanted or len(connect_ms) != FLEET:
        raise RuntimeError(f"bench_mqtt: {len(got)} of {FLEET} boards published their config")
    accepted = [
        e for e in broker.events("connect")[-FLEET:] if e["accepted"] and e["listener"] == "node"
    ]
    print(
        f"{FLEET} boards at once: all connected and configs at the broker in {wall:.2f} s; "
        f"each board's connect {statistics.median(connect_ms)} ms median, {max(connect_ms)} max"
    )
    return {
        "mqtt_fleet_boards": FLEET,
        "mqtt_fleet_all_configs_s": round(wall, 3),
        "mqtt_fleet_connect_median_ms": statistics.median(connect_ms),
        "mqtt_fleet_connect_max_ms": max(connect_ms),
        "mqtt_fleet_accepted": len(accepted),
    }


# --- heap --------------------------------------------------------------------------------------


def heap_figures(
    svc: RunningService, broker: RunningBroker, root: Path, port: Interpreter, suffix: str
) -> dict[str, int]:
    deployed = root / f"deployed{suffix}"
    path = deploy_for_heap(deployed)
    live: list[int] = []
    least: list[int] = []
    for i in range(REPEAT):
        board, config = _sim_board(svc, broker, root, f"bench-mqtt-heap{suffix}-{i}", port)

        def attempt(heap: str, board: SimBoard = board, config: Path = config) -> str:
            return port.run(
                HEAP % str(config),
                heap=heap,
                path=path,
                env=board.env(),
                cwd=deployed,
                check=False,
            )

        out = attempt("256K")
        live.append(int(out.split("live", 1)[1].split()[0]))
        lo, hi = 16, 160
        while lo < hi:
            mid = (lo + hi) // 2
            if "live " in attempt(f"{mid}K"):
                hi = mid
            else:
                lo = mid + 1
        least.append(lo)
    print(
        f"heap ({port.bits}-bit): {max(live)} bytes live while MQTT runs, "
        f"{max(least)} KB the smallest heap for a session from a stored identity"
    )
    return {f"mqtt_live_heap_bytes{suffix}": max(live), f"mqtt_min_heap_kb{suffix}": max(least)}


def main() -> None:
    figures: dict[str, float | int] = {}
    with (
        tempfile.TemporaryDirectory(prefix="bench-mqtt-") as tmp,
        running_service(Path(tmp) / "svc") as svc,
        running_broker(Path(tmp) / "broker", svc.state_dir) as broker,
    ):
        root = Path(tmp)
        figures.update(boot_figures(svc, broker, root / "vboards"))
        figures.update(rate_figures(svc, broker, root / "rate"))
        figures.update(fleet_figures(svc, broker, root / "fleet"))
        figures.update(heap_figures(svc, broker, root / "heap", micropython(), ""))
        port32 = micropython32()
        if port32 is not None:
            figures.update(heap_figures(svc, broker, root / "heap32", port32, "_32"))
    record(figures)


if __name__ == "__main__":
    main()
