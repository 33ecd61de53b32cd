"""Field onboarding crypto on the MicroPython Unix port at a 64 KB heap (`make bench BENCH=prov`).

X25519 (rmprov.x25519) is on the path of every field onboarding: security 1's command 0 makes
a key pair and the shared secret. Its time is compared with rmclaim's key generation + CSR
measured in the same run, in separate processes taken in turns (ROUNDS each, medians of RUNS
calls per process), so machine load affects both alike. Goal: shared secret <= 2x keygen+CSR.

Heap figures as in bench_crypto: peak = the least free GC heap the operation needs (bisection
over ballast that leaves R bytes free), alloc = all bytes it allocates with the collector off.

With MICROPYTHON32 set to a 32-bit build of the Unix port (objects and big-integer digits
the size they are on an ESP32: 16-bit mpz digits, 4-byte pointers), the same figures are
measured there too (names prefixed mpy32_).
"""

from __future__ import annotations

import json
import statistics
import tempfile
from pathlib import Path
from typing import Any

from rmbench.micropython import (
    Interpreter,
    compile_library,
    micropython,
    micropython32,
)

from benchmarks.record import record

HEAP = "64K"
RUNS = 31
ROUNDS = 3
CN = "VtXfecXiRKazHoBZkkLAHX"  # a RainMaker node id

TIMING_COMMON = """
import sys, json, time, os
def median(f):
    f()
    ts = []
    for _ in range(RUNS):
        t0 = time.ticks_us()
        f()
        ts.append(time.ticks_diff(time.ticks_us(), t0))
    ts.sort()
    return ts[len(ts) // 2] / 1000
RUNS = int(sys.stdin.readline())
"""
# The shared secret with only x25519 imported, as keygen+CSR runs with only p256 and csr.
TIMING_X25519 = """
from rmprov import x25519
K = x25519.generate_private_key()
PEER = x25519.public_key(x25519.generate_private_key())
print(json.dumps({"shared": median(lambda: x25519.shared_secret(K, PEER)),
                  "public": median(lambda: x25519.public_key(K))}))
"""
# Security 1 command 0 on the device (key pair, shared secret, pop, device_random, reply), and
# AES-256-CTR over one 256-byte record.
TIMING_SESSION = """
from rmprov import aesctr, pb, proto, session, x25519
PEER = x25519.public_key(x25519.generate_private_key())
CMD0 = pb.encode(proto.SESSION, {"sec_ver": 1, "sec1": {"msg": 0, "sc0": {"client_pubkey": PEER}}})
S = session.Sec1(b"abcd1234")
C = aesctr.CTR(bytes(32), bytes(16))
RECORD = bytes(256)
print(json.dumps({"command0": median(lambda: S.handle(CMD0)),
                  "ctr256": median(lambda: C.crypt(RECORD))}))
"""
TIMING_KEYGEN_CSR = """
from rmclaim import p256, csr
CN = sys.stdin.readline().strip()
def keygen_csr():
    d = p256.generate_private_key()
    p256.public_key(d)
    csr.build_csr(d, CN)
print(json.dumps({"keygen_csr": median(keygen_csr)}))
"""
SHARED_SETUP = """import sys, os, gc
from rmprov import x25519
K = x25519.generate_private_key()
PEER = x25519.public_key(x25519.generate_private_key())
"""
SHARED_OP = "x25519.shared_secret(K, PEER)"
ALLOC_SCRIPT = """
gc.collect()
gc.disable()
before = gc.mem_alloc()
%s
print("alloc", gc.mem_alloc() - before)
"""
# Leaves RESERVE bytes of the GC heap free by filling the rest (holes included) with ballast.
BALLAST = """
free = n = size = 0
gc.collect()
ballast = [None] * 1024
for size in (4096, 1024, 256, 64, 32):
    try:
        while gc.mem_free() - size - 48 >= RESERVE:
            ballast[n] = bytearray(size)
            n += 1
    except MemoryError:
        pass
free = gc.mem_free()
"""
IMPORTS = ("errors", "x25519", "aesctr", "pb", "proto", "session", "httpd")
IMPORT_SCRIPT = """
import gc
gc.collect()
base = gc.mem_alloc()
out = []
for name in IMPORTS:
    __import__("rmprov." + name)
    gc.collect()
    out.append(gc.mem_alloc() - base)
    base = gc.mem_alloc()
print(" ".join(str(v) for v in out))
""".replace("IMPORTS", repr(IMPORTS))


def min_free(interp: Interpreter, lib: Path) -> int:
    """The least free GC heap (to 64 bytes) the shared secret needs after SHARED_SETUP."""

    def ok(reserve: int) -> tuple[bool, int]:
        script = (
            f"RESERVE = {reserve}\ndef run():\n    {SHARED_OP}\n"
            f"{SHARED_SETUP}{BALLAST}run()\nprint('ok', free)\n"
        )
        out = interp.run(script, heap=HEAP, path=[lib], check=False).strip().splitlines()
        if out and out[-1].startswith("ok "):
            return True, int(out[-1].split()[1])
        return False, 0

    lo, hi = 0, 64 * 1024
    good, free = ok(hi)
    if not good:
        raise RuntimeError(f"bench_prov: the shared secret fails at {HEAP}")
    while hi - lo > 64:
        mid = (lo + hi) // 2
        good, got = ok(mid)
        if good:
            hi, free = mid, got
        else:
            lo = mid
    return free


def measure(interp: Interpreter, lib: Path) -> dict[str, float]:
    """Timings (medians over rounds), heap figures and import costs on one interpreter."""
    rounds: dict[str, list[float]] = {}
    for _ in range(ROUNDS):
        scripts = (
            (TIMING_X25519, f"{RUNS}\n"),
            (TIMING_KEYGEN_CSR, f"{RUNS}\n{CN}\n"),
            (TIMING_SESSION, f"{RUNS}\n"),
        )
        for script, stdin in scripts:
            out = interp.run(TIMING_COMMON + script, stdin=stdin, heap=HEAP, path=[lib])
            for name, value in json.loads(out).items():
                rounds.setdefault(name, []).append(value)
    t = {name: statistics.median(values) for name, values in rounds.items()}
    alloc = interp.run(SHARED_SETUP + ALLOC_SCRIPT % SHARED_OP, heap="4M", path=[lib])
    sizes = interp.run(IMPORT_SCRIPT, heap="256K", path=[lib]).split()
    figures: dict[str, float] = {
        "x25519_shared_ms": t["shared"],
        "x25519_public_ms": t["public"],
        "sec1_command0_ms": t["command0"],
        "aesctr_256_bytes_ms": t["ctr256"],
        "keygen_csr_ms": t["keygen_csr"],
        "x25519_shared_ratio_vs_keygen_csr": t["shared"] / t["keygen_csr"],
        "x25519_shared_peak_heap_bytes": min_free(interp, lib),
        "x25519_shared_alloc_bytes": int(alloc.split()[-1]),
    }
    for name, size in zip(IMPORTS, sizes, strict=True):
        figures[f"import_heap_bytes_rmprov_{name}"] = int(size)
    return figures


def show(label: str, f: dict[str, Any]) -> None:
    print(f"{label}, -X heapsize={HEAP}, library as .mpy; medians of {ROUNDS}x{RUNS} runs")
    print(f"  X25519 shared secret            {f['x25519_shared_ms']:8.3f} ms", end="")
    print(f"   peak heap {f['x25519_shared_peak_heap_bytes']:6d} B")
    print(f"  X25519 public key               {f['x25519_public_ms']:8.3f} ms")
    print(f"  security 1 command 0 (device)   {f['sec1_command0_ms']:8.3f} ms")
    print(f"  AES-256-CTR, 256-byte record    {f['aesctr_256_bytes_ms']:8.3f} ms")
    print(f"  rmclaim keygen + CSR            {f['keygen_csr_ms']:8.3f} ms")
    ratio = f["x25519_shared_ratio_vs_keygen_csr"]
    print(f"  ratio shared secret / keygen+CSR: {ratio:.2f} (goal <= 2)")
    print(f"  alloc per shared secret: {f['x25519_shared_alloc_bytes']} B (garbage included)")
    imports = {k[25:]: v for k, v in f.items() if k.startswith("import_heap_bytes_rmprov_")}
    print("  import heap (.mpy): " + ", ".join(f"{k} {v}" for k, v in imports.items()))


def main() -> None:
    with tempfile.TemporaryDirectory() as work:
        lib = compile_library(Path(work) / "deployed")
        figures = {f"mpy_{k}": v for k, v in measure(micropython(), lib).items()}
        show("MicroPython Unix port (64-bit)", {k[4:]: v for k, v in figures.items()})
        interp = micropython32()
        if interp is not None:
            more = {f"mpy32_{k}": v for k, v in measure(interp, lib).items()}
            show(f"32-bit port {interp.argv[0]}", {k[6:]: v for k, v in more.items()})
            figures.update(more)
        else:
            print("(set MICROPYTHON32 to a 32-bit Unix port for ESP32-sized figures)")
    record({k: round(v, 4) if isinstance(v, float) else v for k, v in figures.items()})
