"""Local claiming service: throughput and latency of 200 concurrent self-claims over TLS.

Each claim is what a board does: POST /claim/initiate, HMAC-SHA512 of the challenge, POST
/claim/verify with a CSR, each on a new TLS connection pinned to server-ca.pem. Keys and CSRs are
made before the clock starts. Client threads run in this process, so the figure is for client
and server sharing the machine (2 cores in CI).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import statistics
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from rmbench.service import client
from rmbench.service.harness import RunningService, running_service

from benchmarks.record import record

CLAIMS = 200
WARMUP = 20


def _csr(mac: str) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, mac)])
    csr = x509.CertificateSigningRequestBuilder().subject_name(name).sign(key, hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.PEM).decode()


def _claim(svc: RunningService, mac: str, uid: bytes, csr: str) -> float:
    """One whole self-claim; returns its latency in seconds."""
    start = time.perf_counter()
    body = json.dumps({"mac_addr": mac, "platform": "esp32s3"}).encode()
    r = client.request(
        svc.base_url, "POST", "/claim/initiate", ca_file=svc.server_ca_file, body=body
    )
    if r.status != 200:
        raise RuntimeError(f"initiate: HTTP {r.status} {r.body[:200]!r}")
    init = r.json()
    response = hmac.new(uid, init["challenge"].encode(), hashlib.sha512).hexdigest().upper()
    body = json.dumps(
        {"auth_id": init["auth_id"], "challenge_response": response, "csr": csr}
    ).encode()
    r = client.request(
        svc.base_url, "POST", "/claim/verify", ca_file=svc.server_ca_file, body=body
    )
    if r.status != 200:
        raise RuntimeError(f"verify: HTTP {r.status} {r.body[:200]!r}")
    return time.perf_counter() - start


def _round(svc: RunningService, n: int) -> tuple[float, list[float]]:
    devices = [(secrets.token_hex(6).upper(), secrets.token_bytes(16)) for _ in range(n)]
    for mac, uid in devices:
        svc.register(mac, uid)
    csrs = [_csr(mac) for mac, _ in devices]
    barrier = threading.Barrier(n + 1)

    def one(i: int) -> float:
        barrier.wait()
        mac, uid = devices[i]
        return _claim(svc, mac, uid, csrs[i])

    with ThreadPoolExecutor(max_workers=n) as pool:
        futures = [pool.submit(one, i) for i in range(n)]
        barrier.wait()
        start = time.perf_counter()
        latencies = [f.result() for f in futures]
        wall = time.perf_counter() - start
    return wall, latencies


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp, running_service(Path(tmp) / "svc") as svc:
        _round(svc, WARMUP)
        wall, latencies = _round(svc, CLAIMS)
        # One board at a time: the latency a single device sees on an idle service.
        idle = []
        for _ in range(WARMUP):
            mac, uid = secrets.token_hex(6).upper(), secrets.token_bytes(16)
            svc.register(mac, uid)
            idle.append(_claim(svc, mac, uid, _csr(mac)) * 1000)
    ms = sorted(x * 1000 for x in latencies)
    p50 = statistics.median(ms)
    p99 = ms[min(len(ms) - 1, round(0.99 * len(ms)) - 1)]
    rate = CLAIMS / wall
    print(f"{CLAIMS} concurrent self-claims in {wall:.2f} s: {rate:.0f} claims/s")
    print(f"latency per claim (initiate + verify): p50 {p50:.0f} ms, p99 {p99:.0f} ms")
    print(f"one claim at a time: median {statistics.median(idle):.1f} ms")
    record(
        {
            "service_selfclaims_per_s": round(rate, 1),
            "service_selfclaim_p50_ms": round(p50, 1),
            "service_selfclaim_p99_ms": round(p99, 1),
            "service_selfclaim_idle_ms": round(statistics.median(idle), 1),
        }
    )


if __name__ == "__main__":
    main()
