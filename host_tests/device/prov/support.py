"""Provisioning test helpers: long-running peers spoken to in JSON lines, and their scripts.

A peer is a process that answers one JSON object per line: the device side (lib/rmprov on the
MicroPython Unix port, or on CPython) or the client side (esp-rainmaker-cli's own code in its
venv). Tests relay messages between them, so every byte one side sends is checked by the
other side's implementation. Bytes travel as {"$hex": "..."} inside JSON.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rmbench import LIB_DIR
from rmbench.micropython import HOSTSHIMS_DIR, Interpreter

HERE = Path(__file__).parent


def to_json(value: Any) -> Any:
    """value with every bytes object as {"$hex": ...} (recursively)."""
    if isinstance(value, bytes | bytearray):
        return {"$hex": bytes(value).hex()}
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    return value


def from_json(value: Any) -> Any:
    """The inverse of to_json."""
    if isinstance(value, dict):
        if set(value) == {"$hex"}:
            return bytes.fromhex(value["$hex"])
        return {k: from_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [from_json(v) for v in value]
    return value


class PeerError(AssertionError):
    """The peer process died or answered something that is not JSON."""


class Peer:
    """A process answering one JSON line per JSON line it reads."""

    def __init__(self, argv: Sequence[str], env: dict[str, str], name: str) -> None:
        self.name = name
        self._stderr = tempfile.TemporaryFile("w+")  # noqa: SIM115 (closed by close())
        self.proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env=env,
            text=True,
            encoding="utf-8",
            bufsize=1,
        )

    def call(self, op: str, **args: Any) -> Any:
        """Send {"op": op, **args}; the peer's answer (bytes decoded back). Text goes as UTF-8,
        not JSON escapes: MicroPython's json does not join escaped surrogate pairs."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        try:
            line = json.dumps(to_json({"op": op, **args}), ensure_ascii=False)
            self.proc.stdin.write(line + "\n")
            self.proc.stdin.flush()
        except BrokenPipeError as e:
            raise PeerError(f"{self.name} is gone: {self.output()}") from e
        answer = self.proc.stdout.readline()
        try:
            return from_json(json.loads(answer))
        except json.JSONDecodeError as e:
            raise PeerError(f"{self.name} said {answer!r}: {self.output()}") from e

    def output(self) -> str:
        """What a dead (or dying) peer left on stdout and stderr."""
        assert self.proc.stdout is not None
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        rest = self.proc.stdout.read()[-4000:]
        return (
            f"exit {self.proc.returncode}\n--- stdout ---\n{rest}\n--- stderr ---\n{self.stderr()}"
        )

    def stderr(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read()[-4000:]

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._stderr.close()


def device_peer(
    interp: Interpreter, script: str, prov_lib: Path, work: Path, heap: str = "64K"
) -> Peer:
    """`script` (PRELUDE prepended) as a peer on `interp`: MicroPython runs the deployed .mpy
    library from prov_lib at `heap`, CPython the source with the host shims."""
    path = work / f"peer-{interp.name}.py"
    path.write_text(PRELUDE + script)
    env = dict(os.environ, PYTHONIOENCODING="utf-8")
    if interp.name == "micropython":
        env["MICROPYPATH"] = f"{prov_lib}:{LIB_DIR}"
        argv = [*interp.argv, "-X", f"heapsize={heap}", str(path)]
    else:
        env["PYTHONPATH"] = os.pathsep.join([str(LIB_DIR), str(HOSTSHIMS_DIR)])
        argv = [*interp.argv, str(path)]
    return Peer(argv, env, f"device ({interp.name})")


def client_peer(cli_python: Path) -> Peer:
    """client_peer.py in esp-rainmaker-cli's venv: its Security0/1 and protobuf classes."""
    env = dict(os.environ, PYTHONIOENCODING="utf-8")
    env.pop("PYTHONPATH", None)
    return Peer([str(cli_python), str(HERE / "client_peer.py")], env, "client (cli venv)")


def run_json(
    interp: Interpreter, script: str, items: list[Any], prov_lib: Path, heap: str = "64K"
) -> list[Any]:
    """Run PRELUDE + script once with one JSON item per stdin line; the JSON lines it printed.
    MicroPython runs the deployed library at `heap`."""
    # Unicode as UTF-8, not escapes: MicroPython's json does not join escaped surrogate pairs.
    stdin = "".join(json.dumps(to_json(item), ensure_ascii=False) + "\n" for item in items)
    path = [prov_lib] if interp.name == "micropython" else []
    out = interp.run(PRELUDE + script, stdin=stdin, heap=heap, path=path)
    return [from_json(json.loads(line)) for line in out.strip().splitlines()]


# Device-side scripts start with this: bytes <-> {"$hex"}, one JSON answer per input line.
# On CPython (no cryptolib) and wherever a test asks for it, `cryptolib` is a stand-in that
# offers AES in ECB mode only (mode 1, no IV, encrypt only) and records every mode asked for.
PRELUDE = """
import sys, json
MODES = []
def _real_ecb():
    try:
        import cryptolib
        return lambda key: cryptolib.aes(key, 1).encrypt
    except ImportError:
        from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
        def make(key):
            enc = Cipher(algorithms.AES(bytes(key)), modes.ECB()).encryptor()
            def encrypt(data, out=None):
                res = enc.update(bytes(data))
                if out is None:
                    return res
                out[:len(res)] = res
            return encrypt
        return make
def install_ecb_only():
    if "cryptolib" in sys.modules:
        return  # installed already
    make = _real_ecb()
    class AESECBOnly:
        def __init__(self, key, mode, *args):
            MODES.append(mode)
            if mode != 1 or args:
                raise ValueError("stand-in cryptolib: only ECB (mode 1), no IV")
            self.encrypt = make(key)
    class Module:
        pass
    mod = Module()
    mod.aes = AESECBOnly
    sys.modules["cryptolib"] = mod
if sys.implementation.name != "micropython":
    install_ecb_only()
def unhex(v):
    if isinstance(v, dict):
        if len(v) == 1 and "$hex" in v:
            return bytes.fromhex(v["$hex"])
        return {k: unhex(x) for k, x in v.items()}
    if isinstance(v, list):
        return [unhex(x) for x in v]
    return v
def tohex(v):
    if isinstance(v, (bytes, bytearray)):
        return {"$hex": bytes(v).hex()}
    if isinstance(v, dict):
        return {k: tohex(x) for k, x in v.items()}
    if isinstance(v, list):
        return [tohex(x) for x in v]
    return v
def answer(v):
    sys.stdout.write(json.dumps(tohex(v)) + "\\n")
    if hasattr(sys.stdout, "flush"):
        sys.stdout.flush()
def failure(e):
    return {"error": type(e).__name__, "message": str(e)}
def serve(handlers):
    while True:
        line = sys.stdin.readline()
        if not line:
            break
        req = unhex(json.loads(line))
        try:
            answer(handlers[req.pop("op")](**req))
        except Exception as e:
            answer(failure(e))
"""


# How a test stops a device script that serves until told: a line on its stdin, which the
# script polls between steps (STOP_CHECK). Not SIGINT: the Unix port raises KeyboardInterrupt
# from its signal handler at any instruction, which can leave a lock held or a frame garbled,
# and the script's final report would be lost.
STOP_CHECK = """
import select as _select
_stop_poll = _select.poll()
_stop_poll.register(sys.stdin, _select.POLLIN)
def stop_asked():
    return bool(_stop_poll.poll(0))
"""


def ask_stop(proc: subprocess.Popen[str]) -> None:
    """Tell a device script that polls STOP_CHECK's stop_asked() to finish (no-op once gone)."""
    if proc.poll() is None and proc.stdin is not None:
        try:
            proc.stdin.write("stop\n")
            proc.stdin.flush()
        except (BrokenPipeError, OSError):
            pass
