"""Concurrent claims: SQLite transactions keep quotas and challenges exact under load."""

from __future__ import annotations

import json
import secrets
import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from cryptography import x509
from rmbench.service import ca
from rmbench.service.harness import RunningService
from rmbench.service.logic import ClaimFailure, ClaimService, Settings
from rmbench.service.store import Store

from .helpers import call, challenge_response, make_csr, split_chain

T = TypeVar("T")
NO_QUOTA = "User does not have available quota. Please contact Administrator"
# How long the first of two racing claims holds, between counting its owner's claims and
# marking its node claimed, for the second to count too. Counting takes milliseconds; an
# atomic store makes the second wait for the whole hold, so this is also the test's cost.
HOLD_S = 2.0


def all_at_once(n: int, work: Callable[[int, threading.Barrier], T]) -> list[T]:
    """Run work(i, barrier) on n threads; each waits on the barrier before its racing step."""
    barrier = threading.Barrier(n, timeout=60)
    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(lambda i: work(i, barrier), range(n)))


def test_quota_holds_under_50_concurrent_token_claims(svc: RunningService) -> None:
    token = "race-" + secrets.token_hex(8)
    user_id = svc.add_user(token, quota=5)
    macs = [secrets.token_hex(6).upper() for _ in range(50)]
    auth = {"Authorization": token}

    def claim(i: int, barrier: threading.Barrier) -> tuple[int, str, str]:
        body = {"mac_addr": macs[i], "platform": "host"}
        r = call(svc, "POST", "/claim/initiate", body, headers=auth)
        assert r.status == 200, r.body
        node_id = r.json()["node_id"]
        csr, _ = make_csr(node_id)
        barrier.wait()
        r = call(svc, "POST", "/claim/verify", {"csr": csr}, headers=auth)
        text = r.json().get("description", "") if r.status != 200 else r.json()["certificate"]
        return r.status, node_id, text

    results = all_at_once(50, claim)
    assert Counter(status for status, _, _ in results) == {200: 5, 403: 45}
    assert {text for status, _, text in results if status == 403} == {NO_QUOTA}
    won = {node for status, node, _ in results if status == 200}
    store = Store.open(svc.state_dir)
    try:
        user = store.user(user_id)
        issued = {node for _, node, _ in store.certificates() if node in won}
    finally:
        store.close()
    assert user is not None and user.claimed == 5
    assert issued == won


def test_quota_count_and_claim_are_one_transaction(tmp_path: Path) -> None:
    # The race made certain: two token claims of a user with quota 1, the first held (by the
    # store's test hook) after it counted the user's claims until the second has counted too.
    # With the count and the claim in one write transaction the second cannot count before the
    # first commits, and sees the quota spent; without it both count 0 and both are claimed.
    store = Store.open(tmp_path)
    service = ClaimService(store, ca.load_or_create_authorities(tmp_path).claim, Settings())
    token = "race-" + secrets.token_hex(8)
    user_id = store.add_user(token, quota=1)
    nodes = []
    for _ in range(2):
        body = json.dumps({"mac_addr": secrets.token_hex(6).upper(), "platform": "esp32"})
        nodes.append(service.initiate(body.encode(), token)["node_id"])
    first_counted, second_counted = threading.Event(), threading.Event()
    overlapped: list[bool] = []  # did the second count while the first held?

    def counted(node_id: str) -> None:
        if node_id == nodes[0]:
            first_counted.set()
            overlapped.append(second_counted.wait(HOLD_S))
        else:
            second_counted.set()

    def claim(node_id: str) -> tuple[int, str]:
        csr, _ = make_csr(node_id)
        try:
            reply = service.verify(json.dumps({"csr": csr}).encode(), token, matter=False)
        except ClaimFailure as e:
            return e.status, e.description
        return 200, reply["certificate"][:27]

    store.quota_counted = counted
    with ThreadPoolExecutor(max_workers=2) as pool:
        first = pool.submit(claim, nodes[0])
        assert first_counted.wait(60), "the first claim never counted"
        second = pool.submit(claim, nodes[1])
        results = [first.result(timeout=120), second.result(timeout=120)]
    store.quota_counted = None
    assert results == [(200, "-----BEGIN CERTIFICATE-----"), (403, NO_QUOTA)]
    assert overlapped == [False], "the second claim counted while the first was not committed"
    user = store.user(user_id)
    assert user is not None and user.claimed == 1
    assert [node for _, node, _ in store.certificates()] == [nodes[0]]
    store.close()


def test_200_concurrent_self_claims(svc: RunningService) -> None:
    devices = [(secrets.token_hex(6).upper(), secrets.token_bytes(16)) for _ in range(200)]
    for mac, uid in devices:
        svc.register(mac, uid)

    def claim(i: int, barrier: threading.Barrier) -> tuple[int, str, object]:
        mac, uid = devices[i]
        csr, key = make_csr(mac)
        barrier.wait()
        r = call(svc, "POST", "/claim/initiate", {"mac_addr": mac, "platform": "esp32c3"})
        assert r.status == 200, r.body
        init = r.json()
        body = {
            "auth_id": init["auth_id"],
            "challenge_response": challenge_response(uid, init["challenge"]),
            "csr": csr,
        }
        r = call(svc, "POST", "/claim/verify", body)
        return r.status, r.json().get("certificate", r.body.decode()), key.public_key()

    results = all_at_once(200, claim)
    assert [status for status, _, _ in results] == [200] * 200
    ca_cert = x509.load_pem_x509_certificate(svc.claim_ca_pem.encode())
    serials = set()
    for (mac, _), (_, chain, public_key) in zip(devices, results, strict=True):
        assert isinstance(chain, str)
        device, issuer = split_chain(chain)
        assert issuer == ca_cert
        device.verify_directly_issued_by(ca_cert)
        assert device.public_key() == public_key
        assert device.subject.rfc4514_string() == f"CN={mac}"
        serials.add(device.serial_number)
    assert len(serials) == 200
    assert "Traceback" not in svc.log_text()
