"""DeepMimic experiments as sweeps over the pipeline (DeepMimic paper, section 4).

* ``ladder-mnist``, ``ladder-cifar10``, ``ladder-tinyimagenet``: Mentor and Students A/B(/C)
  (Tables 1, 2, 5).
* ``split-ratio``: mentor and Student-A accuracy against the labelled fraction (Fig. 1).
* ``unbalanced-removal``: students on a student set thinned per class by up to a ratio
  bound (Table 3).
* ``out-of-domain``: students on a student set grown with out-of-domain images (Table 4).

Each point of a sweep is one ordinary pipeline run (its own folder, results and report),
repeated for every seed; the sweep writes ``summary.json``, ``summary.md`` and a sweep
report (``report.md`` / ``report.html`` with the sweep plot and the paper's numbers beside
ours) with the mean and standard deviation over seeds, as the paper averages runs.

The ladders add the paper's section 4.2 comparison: the same students trained on the same
80% with their true one-hot labels (``--no-one-hot`` skips it). In the removal and
out-of-domain sweeps the mentor does not change between points (same labelled split, same
seed), so it is trained once per seed and reused.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from deepmimic.data.splits import PoolTooSmallError
from deepmimic.environment import describe_environment
from deepmimic.errors import ConfigError
from deepmimic.experiments.options import LADDERS, SweepOptions, mentor_epochs, seed_numbers, student_epochs
from deepmimic.experiments.paper_numbers import LADDER_TABLES, sweep_paper_row, sweep_source
from deepmimic.experiments.points import finished_earlier, run_point, runs_wall_time, summarise, write_summary
from deepmimic.experiments.recipes import OUR_CHOICES, RECIPES, recipe_train

RATIOS = (0.1, 0.2, 0.3, 0.4, 0.5)
REMOVAL_BOUNDS = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
OOD_FRACTIONS = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6)
OOD_POOL = "ood-tinyimagenet-32.npz"
LADDER_EXPERIMENTS = tuple(f"ladder-{name}" for name in LADDERS)
SWEEPS = (*LADDER_EXPERIMENTS, "split-ratio", "unbalanced-removal", "out-of-domain")

TITLES = {
    "ladder": "Mentor and students (DeepMimic Tables 1, 2, 5)",
    "split-ratio": "Accuracy against the labelled/unlabelled split ratio (DeepMimic Fig. 1)",
    "unbalanced-removal": "Students on an unbalanced student set, by removal (DeepMimic Table 3)",
    "out-of-domain": "Students on a student set grown with out-of-domain images (DeepMimic Table 4)",
}
X_LABELS = {
    "split-ratio": "labelled fraction (mentor share)",
    "unbalanced-removal": "removal ratio bound",
    "out-of-domain": "out-of-domain images added (fraction of the student set)",
}


def _letters(experiment: str, dataset: str, opts: SweepOptions) -> str:
    ladder = LADDERS[dataset][3]
    letters = opts.students or (ladder if experiment.startswith("ladder-") else "a")
    unknown = sorted(set(letters) - set(ladder))
    if unknown:
        raise ConfigError(
            f"--students: {dataset} has students {', '.join(ladder.upper())}, not {', '.join(unknown).upper()}"
        )
    return letters


def _base_config(
    opts: SweepOptions, dataset: str, name: str, seed: int, out: Path, letters: str, one_hot: bool
) -> dict[str, Any]:
    data_name, folder, prefix, _ = LADDERS[dataset]
    recipe = RECIPES[dataset]
    model_options = opts.model_options or {}

    def student(letter: str, suffix: str, method: str) -> dict[str, Any]:
        return {
            "name": f"Student-{letter.upper()}{suffix}",
            "model": f"{prefix}-student-{letter}",
            "method": method,
            "model_options": model_options,
            "train": {"epochs": student_epochs(opts, dataset)},
        }

    students = [student(c, "", "soft_label") for c in letters]
    if one_hot:  # section 4.2: the same students on the same 80%, with true one-hot labels
        students += [student(c, " one-hot", "supervised") for c in letters]
    return {
        "name": name,
        "output_dir": str(out),
        "data": {
            "name": opts.data_name or data_name,
            "root": opts.data_root or str(Path(opts.data_dir) / folder),
            "train_subset": opts.subset,
            "test_subset": opts.test_subset,
        },
        "split": {"labeled_fraction": 0.2, "seed": seed},
        "train": {**recipe_train(dataset, optimizer=opts.optimizer, lr=opts.lr), "seed": seed},
        "mentor": {
            "name": "Mentor",
            "model": recipe.mentor_model,
            "method": "supervised",
            "model_options": model_options,
            "train": {"epochs": mentor_epochs(opts, dataset)},
        },
        "students": students,
    }


def _grid(opts: SweepOptions, paper_grid: tuple[float, ...]) -> tuple[float, ...]:
    """``--points`` in ascending order (a coarser grid for long runs), else the paper's grid."""
    return tuple(sorted(set(opts.points))) if opts.points else paper_grid


def _points(experiment: str, opts: SweepOptions) -> tuple[str, list[tuple[str, float | None, dict[str, Any]]]]:
    """(dataset, [(point label, x value, split changes)]) for an experiment."""
    if experiment in LADDER_EXPERIMENTS:
        return experiment.removeprefix("ladder-"), [("ladder", None, {})]
    if experiment == "split-ratio":
        return opts.dataset, [(f"ratio {r:.0%}", r, {"labeled_fraction": r}) for r in _grid(opts, RATIOS)]
    if experiment == "unbalanced-removal":
        bounds = _grid(opts, REMOVAL_BOUNDS)
        return opts.dataset, [(f"bound {b:.0%}", b, {"removal_ratio_bound": b}) for b in bounds]
    if experiment == "out-of-domain":
        pool = opts.pool or str(Path(opts.data_dir) / OOD_POOL)
        return opts.dataset, [
            (f"ood {f:.0%}", f, {"out_of_domain": {"pool": pool, "fraction": f}}) for f in _grid(opts, OOD_FRACTIONS)
        ]
    raise ConfigError(f"unknown sweep '{experiment}'; known: {', '.join(SWEEPS)}")


def run_sweep(experiment: str, opts: SweepOptions, progress: bool | None = None) -> dict[str, Any]:
    """Run every point x seed of the sweep ``experiment``; write and return the summary (and its report)."""
    started = time.perf_counter()
    dataset, points = _points(experiment, opts)
    if dataset not in LADDERS:
        raise ConfigError(f"unknown dataset '{dataset}' for {experiment}; known: {', '.join(LADDERS)}")
    ladder = experiment.startswith("ladder-")
    letters = _letters(experiment, dataset, opts)
    out = Path(opts.out) / experiment
    reuse_mentor = experiment in ("unbalanced-removal", "out-of-domain")
    trained_mentors: dict[int, Path] = {}  # seed -> the mentor folder of the first point
    rows: list[dict[str, Any]] = []
    skipped: list[str] = []
    pool_problem = ""  # why out-of-domain points were skipped (the first refusal)
    read_back = 0  # runs finished by an earlier invocation (--resume)
    for label, value, changes in points:
        runs: list[tuple[Path, dict[str, Any]]] = []
        if skipped and experiment == "out-of-domain":  # larger fractions need still more pool images
            skipped.append(label)
            continue
        for seed in seed_numbers(opts):
            run_dir = out / label.replace(" ", "-").replace("%", "pct") / f"seed-{seed}"
            raw = _base_config(
                opts, dataset, f"{experiment} {label} seed {seed}", seed, run_dir, letters, ladder and opts.one_hot
            )
            raw["split"].update(changes)
            if ladder:
                raw["paper"] = LADDER_TABLES[dataset]
            read_back += finished_earlier(run_dir, opts)
            try:
                runs.append(
                    (
                        run_dir,
                        run_point(
                            raw,
                            run_dir,
                            trained_mentors.get(seed) if reuse_mentor else None,
                            opts,
                            progress,
                            f"{label}, seed {seed}",
                        ),
                    )
                )
            except PoolTooSmallError as exc:  # Table 4 at full scale: the 5,000-image pool runs out
                print(f"[reproduce] {label}: skipped: {exc}", flush=True)
                skipped.append(label)
                pool_problem = str(exc)
                runs = []  # a point is shown with every seed or not at all
                break
            trained_mentors.setdefault(seed, run_dir / "mentor")
        if not runs:
            continue
        paper = LADDER_TABLES[dataset]["accuracy"] if ladder else sweep_paper_row(experiment, dataset, value or 0.0)
        rows.append(summarise(label, value, runs, out, paper))
    paper_source = LADDER_TABLES[dataset]["source"] if ladder else sweep_source(experiment, dataset)
    notes = []
    if skipped:
        notes.append(f"Points {', '.join(skipped)} were skipped: {pool_problem}.")
    if reuse_mentor:
        notes.append(
            "The mentor does not change between points (same labelled split and seed): it was trained once per "
            "seed at the first point and reused at the others."
        )
    if ladder and opts.one_hot:
        notes.append(
            "'one-hot' rows: the same student architecture trained on the same student images with their true "
            "labels (the paper's section 4.2 comparison); they are baselines, not DeepMimic students."
        )
    summary = {
        "experiment": experiment,
        "title": TITLES["ladder" if ladder else experiment],
        "dataset": dataset,
        "x_label": X_LABELS.get(experiment),
        "seeds": opts.seeds,
        "first_seed": opts.first_seed,
        "epochs": mentor_epochs(opts, dataset),
        "student_epochs": student_epochs(opts, dataset),
        "subset": opts.subset,
        "recipe": {
            "train": recipe_train(dataset, optimizer=opts.optimizer, lr=opts.lr),
            "mentor_model": RECIPES[dataset].mentor_model,
            "paper_epochs": RECIPES[dataset].paper_epochs and opts.epochs is None,
            "our_choices": list(OUR_CHOICES),
        },
        "test_subset": opts.test_subset,
        "students": [f"Student-{c.upper()}" for c in letters],
        "command": opts.command,
        "wall_time_s": time.perf_counter() - started,
        "runs_wall_time_s": runs_wall_time(rows),
        "read_back_runs": read_back,
        "environment": describe_environment(),
        "paper_source": paper_source,
        "notes": notes,
        "rows": rows,
    }
    return write_summary(out, summary, report=opts.report)
