"""The bad-input corpus, in-process: every case exits 2 with one ``error:`` line, no traceback, no leftovers.

Cases are listed in reliability/corpus.py (one line each); the contract is checked by
reliability/harness.py. Each case runs in its own temporary folder (also the working
directory, so default output folders land there too).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from reliability.assets import Assets
from reliability.corpus import CASES, Case
from reliability.harness import check_outcome, run_in_process, run_subprocess, snapshot


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(
    case: Case,
    assets: Assets,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    if case.needs_no_cuda and torch.cuda.is_available():
        pytest.skip("names a CUDA device; this machine has one")
    monkeypatch.chdir(tmp_path)
    work = tmp_path / "case"
    work.mkdir()
    spec = case.build(assets, work)
    before = {path: snapshot(path) for path in spec.outputs}
    if case.isolate:
        outcome = run_subprocess(
            [sys.executable, "-m", "deepmimic", *spec.argv],
            cwd=tmp_path,
            seconds=30 + spec.seconds,
            address_space=3 << 30,
        )
    else:
        outcome = run_in_process(spec.argv, capfd, caplog, seconds=spec.seconds, trace_memory=spec.trace_memory)
    check_outcome(outcome, spec, before, roots=[tmp_path, assets.root])


def test_the_corpus_is_large_enough() -> None:
    assert len(CASES) >= 110
