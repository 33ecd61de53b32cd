"""Apply each mutation of mutants.catalog to a scratch copy of the repository and run the tests
that should catch it; print caught / not caught. `make mutants` calls this.

    python -m mutants [--runs N] [--no-baseline] [--list] [NAME ...]

The scratch copy is build/mutants/repo/ (the working tree's tracked and unignored files, remade
on every run); the repository itself is never changed. Tests run with the .venv interpreter and
PYTHONPATH pointing into the copy, so the local service and virtual boards the tests start run
the mutated code too. First the tests of the chosen mutations run unmutated: a mutation only
counts as caught by tests that pass without it.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from mutants.catalog import MUTATIONS, Mutation

ROOT = Path(__file__).resolve().parents[2]
SCRATCH = ROOT / "build" / "mutants" / "repo"
TIMEOUT_S = 1800.0
# Reused, not rebuilt in the copy: esp-rainmaker-cli's venv takes minutes and 600 MB to make.
SHARED_BUILD = ("rainmaker-cli-venv",)


@dataclass(frozen=True)
class Outcome:
    verdict: str  # caught, NOT CAUGHT, skipped, stale, error
    detail: str
    seconds: float


def _tracked_files() -> list[str]:
    out = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    return [p for p in out.split("\0") if p and not p.startswith("build/")]


class Scratch:
    """build/mutants/repo: a copy of the working tree that can be put back after each mutation."""

    def __init__(self) -> None:
        self.files = _tracked_files()
        if SCRATCH.exists():
            shutil.rmtree(SCRATCH)
        for rel in self.files:
            if (ROOT / rel).is_file():
                (SCRATCH / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(ROOT / rel, SCRATCH / rel)
        for name in SHARED_BUILD:
            if (ROOT / "build" / name).is_dir():
                (SCRATCH / "build").mkdir(parents=True, exist_ok=True)
                (SCRATCH / "build" / name).symlink_to(ROOT / "build" / name)
        self.stamps = {rel: self._stamp(rel) for rel in self.files}

    @staticmethod
    def _stamp(rel: str) -> tuple[int, int] | None:
        path = SCRATCH / rel
        if not path.is_file():
            return None
        st = path.stat()
        return st.st_size, st.st_mtime_ns

    def restore(self) -> None:
        # Put back every file a mutation or a test (a regenerated golden file) changed.
        for rel, stamp in self.stamps.items():
            if stamp is not None and self._stamp(rel) != stamp:
                shutil.copy2(ROOT / rel, SCRATCH / rel)
                self.stamps[rel] = self._stamp(rel)

    def apply(self, mutation: Mutation) -> str | None:
        """Apply the edits; the reason when one cannot be (its text is not there once)."""
        for edit in mutation.edits:
            path = SCRATCH / edit.path
            text = path.read_text() if path.is_file() else ""
            found = text.count(edit.old)
            if found != 1:
                return f"{edit.path}: the text to replace occurs {found} times"
            path.write_text(text.replace(edit.old, edit.new))
        return None


def _pytest(args: tuple[str, ...], env: dict[str, str]) -> tuple[int, str, float]:
    full_env = dict(os.environ)
    full_env.update(env)
    full_env["COLUMNS"] = "200"  # room for the failure reason in pytest's summary lines
    # The copy's packages first: also for the subprocesses tests start (rmbench serve, vboards).
    paths = [str(SCRATCH / "tools"), str(SCRATCH / "host_tests")]
    full_env["PYTHONPATH"] = os.pathsep.join([*paths, full_env.get("PYTHONPATH", "")]).rstrip(
        os.pathsep
    )
    argv = [sys.executable, "-m", "pytest", *args, "-q", "-rfEs", "-p", "no:cacheprovider"]
    started = time.monotonic()
    try:
        proc = subprocess.run(
            argv,
            cwd=SCRATCH,
            env=full_env,
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return -1, f"timed out after {TIMEOUT_S:g} s", time.monotonic() - started
    return proc.returncode, proc.stdout + proc.stderr, time.monotonic() - started


def _summary(output: str) -> str:
    # The first failing test and why, then the others that failed; or pytest's closing line.
    failed = [x for x in output.splitlines() if x.startswith(("FAILED ", "ERROR "))]
    if failed:
        others = [x.split(" ", 1)[1].split(" - ", 1)[0] for x in failed[1:]]
        more = f"\n    also: {', '.join(others)}" if others else ""
        return failed[0][:240] + more
    lines = [x for x in output.splitlines() if re.search(r"\d+ (passed|failed|skipped)", x)]
    return lines[-1].strip("= ") if lines else output.strip()[-200:]


def run_mutation(scratch: Scratch, mutation: Mutation) -> Outcome:
    scratch.restore()
    problem = scratch.apply(mutation)
    if problem is not None:
        return Outcome("stale", problem, 0.0)
    try:
        code, output, seconds = _pytest(mutation.tests, mutation.env)
    finally:
        scratch.restore()
    if code == 1:
        return Outcome("caught", _summary(output), seconds)
    if code == 0:
        skipped = re.search(r"\d+ skipped", output) and not re.search(r"\d+ passed", output)
        return Outcome("skipped" if skipped else "NOT CAUGHT", _summary(output), seconds)
    return Outcome("error", f"pytest exit {code}: {_summary(output)}", seconds)


def _as_expected(mutation: Mutation, outcome: Outcome) -> bool:
    if mutation.expect == "later":
        return outcome.verdict in ("caught", "NOT CAUGHT")
    return outcome.verdict == mutation.expect


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="mutants", description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="mutations to try (default: all)")
    parser.add_argument("--runs", type=int, default=1, help="try each mutation N times")
    parser.add_argument("--no-baseline", action="store_true", help="skip the unmutated run")
    parser.add_argument("--list", action="store_true", help="list the mutations and exit")
    args = parser.parse_args(argv)
    known = {m.name: m for m in MUTATIONS}
    unknown = [n for n in args.names if n not in known]
    if unknown:
        print(f"mutants: unknown: {', '.join(unknown)}; known: {', '.join(known)}")
        return 1
    chosen = [known[n] for n in args.names] if args.names else list(MUTATIONS)
    if args.list:
        for m in chosen:
            print(f"{m.name:32} {m.expect:8} {m.what}")
        return 0
    scratch = Scratch()
    if not args.no_baseline:
        # The tests without any mutation, whole files (update-mode ones apart: they skip).
        tests = _paths_only([t for m in chosen if not m.env for t in m.tests])
        print(f"baseline: {len(tests)} test arguments, unmutated ...", flush=True)
        code, output, seconds = _pytest(tuple(tests), {})
        scratch.restore()
        print(f"baseline: {_summary(output)} ({seconds:.0f} s)", flush=True)
        if code != 0:
            print("mutants: the tests fail without any mutation; fix that first")
            return 2
    unexpected = 0
    for m in chosen:
        for run in range(1, args.runs + 1):
            outcome = run_mutation(scratch, m)
            tag = f" run {run}/{args.runs}" if args.runs > 1 else ""
            mark = "" if _as_expected(m, outcome) else "  <-- expected " + m.expect
            note = f" [{m.note}]" if m.note and outcome.verdict != "caught" else ""
            print(
                f"{m.name}{tag}: {outcome.verdict} ({outcome.seconds:.0f} s){mark}{note}\n"
                f"    {outcome.detail}",
                flush=True,
            )
            unexpected += not _as_expected(m, outcome)
    return 1 if unexpected else 0


def _paths_only(tests: list[str]) -> list[str]:
    # The files the arguments name, once each, without node ids or -k filters.
    out: list[str] = []
    after_k = False
    for t in tests:
        if not after_k and t != "-k":
            path = t.split("::", 1)[0]
            if path not in out:
                out.append(path)
        after_k = t == "-k"
    return out


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
