"""The whole claim within a board's GC heap, with the library deployed as .mpy files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rmbench.boardsim import SimBoard, deploy_for_heap
from rmbench.micropython import Interpreter
from rmbench.profiles import all_profiles
from rmbench.service.harness import RunningService

from .conftest import BoardFactory
from .support import claim_config, result

# The config comes from a JSON file, as a board reads /rmclaim.json; the claim reports its
# TLS handshakes in the "claimed" event.
CLAIM = """
import json, rmclaim
seen = {}
def on(step, outcome, info):
    if step == "claimed":
        seen.update(info)
c = rmclaim.ensure_claimed(%r, on)
print("RESULT:" + json.dumps({"node_id": c.node_id, "handshakes": seen.get("handshakes")}))
"""


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    """The library and the board doubles as .mpy (rmbench.boardsim.deploy_for_heap): the
    directory to run in and the path."""
    root = tmp_path_factory.mktemp("heap-deploy")
    return root, deploy_for_heap(root)


def _claim(
    mpy: Interpreter,
    svc: RunningService,
    board: SimBoard,
    heap: str,
    deployed: tuple[Path, list[Path]],
    token: str | None = None,
) -> dict[str, object]:
    if token:
        svc.add_user(token, quota=5)
    else:
        svc.register(board.mac, board.unique_id)
    cfg = claim_config(svc, max_attempts=1, access_token=token) if token else claim_config(svc)
    config = board.directory / "rmclaim.json"
    config.write_text(json.dumps(cfg))
    # Not board.run(): that puts the doubles' sources first on the path, and compiling them
    # would cost the heap what a board's built-in modules do not.
    root, path = deployed
    out = mpy.run(CLAIM % str(config), heap=heap, path=path, env=board.env(), cwd=root)
    res: dict[str, object] = result(out)
    return res


def _check(res: dict[str, object], board: SimBoard, token: str | None) -> None:
    assert res["handshakes"] == 1  # initiate and verify shared one TLS session
    if token is None:
        assert res["node_id"] == board.mac
    stored = board.nvs()["rmaker_creds"]
    assert stored["node_id"] == str(res["node_id"]).encode()
    cert = stored["client_cert"]
    assert isinstance(cert, bytes) and b"-----BEGIN CERTIFICATE-----" in cert


@pytest.mark.parametrize(("profile", "token"), [("esp32s3", None), ("esp32", "tok-heap")])
def test_claim_fits_the_profile_heap(
    mpy: Interpreter,
    svc: RunningService,
    new_board: BoardFactory,
    deployed: tuple[Path, list[Path]],
    profile: str,
    token: str | None,
) -> None:
    # The board's working heap (its initial heap grown once), scaled on a 64-bit port.
    board = new_board(f"heap-{profile}", profile)
    heap = mpy.board_heap(all_profiles()[profile].gc_heap)
    res = _claim(mpy, svc, board, heap, deployed, token)
    _check(res, board, token)


@pytest.mark.parametrize(("profile", "token"), [("esp32s3", None), ("esp32", "tok-heap-64k")])
def test_claim_at_64k(
    mpy: Interpreter,
    svc: RunningService,
    new_board: BoardFactory,
    deployed: tuple[Path, list[Path]],
    profile: str,
    token: str | None,
) -> None:
    # A self-claim and a token claim, each in a -X heapsize=64K Unix port (64-bit: objects
    # about twice an ESP32's), the service over TLS, the library and the doubles as .mpy.
    board = new_board(f"heap64-{profile}", profile)
    res = _claim(mpy, svc, board, "64K", deployed, token)
    _check(res, board, token)


# A 32-bit port's heap is a board's: the goal is a claim within 36 KB, the smallest initial
# heap of any chip (the ESP32-C2's), so that no board grows its heap (taking internal RAM that
# Wi-Fi and TLS need) to claim. Today a claim needs 43-44 KB over many boards (the README's
# "32-bit heap figures" says what holds it), the network and socket doubles included, which
# the claim now loads (its key is made with the station on; the server's address is looked
# up) and which a board has built in; this guards that, with 1 KB for the heap layout, which
# varies with the random key and certificate serials.
HEAP_32 = "45K"


@pytest.mark.parametrize(("profile", "token"), [("esp32s3", None), ("esp32", "tok-heap-32")])
def test_claim_within_the_32_bit_heap(
    mpy32: Interpreter,
    svc: RunningService,
    new_board: BoardFactory,
    deployed: tuple[Path, list[Path]],
    profile: str,
    token: str | None,
) -> None:
    board = new_board(f"heap32-{profile}", profile)
    res = _claim(mpy32, svc, board, HEAP_32, deployed, token)
    _check(res, board, token)
