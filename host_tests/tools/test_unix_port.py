"""Which MicroPython Unix port runs device code, and the heap a simulated board gets on it."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
from rmbench.boardsim import create_board
from rmbench.micropython import (
    MICROPYTHON32_ENV,
    Interpreter,
    find_micropython,
    heap_bytes,
    host_heap,
    micropython,
    micropython32,
)

HEAP = """import gc, json, sys
gc.collect()
print(json.dumps([sys.maxsize, gc.mem_free() + gc.mem_alloc()]))
"""


def test_the_venv_port_says_it_is_64_bit() -> None:
    assert micropython().bits == 64


def test_the_32_bit_port_says_so_whatever_cpython_is(mpy32: Interpreter) -> None:
    # CPython here is 64-bit; the width is the interpreter's own (its sys.maxsize).
    assert struct.calcsize("P") == 8
    assert mpy32.bits == 32


def test_micropython32_unset_is_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(MICROPYTHON32_ENV, raising=False)
    assert micropython32() is None


def test_micropython32_refuses_a_64_bit_port(monkeypatch: pytest.MonkeyPatch) -> None:
    venv_port = str(find_micropython())
    monkeypatch.setenv(MICROPYTHON32_ENV, venv_port)
    with pytest.raises(ValueError) as info:
        micropython32()
    assert str(info.value) == (
        f"MICROPYTHON32={venv_port}: a 64-bit interpreter; it must name a 32-bit "
        "MicroPython Unix port (sys.maxsize == 2**31 - 1)"
    )


def test_micropython32_refuses_a_missing_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(MICROPYTHON32_ENV, str(tmp_path / "nothing"))
    with pytest.raises(FileNotFoundError, match="no executable file there"):
        micropython32()


@pytest.mark.parametrize("profile", ["esp32", "esp32c2", "esp32s3"])
def test_a_simulated_board_gets_its_heap_at_the_ports_width(
    profile: str, tmp_path: Path, mpy: Interpreter
) -> None:
    # The board's own figure on a 32-bit port, 1.5 times it on a 64-bit one.
    board = create_board(tmp_path / profile, profile, name=f"heap-{profile}")
    maxsize, total = json.loads(board.run(mpy, HEAP))
    assert maxsize == 2 ** (mpy.bits - 1) - 1
    want = heap_bytes(host_heap(board.profile.gc_heap, mpy.bits))
    assert 0.97 * want <= total <= 1.02 * want


def test_a_simulated_board_on_the_32_bit_port_has_the_real_heap(
    tmp_path: Path, mpy32: Interpreter
) -> None:
    board = create_board(tmp_path / "c2", "esp32c2", name="heap32-c2")
    maxsize, total = json.loads(board.run(mpy32, HEAP))
    assert maxsize == 2**31 - 1
    want = heap_bytes(board.profile.gc_heap)  # the profile's own figure, unscaled
    assert 0.97 * want <= total <= want
