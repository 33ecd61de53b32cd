"""rmclaim.store over the simulated esp32.NVS: layout, phases, damage detection, forget, checks."""

# The simulated NVS writes through, as ESP-IDF 5 does: each write is stored when it returns.

from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from rmbench.boardsim import SimBoard, create_board, open_board
from rmbench.micropython import Interpreter

from .support import PRELUDE, issue_device, make_ca, public_point, result, run_device, sec1_pem

KEYS = ("client_key", "client_cert", "node_id", "mqtt_host", "mqtt_cred_host", "random")

RUN = """
import esp32
from rmclaim import store as S
st = S.Store()
res = []
for op in ARGS:
    try:
        name = op[0]
        if name == "lengths":
            r = st.lengths()
        elif name == "save_key":
            r = st.save_key(op[1], None if op[2] is None else bytes.fromhex(op[2]))
        elif name == "save_identity":
            r = st.save_identity(op[1], op[2], op[3], op[4])
        elif name == "load":
            c = st.load()
            r = None if c is None else {"node_id": c.node_id, "key_pem": c.key_pem,
                "cert_pem": c.cert_pem, "mqtt_host": c.mqtt_host,
                "mqtt_cred_host": c.mqtt_cred_host, "random": c.random.hex(),
                "key_der": c.key_der().hex(), "cert_der": c.cert_der().hex()}
        elif name == "claimed":
            r = st.is_claimed()
        elif name == "raw_blob":  # write a blob behind the store's back
            esp32.NVS("rmaker_creds").set_blob(op[1], bytes.fromhex(op[2]))
            r = None
        elif name == "key":
            d, pem = st.load_or_create_key()
            r = pem
        elif name == "forget":
            r = st.forget()
        res.append({"ok": r})
    except Exception as e:
        res.append(err(e))
out(res)
"""


@pytest.fixture
def board(tmp_path: Path) -> SimBoard:
    return create_board(tmp_path / "b", "esp32s3", name="store-board")


def ops(mpy: Interpreter, board: SimBoard, *steps: list[Any]) -> list[dict[str, Any]]:
    res: list[dict[str, Any]] = run_device(mpy, RUN, list(steps), board=board)
    return res


def creds_ns(board: SimBoard) -> dict[str, Any]:
    ns: dict[str, Any] = board.nvs().get("rmaker_creds", {})
    return ns


def lens_of(board: SimBoard) -> list[int]:
    raw = creds_ns(board)["rmclaim_lens"]
    assert isinstance(raw, bytes) and len(raw) == 13 and raw[0] == 1
    return list(struct.unpack("<6H", raw[1:]))


def _key_and_cert() -> tuple[str, str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    ca = make_ca("ESP-RainMaker test")
    cert = issue_device(ca, key.public_key(), "NODE0001") + ca.cert_pem
    return sec1_pem(key), cert, ca.cert_pem


def test_empty_store(mpy: Interpreter, board: SimBoard) -> None:
    res = ops(mpy, board, ["lengths"], ["load"], ["claimed"])
    assert [r["ok"] for r in res] == [[0] * 6, None, False]


def test_key_phase_layout_reads_never_guess(mpy: Interpreter, board: SimBoard) -> None:
    key_pem, _, _ = _key_and_cert()
    rnd = bytes(range(64))
    res = ops(mpy, board, ["save_key", key_pem, rnd.hex()], ["claimed"], ["load"])
    assert res[1]["ok"] is False and res[2]["ok"] is None
    ns = creds_ns(board)
    assert ns["client_key"] == key_pem.encode()  # RainMaker's content: PEM, no NUL
    assert ns["random"] == rnd
    # The index records each blob's exact length: reads use a buffer of exactly that size.
    assert lens_of(board) == [len(key_pem), 0, 0, 0, 0, 64]
    assert set(ns) == {"client_key", "random", "rmclaim_lens"}


def test_identity_phase_and_load(mpy: Interpreter, board: SimBoard) -> None:
    key_pem, cert, _ = _key_and_cert()
    res = ops(
        mpy,
        board,
        ["save_identity", cert, "NODE0001", "mqtt.local", None],
        ["save_key", key_pem, "ab" * 64],
        ["save_identity", cert, "NODE0001", "mqtt.local", None],
        ["claimed"],
        ["load"],
    )
    assert res[0]["kind"] == "StoreError" and "no key stored" in res[0]["error"]
    assert res[3]["ok"] is True
    c = res[4]["ok"]
    assert (c["node_id"], c["key_pem"], c["cert_pem"]) == ("NODE0001", key_pem, cert)
    assert (c["mqtt_host"], c["mqtt_cred_host"], c["random"]) == ("mqtt.local", None, "ab" * 64)
    # key_der/cert_der are what tls.load_cert_chain takes, and what cryptography reads too.
    key = serialization.load_der_private_key(bytes.fromhex(c["key_der"]), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert sec1_pem(key) == key_pem
    ns = creds_ns(board)
    assert ns["client_cert"] == cert.encode() and ns["node_id"] == b"NODE0001"
    assert lens_of(board) == [len(key_pem), len(cert), 8, 10, 0, 64]
    assert "mqtt_cred_host" not in ns


@pytest.mark.parametrize("size", [100, 5000])
def test_damaged_blob_reported_not_used(mpy: Interpreter, board: SimBoard, size: int) -> None:
    key_pem, cert, _ = _key_and_cert()
    res = ops(
        mpy,
        board,
        ["save_key", key_pem, "00" * 64],
        ["save_identity", cert, "NODE0001", None, None],
        ["raw_blob", "client_cert", "41" * size],
        ["load"],
    )
    assert res[3]["kind"] == "StoreError"
    assert res[3]["error"] == (
        f"store: client_cert is damaged (recorded {len(cert)} bytes, found "
        f"{'none' if size > len(cert) else size}); forget() and claim again"
    )


def test_unknown_index_layout_refused(mpy: Interpreter, board: SimBoard) -> None:
    res = ops(mpy, board, ["raw_blob", "rmclaim_lens", "02" + "00" * 12], ["load"])
    assert res[1]["error"] == "store: rmclaim_lens holds an unknown layout (13 bytes, version 2)"
    res = ops(mpy, board, ["raw_blob", "rmclaim_lens", "01" * 20], ["load"])
    assert res[1]["error"] == "store: rmclaim_lens is longer than layout 1 knows"


def test_forget_wipes_everything(mpy: Interpreter, board: SimBoard) -> None:
    key_pem, cert, _ = _key_and_cert()
    res = ops(
        mpy,
        board,
        ["save_key", key_pem, "00" * 64],
        ["save_identity", cert, "NODE0001", "m", "c"],
        ["raw_blob", "client_key", "00"],  # even a blob left unlisted goes
        ["forget"],
        ["load"],
        ["lengths"],
    )
    assert res[4]["ok"] is None and res[5]["ok"] == [0] * 6
    assert creds_ns(board) == {}


def test_blobs_the_index_does_not_list_are_cleaned(mpy: Interpreter, board: SimBoard) -> None:
    # A cut can leave blobs the index does not list (forget() cut after its index erase, a
    # phase cut before its index write): ignored, and erased when a phase writes that slot as
    # absent, so a claimed board holds nothing but what its index lists.
    key_pem, cert, _ = _key_and_cert()
    res = ops(
        mpy,
        board,
        ["raw_blob", "mqtt_cred_host", "6f6c64"],
        ["raw_blob", "mqtt_host", "6f6c64"],
        ["raw_blob", "client_cert", "41" * 10],
        ["load"],
        ["save_key", key_pem, "00" * 64],
        ["save_identity", cert, "NODE0001", None, None],
        ["load"],
    )
    assert res[3]["ok"] is None  # unlisted: not an identity, not an error
    c = res[6]["ok"]
    assert (c["cert_pem"], c["mqtt_host"], c["mqtt_cred_host"]) == (cert, None, None)
    assert set(creds_ns(board)) == {
        "client_key",
        "random",
        "client_cert",
        "node_id",
        "rmclaim_lens",
    }


LOAD = """
from rmclaim import store as S
try:
    c = S.Store().load()
    out(None if c is None else [c.cert_pem, c.node_id, c.mqtt_host, c.mqtt_cred_host])
except Exception as e:
    out(err(e))
"""

RESTORE = """
from rmclaim import store as S
S.Store().save_identity(*ARGS)
out("done")
"""


def test_a_listed_blob_is_never_overwritten(
    mpy: Interpreter, board: SimBoard, tmp_path: Path
) -> None:
    # Storing identity B over a stored identity A (same key), cut just before and just after
    # each of its writes: the next read finds A whole, B whole, or nothing; never A's node id
    # with B's certificate (the slots the index lists are dropped from it before they change).
    key_pem, _, _ = _key_and_cert()
    key = serialization.load_pem_private_key(key_pem.encode(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    ca = make_ca("ESP-RainMaker test")
    a = [issue_device(ca, key.public_key(), "NODEA") + ca.cert_pem, "NODEA", "mqtt.a", None]
    b = [issue_device(ca, key.public_key(), "NODEB") + ca.cert_pem, "NODEB", None, "cred.b"]
    ops(mpy, board, ["save_key", key_pem, "00" * 64], ["save_identity", *a])
    # dropped-index, cert, node id, mqtt_host erased, mqtt_cred_host, index: 6 writes
    seen = []
    for n in range(1, 8):
        for when in ("", ":after"):
            copy = tmp_path / f"cut-{n}{when}"
            shutil.copytree(board.directory, copy)
            b_board = open_board(copy)
            out = b_board.run(
                mpy,
                PRELUDE + RESTORE,
                stdin=json.dumps(b),
                env={"RMBENCH_POWER_CUT": f"nvs:{n}{when}"},
                check=False,
            )
            got = run_device(mpy, LOAD, None, board=b_board)
            if n == 7:  # past the last write: the store finished
                assert result(out) == "done" and got == b
            else:
                assert "RESULT:" not in out  # cut
                assert got in (a, b, None), got
            seen.append(got)
    assert seen[0] == a and seen[-1] == b and None in seen


def test_key_made_once_and_kept(mpy: Interpreter, board: SimBoard) -> None:
    first = ops(mpy, board, ["key"])[0]["ok"]
    rnd = creds_ns(board)["random"]
    second = ops(mpy, board, ["key"])[0]["ok"]
    assert first == second and first.startswith("-----BEGIN EC PRIVATE KEY-----\n")
    assert creds_ns(board)["random"] == rnd and len(rnd) == 64
    key = serialization.load_pem_private_key(first.encode(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1"


def test_unreadable_key_without_certificate_replaced(mpy: Interpreter, board: SimBoard) -> None:
    res = ops(mpy, board, ["save_key", "-----BEGIN EC PRIVATE KEY-----\nAAAA\n", None], ["key"])
    assert res[1]["ok"].startswith("-----BEGIN EC PRIVATE KEY-----\nM")
    assert len(creds_ns(board)["random"]) == 64


CHECK = """
from rmclaim import check
res = []
for point, node_id, cert, claim_ca in ARGS:
    try:
        check.check_certificate(bytes.fromhex(point), node_id, cert, claim_ca)
        res.append({"ok": True})
    except Exception as e:
        res.append(err(e))
out(res)
"""


def test_check_certificate(interp: Interpreter) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    other = ec.generate_private_key(ec.SECP256R1())
    ca, rogue = make_ca("ESP-RainMaker"), make_ca("ESP-RainMaker")  # same name, other key
    point = public_point(key).hex()
    good = issue_device(ca, key.public_key(), "NODE1")
    cases = [
        (point, "NODE1", good + ca.cert_pem, None),  # CA sent along
        (point, "NODE1", good, ca.cert_pem),  # CA pinned, none sent
        (point, "NODE1", good + ca.cert_pem, ca.cert_pem),
        (point, "NODE1", issue_device(ca, other.public_key(), "NODE1") + ca.cert_pem, None),
        (point, "NODE1", issue_device(ca, key.public_key(), "NODE2") + ca.cert_pem, None),
        (point, "NODE1", good, None),  # no CA anywhere
        (point, "NODE1", good + ca.cert_pem, rogue.cert_pem),  # pinned CA did not sign it
        (point, "NODE1", issue_device(rogue, key.public_key(), "NODE1") + ca.cert_pem, None),
        (point, "NODE1", issue_device(ca, key.public_key(), "NODE1", expired=True), ca.cert_pem),
        (
            point,
            "NODE1",
            "-----BEGIN CERTIFICATE-----\nMIIBAA==\n-----END CERTIFICATE-----\n",
            None,
        ),
        (point, "NODE1", "no pem at all", None),
    ]
    res = run_device(interp, CHECK, cases)
    assert [r.get("ok") for r in res[:3]] == [True, True, True]
    bad = res[3:]
    assert all(r["kind"] == "BadCertificate" and r["retryable"] for r in bad), bad
    msgs = [r["error"] for r in bad]
    assert msgs[0] == "check: the certificate is for another key, not this board's"
    assert msgs[1] == "check: the certificate CN is 'NODE2', wanted the node id 'NODE1'"
    assert msgs[2] == (
        "check: the certificate (issuer 'ESP-RainMaker') does not verify against the sent claim CA"
    )
    assert "does not verify against the pinned claim CA" in msgs[3]
    assert "does not verify against the sent claim CA" in msgs[4]
    assert msgs[5].startswith("check: the certificate expired at ")
    assert msgs[6].startswith("check: the certificate cannot be parsed")
    assert msgs[7] == (
        "check: the certificate cannot be parsed: pem: no -----BEGIN CERTIFICATE----- found"
    )
