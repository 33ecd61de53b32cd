"""The virtual board's supervisor: one background process per board, a pty to the outside.

It owns the serial side (a pseudo-terminal whose /dev/pts/N path stock mpremote opens) and runs
the board: the MicroPython Unix port on a pty of its own, started through the boot shim
tools/boardsim/_vboot.py, with the board doubles of tools/boardsim first on its path. It
restarts the interpreter the way a board restarts:

- power-on and machine.reset(): boot.py then main.py, friendly REPL;
- soft reset (Ctrl-D on an empty REPL line; the Unix port exits there): "MPY: soft reboot",
  then boot.py and, from the friendly REPL only, main.py; a raw-REPL soft reset comes back in
  the raw REPL, as mpremote expects;
- a power cut (`_boardsim.power_cut()`, RMBENCH_POWER_CUT, or `power-cycle` from the host): the
  interpreter is killed (NVS keeps every write that finished: it writes through); a cut the
  board itself caused leaves it off until the next `power-on`/`power-cycle`.

Ctrl-C from the serial side becomes SIGINT while the board runs code (the Unix port reads no
input then, a board's UART interrupt does the same job) and stays a byte at a prompt.

Run as `python -m rmbench.vboard.supervisor BOARD_DIR --heap 128K`; rmbench.vboard starts it.
Control: a Unix socket (one JSON request per connection, one JSON reply), see `_handle`.
State: BOARD_DIR/vboard.json, rewritten on every change; console output: BOARD_DIR/console.log.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import errno
import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import termios
import time
from pathlib import Path
from typing import Any

from rmbench.boardsim import SIM_DIR, open_board
from rmbench.micropython import board_micropython, compile_package, host_heap, word_bits
from rmbench.releases import get_release
from rmbench.vboard.relay import RAW_BANNER, OutputFilter

STATE_FILE = "vboard.json"
CONSOLE_LOG = "console.log"
SOCKET_FILE = "ctl.sock"
FS_DIR = "fs"
RESET_MARKER = "reset-requested"
SIM_BUILD = "sim"  # the board doubles, compiled, in the board's directory
LAUNCHER = "_vboot_launch.py"

_HOST_QUEUE_MAX = 64 * 1024  # stop reading the board while the host lags (flow control)
_CONSOLE_MAX = 8 * 1024 * 1024
# Ctrl-Cs closer together than this reach one interpreter as one SIGINT (a second one while
# it prints the first's traceback would only interrupt that); a new interpreter gets its own.
_SIGINT_GAP_S = 0.05
_PENDING_MAX = 4096
_SIGINT_REPLAY_S = 2.0
# An interpreter silent this long after a SIGINT is stuck (see _watch); a sound one prints the
# KeyboardInterrupt's traceback within milliseconds.
_SIGINT_HANG_S = 1.5
_PR_SET_PDEATHSIG = 1
# What the ESP32-S3 ROM prints on each kind of reset (the rest of its boot log is left out).
_RST_POWERON = b"rst:0x1 (POWERON),boot:0x8 (SPI_FAST_FLASH_BOOT)\r\n"
# The Unix port's REPL banner, replaced by the one the board's release prints
# ("MicroPython v1.28.0 on 2026-04-06; Generic ESP32S3 module with ESP32S3").
_BANNER = re.compile(rb"MicroPython [^\r\n;]*; linux \[[^\]\r\n]*\] version")
# What the Unix port prints when an exception escapes every handler (py/nlr.c nlr_jump_fail).
_FATAL = b"FATAL: uncaught NLR"
_RST_SOFTWARE = b"rst:0xc (RTC_SW_CPU_RST),boot:0x8 (SPI_FAST_FLASH_BOOT)\r\n"


def control_address(board_dir: Path) -> str:
    """The control socket of the board in `board_dir` (abstract if the path is too long)."""
    path = str(board_dir.resolve() / SOCKET_FILE)
    if len(path) < 100:
        return path
    import hashlib

    return "\0rmbench-vboard-" + hashlib.sha256(path.encode()).hexdigest()[:24]


def build_sim(target: Path) -> Path:
    """Compile tools/boardsim into `target` with mpy-cross (a board's builtins cost it no
    compile heap) and write the launcher; returns `target`."""
    compile_package(SIM_DIR, target)
    (target / LAUNCHER).write_text("import _vboot\n_vboot.start(globals())\ndel _vboot\n")
    return target


def _make_raw(fd: int) -> None:
    # Binary-clean both ways: no echo, no line editing, no signals, no output processing.
    attrs = termios.tcgetattr(fd)
    attrs[0] = 0
    attrs[1] = 0
    attrs[2] = (attrs[2] & ~(termios.CSIZE | termios.PARENB)) | termios.CS8 | termios.CREAD
    attrs[3] = 0
    attrs[6][termios.VMIN] = 1
    attrs[6][termios.VTIME] = 0
    termios.tcsetattr(fd, termios.TCSANOW, attrs)


def _die_with_parent() -> None:
    # Runs in the child between fork and exec: if the supervisor dies, so does the board.
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def _sigint_caught(pid: int) -> bool:
    # The Unix port installs its SIGINT handler only while it executes code; at a prompt (or
    # with micropython.kbd_intr(-1)) SIGINT would kill it, so there Ctrl-C stays a byte.
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("SigCgt:"):
                    return bool(int(line.split()[1], 16) & (1 << (signal.SIGINT - 1)))
    except OSError:
        return False
    return False


class Supervisor:
    """Runs one virtual board until told to stop."""

    def __init__(self, board_dir: Path, heap: str) -> None:
        self.dir = board_dir.resolve()
        self.sim = open_board(self.dir)
        machine = self.sim.profile.machine_for(self.sim.firmware)
        self.banner = get_release(self.sim.firmware).banner(machine).encode()
        self.heap = heap
        # The board runs on $MICROPYTHON32 when set: then with the board's own heap figure;
        # a 64-bit port gets it scaled (rmbench.micropython.host_heap).
        self.interpreter = str(board_micropython())
        self.bits = word_bits((self.interpreter,))
        self.host_heap = host_heap(heap, self.bits)
        self.fs_dir = self.dir / FS_DIR
        self.fs_dir.mkdir(exist_ok=True)
        self.sim_dir = build_sim(self.dir / SIM_BUILD)
        self.filter = OutputFilter()
        self.banner_carry = b""
        self.pending_input = b""
        self.after_sigint = bytearray()
        self.host_fd = -1
        self.pty_path = ""
        self.host_queue = bytearray()
        self.connected = False
        self.proc: subprocess.Popen[bytes] | None = None
        self.child_fd = -1
        self.phase = "off"  # off | boot | main | repl
        self.mode = "full"
        self.suppress_until_raw = False
        self.swallow_banner = False
        self.boots = 0
        self.last_reset = ""
        self.power_cut_by_board = False
        self.last_sigint = 0.0
        self.sigint_pid = 0  # the interpreter the last SIGINT went to
        self.sigint_unanswered = False  # nothing printed since that SIGINT
        self.hung = False  # killed by _watch: a deadlock, not a reset
        self.fatal = False  # the interpreter printed a fatal error (see _child_exited)
        self.running = True
        self.console = (self.dir / CONSOLE_LOG).open("ab", buffering=0)
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.wake_r, self.wake_w = os.pipe()

    # --- lifecycle -------------------------------------------------------------------------

    def run(self) -> int:
        self._open_serial()
        address = control_address(self.dir)
        if not address.startswith("\0"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(address)
        self.listener.bind(address)
        self.listener.listen(8)
        for fd in (self.wake_r, self.wake_w):
            os.set_blocking(fd, False)
        signal.set_wakeup_fd(self.wake_w)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, self._on_signal)
        signal.signal(signal.SIGCHLD, lambda *_: None)  # wakes the loop through the wakeup fd
        self._power_on("poweron")
        try:
            while self.running:
                self._step()
        finally:
            self._kill_child()
            self.listener.close()
            if not address.startswith("\0"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(address)
            with contextlib.suppress(FileNotFoundError):
                (self.dir / STATE_FILE).unlink()
            os.close(self.host_fd)
        return 0

    def _on_signal(self, signum: int, frame: Any) -> None:
        del signum, frame
        self.running = False

    def _open_serial(self) -> None:
        master, slave = os.openpty()
        _make_raw(slave)
        self.pty_path = os.ttyname(slave)
        # No one holds the serial side open when no client is connected: the master then reads
        # POLLHUP, and output is dropped as a UART's would be with nothing listening.
        os.close(slave)
        os.set_blocking(master, False)
        self.host_fd = master

    def _write_state(self, state: str) -> None:
        data = {
            "name": self.sim.name,
            "board": self.sim.profile.name,
            "pty": self.pty_path,
            "pid": os.getpid(),
            "heap": self.heap,
            "host_heap": self.host_heap,
            "interpreter": self.interpreter,
            "word_bits": self.bits,
            "state": state,
            "phase": self.phase,
            "boots": self.boots,
            "last_reset": self.last_reset,
            "board_pid": self.proc.pid if self.proc else None,
            "mac": self.sim.mac,
            "firmware": self.sim.firmware,
            "softap": self.sim.softap,
        }
        path = self.dir / STATE_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2) + "\n")
        tmp.replace(path)

    def _state(self) -> str:
        return "on" if self.proc is not None else "off"

    # --- the board process -----------------------------------------------------------------

    def _spawn(self, mode: str) -> None:
        master, slave = os.openpty()
        _make_raw(slave)
        env = dict(os.environ)
        env.update(self.sim.env())
        env.update(
            {
                "MICROPYPATH": str(self.sim_dir),
                "RMBENCH_VBOARD_FS": str(self.fs_dir),
                "RMBENCH_VBOARD_SIM": str(self.sim_dir),
            }
        )
        env.pop("RMBENCH_POWER_CUT", None)
        if self.power_cut:
            env["RMBENCH_POWER_CUT"] = self.power_cut
        launcher = str(self.sim_dir / LAUNCHER)
        argv = [self.interpreter, "-X", f"heapsize={self.host_heap}", "-i", launcher]
        argv.append(mode)
        self.proc = subprocess.Popen(
            argv,
            stdin=slave,
            stdout=slave,
            stderr=slave,
            cwd=self.fs_dir,
            env=env,
            start_new_session=True,
            preexec_fn=_die_with_parent,  # safe: the supervisor has a single thread
        )
        os.close(slave)
        os.set_blocking(master, False)
        self.child_fd = master
        self.mode = mode
        self.phase = "boot"
        self.suppress_until_raw = False
        self.swallow_banner = False
        self.pending_input = b""
        self.after_sigint = bytearray()
        self.filter.reset()
        self.fatal = False
        self.sigint_unanswered = False
        self.hung = False
        self.banner_carry = b""
        self.boots += 1
        self._write_state("on")

    def _power_on(self, cause: str, power_cut: str | None = None) -> None:
        if cause == "poweron":
            self._to_host(_RST_POWERON)
        with contextlib.suppress(FileNotFoundError):
            (self.dir / RESET_MARKER).unlink()
        self.last_reset = cause
        self.power_cut_by_board = False
        self.power_cut = power_cut
        self._spawn("full")

    def _kill_child(self) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()
        self.proc.wait()
        self._drain_child()
        self._close_child()

    def _close_child(self) -> None:
        if self.child_fd >= 0:
            os.close(self.child_fd)
        self.child_fd = -1
        self.proc = None
        self.phase = "off"

    def _drain_child(self) -> None:
        while self.child_fd >= 0:
            try:
                data = os.read(self.child_fd, 4096)
            except OSError:
                return
            if not data:
                return
            self._from_board(data)

    def _child_exited(self, proc: subprocess.Popen[bytes]) -> None:
        raw = self.filter.state.raw_repl
        code = proc.wait()
        self._close_child()
        if code == -signal.SIGKILL and not self.hung:
            if (self.dir / RESET_MARKER).exists():
                self._to_host(_RST_SOFTWARE)
                self._power_on("hard", self.power_cut)
            else:
                # The board cut its own power (a power-cut test): it stays off.
                self.power_cut_by_board = True
                self.power_cut = None
                self.last_reset = "power-cut"
                self._write_state("off")
            return
        after_ctrl_c = time.monotonic() - self.last_sigint < _SIGINT_REPLAY_S
        if self.hung or code == -signal.SIGINT or (after_ctrl_c and (code < 0 or self.fatal)):
            # A Ctrl-C sent as SIGINT while code ran either landed just after it finished, when
            # the Unix port no longer handles it (-SIGINT), or was raised by the Unix port's
            # handler inside a garbage collection (it raises at once, MICROPY_ASYNC_KBD_INTR)
            # and broke the interpreter beyond the boot shim's repair: a fatal error, a crash,
            # or a hang (see _watch).
            # On a board that Ctrl-C only stops the program (the UART schedules it) and leaves
            # the prompt: bring the REPL back as it was, without boot.py or main.py, and give
            # it the input the dead one had no time to read.
            replay = bytes(self.after_sigint)
            if code != -signal.SIGINT and not raw:
                self._to_host(b"KeyboardInterrupt: \r\n")  # what the board would have printed
            self._spawn("repl-raw" if raw else "repl")
            self.pending_input = replay
            return
        if code < 0:
            self._to_host(f"\r\nrmbench vboard: interpreter died (signal {-code})\r\n".encode())
            self._power_on("crash", self.power_cut)
            return
        # The REPL ended (Ctrl-D on an empty line, sys.exit()): a soft reset.
        self._to_host(b"MPY: soft reboot\r\n")
        self.last_reset = "soft"
        self._spawn("raw" if raw else "full")

    # --- the event loop --------------------------------------------------------------------

    def _step(self) -> None:
        poller = select.poll()
        host_events = select.POLLIN
        if self.host_queue:
            host_events |= select.POLLOUT
        poller.register(self.host_fd, host_events)
        if self.child_fd >= 0 and len(self.host_queue) < _HOST_QUEUE_MAX:
            poller.register(self.child_fd, select.POLLIN)
        poller.register(self.listener.fileno(), select.POLLIN)
        poller.register(self.wake_r, select.POLLIN)
        # With no client, the master reports POLLHUP at once: look again every 50 ms. After a
        # SIGINT, look every 100 ms whether the interpreter answered it (_watch).
        timeout = None if self.connected else 50
        if self.sigint_unanswered:
            timeout = 100 if timeout is None else min(timeout, 100)
        ready = poller.poll(timeout)
        hup = False
        for fd, ev in ready:
            if fd == self.host_fd:
                if ev & select.POLLHUP:
                    hup = True
                    continue
                if ev & select.POLLIN:
                    self._read_host()
                if ev & select.POLLOUT:
                    self._flush_host()
            elif fd == self.child_fd:
                self._read_child()
            elif fd == self.listener.fileno():
                self._accept()
            elif fd == self.wake_r:
                with contextlib.suppress(BlockingIOError):
                    os.read(self.wake_r, 512)
        if hup and self.connected:
            self.connected = False
            self.host_queue.clear()
        elif not hup and not self.connected and self._client_present():
            self.connected = True
        if self.proc is not None and self.child_fd >= 0 and self.proc.poll() is not None:
            self._drain_child()
            self._child_exited(self.proc)
        elif self.sigint_unanswered:
            self._watch()

    def _watch(self) -> None:
        # The Unix port's SIGINT handler raises KeyboardInterrupt at once, wherever the
        # interpreter is (MICROPY_ASYNC_KBD_INTR); raised inside an allocation it can leave the
        # allocator's lock held (py/gc.c GC_ENTER, or the C library's), and the next allocation
        # (the exception's traceback) waits on it forever; raised mid-instruction it can leave
        # the VM looping. A board's UART only schedules the interrupt. An interpreter that
        # printed nothing since (and is not just waiting for the host to read its output) is
        # killed; _child_exited brings the REPL back as that Ctrl-C would have left it.
        if self.proc is None or time.monotonic() - self.last_sigint < _SIGINT_HANG_S:
            return
        self.sigint_unanswered = False
        if len(self.host_queue) < _HOST_QUEUE_MAX:
            self.hung = True
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()

    def _client_present(self) -> bool:
        p = select.poll()
        p.register(self.host_fd, select.POLLIN)
        return not any(ev & select.POLLHUP for _, ev in p.poll(0))

    def _read_child(self) -> None:
        try:
            data = os.read(self.child_fd, 4096)
        except BlockingIOError:
            return
        except OSError as e:
            if e.errno != errno.EIO:
                raise
            data = b""
        if data:
            self._from_board(data)
            return
        # EOF: the interpreter is gone (or about to be); collect it.
        if self.proc is not None:
            self._child_exited(self.proc)

    def _from_board(self, data: bytes) -> None:
        self.sigint_unanswered = False
        out, events = self.filter.feed(data)
        if _FATAL in out:
            self.fatal = True
        out = self._banner(out)
        for event in events:
            self._on_marker(event)
        if self.suppress_until_raw:
            # A raw-REPL soft reset: hide the friendly banner the REPL prints on the way in.
            at = out.find(RAW_BANNER)
            if at < 0:
                return
            self.suppress_until_raw = False
            out = out[at:]
        if self.swallow_banner:
            # main.py called sys.exit(): the REPL is only passed through on the way to a reset.
            return
        self._to_host(out)

    def _banner(self, out: bytes) -> bytes:
        # Hold a banner line until it is whole, then name the board's machine in it.
        out = self.banner_carry + out
        self.banner_carry = b""
        at = out.rfind(b"MicroPython ")
        if at >= 0 and b"\n" not in out[at:] and len(out) - at < 200:
            out, self.banner_carry = out[:at], out[at:]
        if b"MicroPython " in out:
            out = _BANNER.sub(lambda m: self.banner, out)
        return out

    def _on_marker(self, event: str) -> None:
        if event == "ready":
            self.phase = "main"
            self._write_state("on")
            pending, self.pending_input = self.pending_input, b""
            self._deliver(pending)
        elif event == "repl":
            self.phase = "repl"
            self._write_state("on")
            if self.mode in ("raw", "repl-raw"):
                self.suppress_until_raw = True
                self._to_board(b"\x01")
        elif event == "softreset":
            self.swallow_banner = True
            self._to_board(b"\x04")

    def _to_host(self, data: bytes) -> None:
        if not data:
            return
        self.console.write(data)
        if self.console.tell() > _CONSOLE_MAX:
            self.console.close()
            log = self.dir / CONSOLE_LOG
            log.replace(log.with_suffix(".log.1"))
            self.console = log.open("ab", buffering=0)
        if self.connected:
            self.host_queue += data
            self._flush_host()

    def _flush_host(self) -> None:
        try:
            n = os.write(self.host_fd, self.host_queue)
        except BlockingIOError:
            return
        except OSError:
            self.connected = False
            self.host_queue.clear()
            return
        del self.host_queue[:n]

    def _to_board(self, data: bytes) -> None:
        if self.child_fd < 0:
            return
        with contextlib.suppress(OSError):
            os.write(self.child_fd, data)

    def _read_host(self) -> None:
        try:
            data = os.read(self.host_fd, 4096)
        except OSError:
            return
        if not self.connected:
            self.connected = True
        if self.proc is None:
            return  # powered off: input is lost
        if self.phase == "boot":
            # Still starting: held until the boot shim is up (bounded, like a UART FIFO), so
            # a client that connects at once is not lost.
            self.pending_input = (self.pending_input + data)[-_PENDING_MAX:]
            return
        self._deliver(data)

    def _deliver(self, data: bytes) -> None:
        if self.proc is None:
            return
        state = self.filter.state
        if state.binary:
            state.host_sent(data)
            self._send_host_bytes(data)
            return
        start = 0
        for i, b in enumerate(data):
            if b == 0x03 and _sigint_caught(self.proc.pid):
                self._send_host_bytes(data[start:i])
                start = i + 1
                now = time.monotonic()
                if self.proc.pid != self.sigint_pid or now - self.last_sigint > _SIGINT_GAP_S:
                    self.last_sigint = now
                    self.sigint_pid = self.proc.pid
                    self.sigint_unanswered = True
                    self.after_sigint = bytearray()
                    with contextlib.suppress(ProcessLookupError):
                        self.proc.send_signal(signal.SIGINT)
        self._send_host_bytes(data[start:])

    def _send_host_bytes(self, data: bytes) -> None:
        # Host input for the board; what follows a SIGINT is kept a moment, to be given again
        # to the next interpreter should that SIGINT kill this one (see _child_exited).
        if time.monotonic() - self.last_sigint < _SIGINT_REPLAY_S:
            self.after_sigint += data
        self._to_board(data)

    # --- control ---------------------------------------------------------------------------

    def _accept(self) -> None:
        conn, _ = self.listener.accept()
        with conn:
            conn.settimeout(2.0)
            try:
                request = json.loads(conn.makefile("rb").readline() or b"{}")
                reply = self._handle(request)
            except (OSError, ValueError) as e:
                reply = {"ok": False, "error": str(e)}
            with contextlib.suppress(OSError):
                conn.sendall(json.dumps(reply).encode() + b"\n")

    def _handle(self, request: dict[str, Any]) -> dict[str, Any]:
        # status | power-off | power-on [power_cut] | power-cycle [off_ms, power_cut] | stop
        cmd = request.get("cmd")
        power_cut = request.get("power_cut")
        if cmd == "status":
            pass
        elif cmd == "power-off":
            self._kill_child()
            self.last_reset = "power-off"
            self._write_state("off")
        elif cmd in ("power-on", "power-cycle"):
            if cmd == "power-cycle":
                self._kill_child()
                self._write_state("off")
                time.sleep(float(request.get("off_ms", 100)) / 1000)
            if self.proc is None:
                self._power_on("poweron", power_cut)
        elif cmd == "stop":
            self.running = False
        else:
            return {"ok": False, "error": f"unknown command {cmd!r}"}
        return {"ok": True, "state": self._state(), "phase": self.phase, "boots": self.boots}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rmbench.vboard.supervisor")
    parser.add_argument("board_dir", type=Path)
    parser.add_argument("--heap", default="128K", help="the board's GC heap (32-bit figure)")
    args = parser.parse_args(argv)
    return Supervisor(args.board_dir, args.heap).run()


if __name__ == "__main__":
    sys.exit(main())
