"""The virtual board as stock tools see it: `rmbench vboard` and plain `mpremote connect PORT`."""

from __future__ import annotations

import hashlib
import json
import os
import pty
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import serial
from rmbench.micropython import heap_bytes, host_heap, micropython32
from rmbench.profiles import get_profile

from .conftest import processes_under

pytestmark = pytest.mark.needs("virtual")

BIN = Path(sys.executable).parent
MAIN = b"""import time
print('main.py ran')
while True:
    time.sleep_ms(100)
"""


def rmbench(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [str(BIN / "rmbench"), *args], capture_output=True, text=True, timeout=60, check=False
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"rmbench {' '.join(args)}: {proc.returncode}\n{proc.stderr}")
    return proc


def mpremote(port: str, *args: str, timeout: float = 30) -> bytes:
    proc = subprocess.run(
        [str(BIN / "mpremote"), "connect", port, *args], capture_output=True, timeout=timeout
    )
    assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
    return proc.stdout


SOFTAP: list[str] = []  # the softap= line `vboard start` printed for the module's board


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("vboard-cli")


@pytest.fixture(scope="module")
def port(state: Path) -> Iterator[str]:
    """A board started with the CLI, with a main.py that runs until interrupted."""
    out = rmbench(
        "vboard", "start", "--board", "esp32s3", "--name", "cli", "--state-dir", str(state)
    )
    path, softap = out.stdout.splitlines()[:2]
    SOFTAP[:] = [softap]
    (state / "cli" / "fs" / "main.py").write_bytes(MAIN)
    yield path
    rmbench("vboard", "stop", "cli", "--state-dir", str(state))


def test_start_prints_a_pty_that_list_shows(state: Path, port: str) -> None:
    assert port.startswith("/dev/pts/")
    assert os.major(os.stat(port).st_rdev) == 136  # a real pty, as mpremote checks
    listing = rmbench("vboard", "list", "--state-dir", str(state)).stdout.splitlines()
    header = ["NAME", "BOARD", "FIRMWARE", "STATE", "PORT", "MAC", "BOOTS", "SOFTAP"]
    assert listing[0].split() == header
    name, board, firmware, on, pty_path, mac, _, softap = listing[1].split()
    assert (name, board, firmware, on, pty_path) == ("cli", "esp32s3", "1.28", "on", port)
    assert len(mac) == 12
    # The soft-AP's 192.168.4.1:80, as start printed it and board.json records it.
    board_json = json.loads((state / "cli" / "board.json").read_text())
    assert softap == f"softap=127.0.0.1:{board_json['softap_port']}" == SOFTAP[0]


def test_status_finds_the_boards_of_a_state_dir(state: Path, port: str) -> None:
    # rmbench status without --port looks at the running boards of --state-dir, as vboard does;
    # this one has no library deployed, which status reports for it by name.
    out = rmbench("status", "--state-dir", str(state), check=False)
    assert out.returncode == 2, out
    assert f"cli@{port}: status failed" in out.stderr, out.stderr


def test_exec_eval_and_files_with_stock_mpremote(port: str, tmp_path: Path) -> None:
    # Output lines end in CRLF, as a board's UART gives them.
    assert mpremote(port, "exec", "print('a'); print('b')") == b"a\r\nb\r\n"
    assert mpremote(port, "eval", "6 * 7") == b"42\r\n"
    machine = mpremote(port, "exec", "import os; print(os.uname().machine)")
    assert machine == b"Generic ESP32S3 module with ESP32S3\r\n"  # v1.28.0: no hyphen
    local = tmp_path / "data.bin"
    local.write_bytes(bytes(range(256)) * 5)
    mpremote(port, "fs", "cp", str(local), ":data.bin")
    back = tmp_path / "back.bin"
    mpremote(port, "fs", "cp", ":data.bin", str(back))
    assert back.read_bytes() == local.read_bytes()
    listing = mpremote(port, "fs", "ls", ":").decode()
    assert "data.bin" in listing and "main.py" in listing
    assert "_board" not in listing and "_sim" not in listing  # the simulation stays hidden
    script = tmp_path / "script.py"
    script.write_text("import sys\nprint(sys.platform, sys.implementation.name)\n")
    assert mpremote(port, "run", str(script)) == b"esp32 micropython\r\n"
    mpremote(port, "fs", "rm", ":data.bin")


def test_board_runs_on_the_32_bit_port_when_given_with_its_real_heap(port: str) -> None:
    # $MICROPYTHON32 set: the board runs on it with the profile's heap as it is; else on the
    # 64-bit port from .venv with 1.5 times it.
    bits = 32 if micropython32() is not None else 64
    code = "import gc, sys; gc.collect(); print(sys.maxsize, gc.mem_free() + gc.mem_alloc())"
    maxsize, total = map(int, mpremote(port, "exec", code).split())
    assert maxsize == 2 ** (bits - 1) - 1
    want = heap_bytes(host_heap(get_profile("esp32s3").gc_heap, bits))
    assert 0.97 * want <= total <= 1.02 * want


def test_mount_passes_binary_data_both_ways(port: str, tmp_path: Path) -> None:
    blob = bytes(range(256)) * 8 + b"\n\r\n\x03\x04\x18" * 50  # line ends, Ctrl-C, mount framing
    (tmp_path / "blob.bin").write_bytes(blob)
    code = (
        "import hashlib, binascii\n"
        "d = open('/remote/blob.bin', 'rb').read()\n"
        "print(len(d), binascii.hexlify(hashlib.sha256(d).digest()).decode())\n"
        "open('/remote/out.bin', 'wb').write(bytes(reversed(d)))"
    )
    out = mpremote(port, "mount", str(tmp_path), "exec", code).decode()
    assert f"{len(blob)} {hashlib.sha256(blob).hexdigest()}" in out
    assert (tmp_path / "out.bin").read_bytes() == blob[::-1]


def test_soft_reset_reset_and_ctrl_c_of_main(port: str) -> None:
    mpremote(port, "soft-reset")
    mpremote(port, "reset")  # machine.reset(): boot.py and main.py run, main.py loops
    time.sleep(0.3)
    # The raw REPL interrupts the running main.py, as on a board.
    assert mpremote(port, "exec", "print('after reset')") == b"after reset\r\n"


def test_friendly_repl_ctrl_d_soft_reboots_and_runs_main(port: str) -> None:
    with serial.Serial(port, 115200, timeout=0.2) as ser:
        ser.write(b"\r\x03\x02")  # interrupt, friendly REPL
        _read_until(ser, b">>> ")
        ser.write(b"\x04")
        seen = _read_until(ser, b"main.py ran\r\n")
        assert b"MPY: soft reboot\r\n" in seen
        ser.write(b"\x03")  # stop main.py again
        seen = _read_until(ser, b">>> ")
        assert b"KeyboardInterrupt" in seen
        # the board's banner, as v1.28.0 prints it
        assert (
            b"MicroPython v1.28.0 on 2026-04-06; Generic ESP32S3 module with ESP32S3\r\n" in seen
        )


def test_mpremote_repl_in_a_terminal(port: str) -> None:
    pid, fd = pty.fork()
    if pid == 0:  # the child: mpremote's console on a terminal, as a user runs it
        os.execv(str(BIN / "mpremote"), ["mpremote", "connect", port, "repl"])
    try:
        buf = _read_fd_until(fd, b"Connected to MicroPython")
        os.write(fd, b"\r")
        buf = _read_fd_until(fd, b">>> ")
        os.write(fd, b"print(6 * 7)\r")
        buf = _read_fd_until(fd, b"42\r\n")
        assert b"42\r\n" in buf
        os.write(fd, b"\x1d")  # Ctrl-] leaves mpremote's repl
        _, status = os.waitpid(pid, 0)
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    finally:
        os.close(fd)


def test_a_ctrl_c_that_outruns_the_code_it_meant_to_stop_is_harmless(
    state: Path, port: str
) -> None:
    # The relay turns Ctrl-C into SIGINT while code runs; if the code has just finished, the
    # Unix port dies of it. The board must come back at its prompt, files and NVS as they were.
    mpremote(port, "exec", "open('mark.txt', 'w').write('x')")
    info = json.loads((state / "cli" / "vboard.json").read_text())
    os.kill(info["board_pid"], signal.SIGINT)  # what the race leaves: SIGINT at a prompt
    time.sleep(0.3)
    assert mpremote(port, "fs", "cat", ":mark.txt") == b"x"
    after = json.loads((state / "cli" / "vboard.json").read_text())
    assert after["board_pid"] != info["board_pid"]
    assert after["last_reset"] == info["last_reset"]  # not a reset of any kind


def test_every_interpreter_gets_its_own_ctrl_c(port: str) -> None:
    # A main.py that starts within moments of the Ctrl-C that stopped the last one (a reset, a
    # soft reboot) must still stop at the next Ctrl-C: a burst of Ctrl-Cs reaches one interpreter
    # as one SIGINT, but that must never swallow the first one a new interpreter gets.
    with serial.Serial(port, 115200, timeout=0.005) as ser:
        for _ in range(10):
            ser.write(b"\r\x03\x02")  # stop main.py: the friendly REPL
            _read_until(ser, b">>> ")
            ser.write(b"\x04")  # soft reboot: a new interpreter runs main.py
            _read_until(ser, b"main.py ran\r\n")
            ser.write(b"\x03")
            assert b"KeyboardInterrupt" in _read_until(ser, b">>> ", timeout=3)


def test_a_ctrl_c_inside_a_garbage_collection_stops_only_main(state: Path, port: str) -> None:
    # The Unix port raises KeyboardInterrupt from its SIGINT handler, wherever the interpreter
    # is: often inside a garbage collection when main.py allocates hard. On a board the UART
    # only schedules it; here too the board must end at its prompt every time, heap usable.
    # (A raise at an arbitrary instruction can also garble the interrupted frame, so that the
    # traceback names another exception, such as "NotImplementedError: opcode": rare, and the
    # soft reset that follows, as mpremote makes, starts a fresh interpreter.)
    main = state / "cli" / "fs" / "main.py"
    main.write_bytes(
        b"print('allocating')\nwhile True:\n    x = [bytearray(200) for _ in range(40)]\n"
    )
    interrupted = 0
    try:
        with serial.Serial(port, 115200, timeout=0.005) as ser:
            ser.write(b"\r\x03\x02")
            _read_until(ser, b">>> ")
            for i in range(20):
                ser.write(b"\x04")
                _read_until(ser, b"allocating\r\n")
                time.sleep(0.05 + (i % 5) * 0.03)
                ser.write(b"\x03")
                out = _read_until(ser, b">>> ", timeout=5)
                assert b"Traceback" in out or b"KeyboardInterrupt" in out, out
                interrupted += b"KeyboardInterrupt" in out
                ser.write(b"print(len([bytearray(100) for _ in range(100)]))\r")
                assert b"100\r\n>>> " in _read_until(ser, b"100\r\n>>> ", timeout=5)
    finally:
        main.write_bytes(MAIN)
    assert interrupted >= 15  # KeyboardInterrupt, as a board prints it, all but rarely


def test_power_cycle_keeps_every_finished_nvs_write(state: Path, port: str) -> None:
    # NVS writes through, as ESP-IDF 5 does: no commit() needed for a write to survive.
    mpremote(
        port, "exec", "import esp32\nn = esp32.NVS('bench')\nn.set_i32('a', 5)\nn.set_i32('a', 6)"
    )
    out = rmbench("vboard", "power-cycle", "cli", "--state-dir", str(state)).stdout
    assert out.startswith("cli: power cycled")
    assert mpremote(port, "eval", "__import__('esp32').NVS('bench').get_i32('a')") == b"6\r\n"
    for spec in ("nvs:0", "nvs:2:later", "nvs:x"):
        bad = rmbench(
            "vboard",
            "power-cycle",
            "cli",
            "--cut-at",
            spec,
            "--state-dir",
            str(state),
            check=False,
        )
        assert bad.returncode == 1
        assert bad.stderr == (
            "rmbench: vboard power-cycle: --cut-at wants nvs:N, nvs:N:before or nvs:N:after "
            f"(N = 1, 2, ...), got {spec!r}\n"
        )


def test_identity_comes_from_the_name_and_files_survive_a_restart(state: Path) -> None:
    macs: dict[str, bytes] = {}
    for name in ("id-a", "id-b", "id-a"):
        path = rmbench(
            "vboard", "start", "--board", "esp32c3", "--name", name, "--state-dir", str(state)
        ).stdout.splitlines()[0]
        try:
            mac = mpremote(path, "eval", "__import__('machine').unique_id().hex()").strip()
            if name in macs:
                assert macs[name] == mac  # same name, same board
                assert mpremote(path, "fs", "cat", ":kept.txt") == b"kept"
            else:
                mpremote(path, "exec", "open('kept.txt', 'w').write('kept')")
            macs[name] = mac
        finally:
            rmbench("vboard", "stop", name, "--state-dir", str(state))
    assert macs["id-a"] != macs["id-b"]
    assert processes_under(state / "id-a") == []


def test_stop_leaves_no_processes(state: Path) -> None:
    rmbench("vboard", "start", "--board", "esp32", "--name", "gone", "--state-dir", str(state))
    assert processes_under(state / "gone")  # the supervisor and the interpreter
    assert rmbench("vboard", "stop", "gone", "--state-dir", str(state)).stdout == "gone: stopped\n"
    assert processes_under(state / "gone") == []
    listing = rmbench("vboard", "list", "--state-dir", str(state)).stdout
    assert "gone" in listing and "stopped" in listing


def _read_until(ser: serial.Serial, ending: bytes, timeout: float = 10) -> bytes:
    data = b""
    end = time.monotonic() + timeout
    while not data.endswith(ending) and ending not in data:
        if time.monotonic() > end:
            raise AssertionError(f"no {ending!r} in {data[-500:]!r}")
        data += ser.read(256)
    return data


def _read_fd_until(fd: int, ending: bytes, timeout: float = 10) -> bytes:
    data = b""
    end = time.monotonic() + timeout
    while ending not in data:
        if time.monotonic() > end:
            raise AssertionError(f"no {ending!r} in {data[-500:]!r}")
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            data += os.read(fd, 1024)
    return data


# What `--firmware` makes the board report: sys.implementation (py/modsys.c of each release:
# _build from v1.25.0, _thread from v1.26.0; _mpy 6.3 with the chip's native architecture,
# none for RISC-V before v1.24), os.uname() and the REPL banner.
FIRMWARE_CASES = [
    (
        "esp32c3",
        "1.23",
        "(name='micropython', version=(1, 23, 0, ''), _machine='ESP32C3 module with ESP32C3', "
        "_mpy=774)",
        "MicroPython v1.23.0 on 2024-05-31; ESP32C3 module with ESP32C3",
    ),
    (
        "esp32s3",
        "1.25",
        "(name='micropython', version=(1, 25, 0, ''), "
        "_machine='Generic ESP32S3 module with ESP32S3', _mpy=11014, _build='ESP32_GENERIC_S3')",
        "MicroPython v1.25.0 on 2025-04-16; Generic ESP32S3 module with ESP32S3",
    ),
    (
        "esp32c6",
        "preview",
        "(name='micropython', version=(1, 29, 0, 'preview'), "
        "_machine='ESP32C6 module with ESP32-C6', _mpy=12038, _build='ESP32_GENERIC_C6', "
        "_thread='GIL')",
        "MicroPython v1.29.0-preview.731.g1c3c201149 on 2026-08-19; ESP32C6 module with ESP32-C6",
    ),
]


@pytest.mark.parametrize(("board", "release", "implementation", "banner"), FIRMWARE_CASES)
def test_firmware_release_as_stock_tools_see_it(
    state: Path, board: str, release: str, implementation: str, banner: str
) -> None:
    name = f"fw-{board}-{release}"
    out = rmbench(
        "vboard",
        "start",
        "--board",
        board,
        "--firmware",
        release,
        "--name",
        name,
        "--state-dir",
        str(state),
    )
    path = out.stdout.splitlines()[0]
    try:
        got = mpremote(
            path, "exec", "import sys, os; print(sys.implementation); print(os.uname())"
        )
        impl, uname = got.decode().splitlines()
        assert impl == implementation
        assert uname.endswith(f"machine='{banner.split('; ')[1]}')")
        listing = rmbench("vboard", "list", "--state-dir", str(state)).stdout
        assert any(line.split()[:3] == [name, board, release] for line in listing.splitlines())
        with serial.Serial(path, timeout=5) as ser:
            ser.write(b"\x02")  # Ctrl-B: the friendly REPL prints its banner
            seen = _read_until(ser, b">>> ")
        assert banner.encode() + b"\r\n" in seen
    finally:
        rmbench("vboard", "stop", name, "--state-dir", str(state))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--board", "esp32h2"],
            "MicroPython v1.28.0 has no firmware for esp32h2 (ESP32_GENERIC_H2): no MicroPython "
            "release has one yet; the preview is the first",
        ),
        (
            ["--board", "esp32c6", "--firmware", "1.23"],
            "MicroPython v1.23.0 has no firmware for esp32c6 (ESP32_GENERIC_C6): the first "
            "release with one is v1.24.1",
        ),
        (
            ["--board", "esp32s3", "--firmware", "2.0"],
            "unknown MicroPython release '2.0'; known: 1.22, 1.23, 1.24, 1.25, 1.26, 1.27, "
            "1.28, preview",
        ),
    ],
)
def test_a_firmware_without_the_board_is_refused(
    state: Path, args: list[str], message: str
) -> None:
    out = rmbench("vboard", "start", *args, "--state-dir", str(state), check=False)
    assert out.returncode == 1
    assert message in out.stderr
