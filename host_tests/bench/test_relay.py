"""The virtual board's byte filters and sizing, and deploy's bundle: host-only unit tests."""

from __future__ import annotations

import pytest
from rmbench.deploy import bundle, mpy_version_of
from rmbench.micropython import heap_bytes, host_heap
from rmbench.vboard.relay import OutputFilter


def feed_all(f: OutputFilter, *chunks: bytes) -> tuple[bytes, list[str]]:
    out, events = b"", []
    for chunk in chunks:
        o, e = f.feed(chunk)
        out += o
        events += e
    return out, events


def test_line_ends_become_crlf_once() -> None:
    out, _ = feed_all(OutputFilter(), b"a\nb\r\nc\r", b"\nd\n")
    assert out == b"a\r\nb\r\nc\r\nd\r\n"


def test_markers_are_taken_out_even_when_split_across_reads() -> None:
    marker = b"\x1b]rmvb:ready\x07"
    for cut in range(1, len(marker)):
        out, events = feed_all(OutputFilter(), b"x" + marker[:cut], marker[cut:] + b"y")
        assert (out, events) == (b"xy", ["ready"]), cut
    # Other escape sequences (the REPL's cursor moves) pass untouched.
    assert feed_all(OutputFilter(), b"\x1b[K\x1b]0;t\x07")[0] == b"\x1b[K\x1b]0;t\x07"


def test_mount_frames_pass_binary_until_the_host_replies() -> None:
    f = OutputFilter()
    asked, _ = feed_all(f, b"\x18\x06")  # the board asks (CMD_READ)
    assert asked == b"\x18\x06"
    f.state.host_sent(b"\x18")  # the host's sync
    args, _ = f.feed(b"\x03\n\x00\x00")  # arguments: binary, no CRLF
    assert args == b"\x03\n\x00\x00" and f.state.binary
    f.state.host_sent(b"\x04\x00\x00\x00data")  # the reply ends the frame
    assert f.feed(b"ok\n")[0] == b"ok\r\n"


def test_a_close_frame_ends_with_its_one_argument() -> None:
    f = OutputFilter()
    f.feed(b"\x18\x05")  # CMD_CLOSE: no reply comes
    f.state.host_sent(b"\x18")
    assert f.feed(b"\x0a")[0] == b"\x0a"  # the descriptor, raw
    assert f.feed(b"text\n")[0] == b"text\r\n"


def test_repl_mode_follows_the_banners() -> None:
    f = OutputFilter()
    f.feed(b"\r\nraw REPL; CTRL-B to ")
    f.feed(b"exit\r\n>")
    assert f.state.raw_repl
    f.feed(b'MicroPython v1\r\nType "help()" for more information.\r\n>>> ')
    assert not f.state.raw_repl


@pytest.mark.parametrize(
    ("size", "host"), [("110K", "165K"), ("64K", "96K"), ("1M", "1536K"), ("100", "150")]
)
def test_host_heap_scales_a_32_bit_heap(size: str, host: str) -> None:
    assert host_heap(size, 64) == host
    assert heap_bytes(host_heap(size, 32)) == heap_bytes(size)  # 32-bit: the board's own


@pytest.mark.parametrize("bad", ["", "K", "-5K", "12Q", "0"])
def test_host_heap_rejects_nonsense(bad: str) -> None:
    with pytest.raises(ValueError, match="heap must be a size"):
        host_heap(bad, 64)


def test_host_heap_knows_only_32_and_64_bits() -> None:
    with pytest.raises(ValueError, match="32- or 64-bit, not 16-bit"):
        host_heap("64K", 16)


def test_mpy_version_from_sys_implementation() -> None:
    assert mpy_version_of(2822) == "6.3"  # the Unix port (x64 arch bits above)
    assert mpy_version_of(0x306 | (10 << 10)) == "6.3"  # xtensawin
    assert mpy_version_of(0x206) == "6.2"
    assert mpy_version_of(6) == "6"


def test_bundle_compiles_the_library_and_keeps_boot_files_as_source() -> None:
    files = bundle("6.3", config={"service_url": "https://x", "ca": "-----BEGIN CERTIFICATE-----"})
    assert files["/main.py"].startswith(b'"""')  # source: the board runs it by name
    assert "/boot.py" in files
    assert files["/lib/rmboot.mpy"][:2] == b"M\x06"  # .mpy header, version 6
    assert files["/lib/rmclaim/claim.mpy"][:2] == b"M\x06"
    assert not any(p.endswith(".py") and p.startswith("/lib/") for p in files)
    assert b'"service_url": "https://x"' in files["/rmclaim.json"]
