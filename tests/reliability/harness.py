"""Running one bad-input case and judging its outcome.

The contract every case checks (issue 12, "And keep it that way"):

* exit status 2;
* stderr is exactly one line and it starts with ``error:`` (warnings, log records and
  progress lines on stderr count as extra lines);
* no traceback: in-process, no exception escapes ``deepmimic.cli.main``; in a subprocess,
  'Traceback' is not on stderr;
* no leftover output: every path the command was told to write is absent afterwards, or
  unchanged if it existed before; no ``.*.tmp`` file is left anywhere under the roots.

In-process runs are guarded: a wall-clock limit (an exception raised from a timer signal)
and an address-space limit a few GiB above the current size, so a case that would
allocate absurd amounts or loop forever fails on its own instead of taking the machine down.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import resource
import signal
import subprocess
import time
import traceback
import tracemalloc
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
VENV_DEEPMIMIC = REPO / ".venv" / "bin" / "deepmimic"


class CaseTimeout(BaseException):
    """Raised from the timer signal when a case runs past its limit (BaseException: no reader swallows it)."""


@dataclass
class Outcome:
    """What one command did."""

    code: int | None  # exit status (None: an exception escaped main)
    stdout: str
    stderr: str
    seconds: float
    escaped: str | None = None  # the traceback of an exception that escaped main, if any
    traced_peak_mb: float | None = None  # peak Python-traced memory during the command (when traced)

    @property
    def error_line(self) -> str:
        lines = self.stderr.rstrip("\n").split("\n")
        return lines[-1] if lines else ""

    def describe(self) -> str:
        parts = [f"exit {self.code}", f"{self.seconds:.2f} s"]
        if self.escaped:
            text = self.escaped.rstrip()
            if len(text) > 4000:  # keep where it started and how it ended (a RecursionError repeats in between)
                text = text[:1500] + "\n    ...\n" + text[-2500:]
            parts.append("ESCAPED:\n" + text)
        parts.append("stderr:\n" + (self.stderr.rstrip()[-3000:] or "(empty)"))
        if self.stdout.strip():
            parts.append("stdout (tail):\n" + self.stdout.rstrip()[-800:])
        return "\n".join(parts)


Check = Callable[[Outcome], None]


@dataclass
class Spec:
    """One built case: the command line, what it was told to write, and extra checks."""

    argv: list[str]
    outputs: list[Path] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    seconds: float = 10.0  # wall-clock guard for the in-process run
    trace_memory: bool = False  # measure the peak of Python-traced allocations (decompression bombs)


# --------------------------------------------------------------------------- guards


def _address_space() -> int:
    with open("/proc/self/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


@contextlib.contextmanager
def guarded(seconds: float, headroom_bytes: int = 2 << 30) -> Iterator[None]:
    """Raise CaseTimeout after ``seconds``; cap the address space at its current size + headroom."""

    def on_alarm(signum: int, frame: object) -> None:
        raise CaseTimeout(f"case still running after {seconds:g} s")

    old_handler = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = _address_space() + headroom_bytes
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old_handler)


# --------------------------------------------------------------------------- running


def run_in_process(
    argv: Sequence[str],
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    seconds: float = 10.0,
    trace_memory: bool = False,
) -> Outcome:
    """``deepmimic.cli.main(argv)`` with stdout/stderr captured at the file-descriptor level.

    Python warnings that a real run would print (the default filters: not DeprecationWarning)
    and log records of level WARNING or above are appended to stderr, as they would appear
    in a terminal.
    """
    from deepmimic.cli import main

    capfd.readouterr()  # drop anything printed before
    caplog.clear()
    code: int | None = None
    escaped: str | None = None
    peak: float | None = None
    if trace_memory:
        tracemalloc.start()
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.resetwarnings()
        warnings.simplefilter("default")
        for quiet in (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning):
            warnings.simplefilter("ignore", quiet)
        with caplog.at_level(logging.WARNING):
            try:
                with guarded(seconds):
                    result = main(list(argv))
                code = result if isinstance(result, int) else None
                if code is None:
                    escaped = f"main returned {result!r}, not an int"
            except SystemExit as exc:  # argparse, or code calling sys.exit: not how main reports errors
                escaped = f"SystemExit({exc.code!r}) escaped main\n" + traceback.format_exc()
            except BaseException as exc:  # noqa: BLE001 - any escape is the finding
                if isinstance(exc, KeyboardInterrupt):
                    raise
                escaped = traceback.format_exc()
            finally:
                if trace_memory:
                    peak = tracemalloc.get_traced_memory()[1] / 2**20
                    tracemalloc.stop()
    elapsed = time.perf_counter() - start
    captured = capfd.readouterr()
    stderr = captured.err
    for warning in caught:
        stderr += warnings.formatwarning(warning.message, warning.category, warning.filename, warning.lineno, None)
    for record in caplog.records:
        if record.levelno >= logging.WARNING:
            stderr += f"{record.levelname}:{record.name}:{record.getMessage()}\n"
    return Outcome(code, captured.out, stderr, elapsed, escaped, peak)


def subprocess_env() -> dict[str, str]:
    """The environment of a real command: no torchrun variables, no tokens, tests' warnings filters off."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k
        not in {
            "RANK",
            "WORLD_SIZE",
            "LOCAL_RANK",
            "LOCAL_WORLD_SIZE",
            "MASTER_ADDR",
            "MASTER_PORT",
            "TORCHELASTIC_RUN_ID",
            "DEEPMIMIC_TEACHER_TOKEN",
            "DEEPMIMIC_SERVE_TOKEN",
            "PYTHONWARNINGS",
        }
    }
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _limit_address_space(limit: int) -> Callable[[], None]:
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, resource.getrlimit(resource.RLIMIT_AS)[1]))

    return apply


def run_subprocess(
    command: Sequence[str], cwd: Path, seconds: float = 60.0, address_space: int | None = None
) -> Outcome:
    """A real process (``.venv/bin/deepmimic ...`` or ``python -m deepmimic ...``), killed after ``seconds``.

    ``address_space``: a cap (bytes) on the child's address space, for cases that would allocate absurd amounts.
    """
    start = time.perf_counter()
    limit = _limit_address_space(address_space) if address_space else None
    try:
        proc = subprocess.run(
            list(command),
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=seconds,
            env=subprocess_env(),
            preexec_fn=limit,
        )
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        err = exc.stderr.decode() if isinstance(exc.stderr, bytes) else (exc.stderr or "")
        return Outcome(None, out, err, time.perf_counter() - start, f"still running after {seconds:g} s (killed)")
    escaped = "a traceback on stderr" if "Traceback" in proc.stderr else None
    return Outcome(proc.returncode, proc.stdout, proc.stderr, time.perf_counter() - start, escaped)


# --------------------------------------------------------------------------- judging


def snapshot(path: Path) -> object:
    """A comparable picture of ``path``: None when absent, else kinds, sizes and content hashes of
    everything under it."""
    if not os.path.lexists(path):
        return None
    if path.is_symlink():
        return ("link", os.readlink(path))
    if path.is_file():
        return ("file", hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mode)
    if path.is_dir():
        entries = []
        for sub in sorted(path.rglob("*")):
            rel = sub.relative_to(path).as_posix()
            if sub.is_file() and not sub.is_symlink():
                entries.append((rel, "file", hashlib.sha256(sub.read_bytes()).hexdigest()))
            else:
                entries.append((rel, "dir" if sub.is_dir() else "other"))
        return ("dir", tuple(entries))
    return ("other",)


def temp_leftovers(roots: Sequence[Path]) -> list[str]:
    """``.*.tmp`` files (atomic-write temporaries) anywhere under ``roots``."""
    found: list[str] = []
    for root in roots:
        if root.is_dir():
            found += [str(p) for p in root.rglob(".*.tmp")]
    return sorted(found)


def check_outcome(outcome: Outcome, spec: Spec, before: dict[Path, object], roots: Sequence[Path]) -> None:
    """Assert the contract (module docstring); every failure message shows what the command did."""
    what = f"\n--- argv: {spec.argv}\n{outcome.describe()}"
    problems: list[str] = []
    if outcome.escaped:
        problems.append("an exception escaped (traceback)")
    if outcome.code != 2:
        problems.append(f"exit status {outcome.code}, expected 2")
    lines = outcome.stderr.rstrip("\n").split("\n") if outcome.stderr.strip() else []
    if len(lines) != 1:
        problems.append(f"{len(lines)} lines on stderr, expected exactly 1")
    if not lines or not lines[-1].startswith("error:"):
        problems.append("the last stderr line does not start with 'error:'")
    for path, old in before.items():
        new = snapshot(path)
        if old is None and new is not None:
            problems.append(f"left output behind: {path} exists afterwards")
        elif old is not None and new != old:
            problems.append(f"changed output that existed before: {path}")
    leftovers = temp_leftovers(roots)
    if leftovers:
        problems.append(f"temporary files left: {', '.join(leftovers)}")
    for check in spec.checks:
        try:
            check(outcome)
        except AssertionError as exc:
            problems.append(str(exc) or "extra check failed")
    assert not problems, "; ".join(problems) + what


# --------------------------------------------------------------------------- extra checks


def message_has(*needles: str) -> Check:
    """The error line names each of ``needles`` (a path, a key, a number)."""

    def check(outcome: Outcome) -> None:
        missing = [n for n in needles if n not in outcome.error_line]
        assert not missing, f"error line does not mention {missing}"

    return check


def message_lacks(*needles: str) -> Check:
    def check(outcome: Outcome) -> None:
        present = [n for n in needles if n in outcome.error_line]
        assert not present, f"error line wrongly says {present}"

    return check


def path_absent(path: Path, why: str) -> Check:
    def check(outcome: Outcome) -> None:
        assert not os.path.lexists(path), f"{path} exists ({why})"

    return check


def quick(seconds: float) -> Check:
    def check(outcome: Outcome) -> None:
        assert outcome.seconds < seconds, f"took {outcome.seconds:.1f} s, expected a failure within {seconds:g} s"

    return check


def no_new_requests(count: Callable[[], int], before: int) -> Check:
    def check(outcome: Outcome) -> None:
        now = count()
        assert now == before, f"the teacher was queried {now - before} time(s) before the command failed"

    return check


def peak_memory_below(mb: float) -> Check:
    """The command never held more than ``mb`` MiB of Python-traced memory (needs Spec.trace_memory)."""

    def check(outcome: Outcome) -> None:
        assert outcome.traced_peak_mb is not None, "memory was not traced"
        assert outcome.traced_peak_mb < mb, (
            f"peak traced memory {outcome.traced_peak_mb:.0f} MiB, expected below {mb:g} MiB"
        )

    return check
