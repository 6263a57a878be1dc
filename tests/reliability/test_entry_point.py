"""A few corpus cases through the real entry points: ``.venv/bin/deepmimic`` and ``python -m deepmimic``.

Same contract as in-process (exit 2, one ``error:`` line on stderr, no traceback, no
leftovers), seen from outside: the console script's exit status, the whole of stderr
(warnings and log records included). The processes run concurrently (interpreter start-up
dominates their cost).
"""

from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from reliability.assets import Assets
from reliability.corpus import CASES
from reliability.harness import VENV_DEEPMIMIC, Outcome, Spec, check_outcome, run_subprocess, snapshot

SCRIPT = [str(VENV_DEEPMIMIC)]
MODULE = [sys.executable, "-m", "deepmimic"]
CHOSEN = {  # case id -> how it is started
    "data/cifar10/py-pickle-calls-os-system[label]": SCRIPT,
    "config/yaml-python-object-apply-os.system": MODULE,
    "mimic/bad-student-fails-before-http-teacher-is-queried": MODULE,
    "serve/port-70000": SCRIPT,
}
BY_ID = {case.id: case for case in CASES}


@pytest.fixture(scope="module")
def outcomes(
    assets: Assets, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, tuple[Spec, dict[Path, object], Outcome, Path]]:
    """Build every chosen case in its own folder, then run all of them at once."""
    prepared = []
    for case_id, launcher in CHOSEN.items():
        folder = tmp_path_factory.mktemp("entry")
        work = folder / "case"
        work.mkdir()
        spec = BY_ID[case_id].build(assets, work)
        before = {path: snapshot(path) for path in spec.outputs}
        prepared.append((case_id, launcher, spec, before, folder))
    if not VENV_DEEPMIMIC.exists():
        pytest.skip(f"{VENV_DEEPMIMIC} is not installed")

    def start(item: tuple[str, list[str], Spec, dict[Path, object], Path]) -> Outcome:
        _, launcher, spec, _, folder = item
        return run_subprocess([*launcher, *spec.argv], cwd=folder, seconds=90)

    with ThreadPoolExecutor(max_workers=len(prepared)) as pool:
        results = list(pool.map(start, prepared))
    return {
        case_id: (spec, before, outcome, folder)
        for (case_id, _, spec, before, folder), outcome in zip(prepared, results)
    }


@pytest.mark.parametrize(
    "case_id", list(CHOSEN), ids=[f"{cid}[{'script' if CHOSEN[cid] is SCRIPT else 'python -m'}]" for cid in CHOSEN]
)
def test_real_entry_point(
    case_id: str, outcomes: dict[str, tuple[Spec, dict[Path, object], Outcome, Path]], assets: Assets
) -> None:
    spec, before, outcome, folder = outcomes[case_id]
    check_outcome(outcome, spec, before, roots=[folder, assets.root])


def test_chosen_cases_exist() -> None:
    missing = [cid for cid in CHOSEN if cid not in BY_ID]
    assert not missing, missing
