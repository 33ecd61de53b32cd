"""Helper processes of the bench (the local claiming service, the bench MQTT broker), started by
tests, benchmarks and demos: a Python process that prints where it listens on its stdout, and
its orderly stop."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from rmbench.errors import BenchError

START_TIMEOUT = 30.0
STOP_GRACE = 10.0


@dataclass
class Started:
    """A started helper: the process, its log (stderr, appended) and the thread that keeps
    reading its stdout so the pipe never fills."""

    process: subprocess.Popen[bytes]
    log: IO[bytes]
    pump: threading.Thread


def start(
    argv: Sequence[str],
    log_path: Path,
    *,
    what: str,
    ready: Callable[[str], bool],
    error: type[BenchError],
) -> Started:
    """Run argv, its stderr appended to log_path, and return once `ready` was true for a line
    it printed (`ready` sees each stdout line, stripped, and keeps what it needs).

    Raises:
        error: the process exited first (the log's tail quoted), or START_TIMEOUT passed; the
            process is stopped then.
    """
    log = log_path.open("ab")
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    process = subprocess.Popen(
        list(argv), stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL, env=env
    )
    lines: queue.Queue[str | None] = queue.Queue()
    stdout = process.stdout

    def pump() -> None:
        for raw in stdout or ():
            lines.put(raw.decode(errors="replace").strip())
        lines.put(None)

    pump_thread = threading.Thread(target=pump, name=f"{what} stdout", daemon=True)
    pump_thread.start()
    deadline = time.monotonic() + START_TIMEOUT
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise error(f"{what} said where it listens not within {START_TIMEOUT:g} s")
            try:
                line = lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                process.wait()
                raise error(
                    f"{what} exited with status {process.returncode}: "
                    + log_path.read_text(errors="replace")[-2000:]
                )
            if ready(line):
                return Started(process, log, pump_thread)
    except BaseException:
        stop(process, pump_thread)
        log.close()
        raise


def stop(
    process: subprocess.Popen[bytes],
    pump: threading.Thread | None,
    sig: signal.Signals = signal.SIGTERM,
) -> None:
    """Stop a helper with `sig` (SIGKILL after STOP_GRACE) and collect its stdout thread;
    idempotent."""
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(STOP_GRACE)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    if pump is not None:
        pump.join(STOP_GRACE)  # it ends at EOF, now that the process is gone
    if process.stdout is not None:
        process.stdout.close()
