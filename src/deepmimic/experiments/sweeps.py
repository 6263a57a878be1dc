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

import shutil
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deepmimic.config import parse_config
from deepmimic.data.splits import PoolTooSmallError
from deepmimic.environment import describe_environment
from deepmimic.errors import ConfigError
from deepmimic.experiments.paper_numbers import LADDER_TABLES, sweep_paper_row, sweep_source
from deepmimic.experiments.recipes import OUR_CHOICES, RECIPES, recipe_train
from deepmimic.io_utils import write_json, write_text
from deepmimic.pipelines.deepmimic import run_pipeline
from deepmimic.pipelines.resume_guard import check_finished_run
from deepmimic.report import build_report
from deepmimic.report.loading import read_results
from deepmimic.report.sweep import summary_table

# dataset name -> (data name, folder under --data-dir, preset prefix, student letters)
LADDERS = {
    "mnist": ("mnist", "mnist", "mnist", "ab"),
    "cifar10": ("cifar10", "cifar-10-batches-bin", "cifar10", "abc"),
    "tinyimagenet": ("tiny-imagenet", "tiny-imagenet", "tinyimagenet", "abc"),
}
RATIOS = (0.1, 0.2, 0.3, 0.4, 0.5)
REMOVAL_BOUNDS = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
OOD_FRACTIONS = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6)
OOD_POOL = "ood-tinyimagenet-32.npz"
@dataclass(frozen=True)
class SweepOptions:
    """What ``deepmimic reproduce`` takes: where the data is, how big, how long, how often."""

    data_dir: str = "../shared/data"
    out: str = "runs/reproduce"
    epochs: int | None = None  # mentor epochs; None: the recipe's (experiments/recipes.py), or a config's own
    student_epochs: int | None = None  # None: the same as the mentor (the paper's recipe)
    optimizer: str | None = None  # None: the recipe's (SGD)
    lr: float | None = None  # None: the recipe's
    subset: int | None = None  # stratified training subset
    test_subset: int | None = None
    seeds: int = 1
    dataset: str = "cifar10"  # for the sweeps (split-ratio, unbalanced-removal, out-of-domain)
    students: str | None = None  # student letters, e.g. "ab"; default: the whole ladder, "a" for sweeps
    one_hot: bool = True  # ladders: also train each student on the true labels of the same 80%
    resume: bool = False  # reuse finished points, continue interrupted ones from their checkpoints
    command: str | None = None  # the command line, recorded in the summary and reports
    data_name: str | None = None  # override the reader (e.g. "npz" for tests)
    data_root: str | None = None  # override the path (file or folder)
    pool: str | None = None  # override the out-of-domain pool path
    model_options: dict[str, Any] | None = None  # override every model's widths (tests use tiny models)


def mentor_epochs(opts: SweepOptions, dataset: str) -> int:
    """``--epochs``, else the recipe's (the paper's where it gives them)."""
    return opts.epochs or RECIPES[dataset].epochs


def student_epochs(opts: SweepOptions, dataset: str) -> int:
    """``--student-epochs``, else the mentor's: the paper trains every model for as long."""
    return opts.student_epochs or mentor_epochs(opts, dataset)
TITLES = {
    "ladder": "Mentor and students (DeepMimic Tables 1, 2, 5)",
    "split-ratio": "Accuracy against the labelled/unlabelled split ratio (DeepMimic Fig. 1)",
    "unbalanced-removal": "Students on an unbalanced student set, by removal (DeepMimic Table 3)",
    "out-of-domain": "Students on a student set grown with out-of-domain images (DeepMimic Table 4)",
}
X_LABELS = {"split-ratio": "labelled fraction (mentor share)", "unbalanced-removal": "removal ratio bound",
            "out-of-domain": "out-of-domain images added (fraction of the student set)"}


def _letters(experiment: str, dataset: str, opts: SweepOptions) -> str:
    ladder = LADDERS[dataset][3]
    letters = opts.students or (ladder if experiment.startswith("ladder-") else "a")
    unknown = sorted(set(letters) - set(ladder))
    if unknown:
        raise ConfigError(f"--students: {dataset} has students {', '.join(ladder.upper())}, not {', '.join(unknown).upper()}")
    return letters


def _base_config(opts: SweepOptions, dataset: str, name: str, seed: int, out: Path, letters: str, one_hot: bool) -> dict[str, Any]:
    data_name, folder, prefix, _ = LADDERS[dataset]
    recipe = RECIPES[dataset]
    model_options = opts.model_options or {}

    def student(letter: str, suffix: str, method: str) -> dict[str, Any]:
        return {"name": f"Student-{letter.upper()}{suffix}", "model": f"{prefix}-student-{letter}", "method": method,
                "model_options": model_options, "train": {"epochs": student_epochs(opts, dataset)}}

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
        "mentor": {"name": "Mentor", "model": recipe.mentor_model, "method": "supervised",
                   "model_options": model_options, "train": {"epochs": mentor_epochs(opts, dataset)}},
        "students": students,
    }


def _points(experiment: str, opts: SweepOptions) -> tuple[str, list[tuple[str, float | None, dict[str, Any]]]]:
    """(dataset, [(point label, x value, split changes)]) for an experiment."""
    if experiment.startswith("ladder-") and experiment in EXPERIMENTS:
        return experiment.removeprefix("ladder-"), [("ladder", None, {})]
    if experiment == "split-ratio":
        return opts.dataset, [(f"ratio {r:.0%}", r, {"labeled_fraction": r}) for r in RATIOS]
    if experiment == "unbalanced-removal":
        return opts.dataset, [(f"bound {b:.0%}", b, {"removal_ratio_bound": b}) for b in REMOVAL_BOUNDS]
    if experiment == "out-of-domain":
        pool = opts.pool or str(Path(opts.data_dir) / OOD_POOL)
        return opts.dataset, [(f"ood {f:.0%}", f, {"out_of_domain": {"pool": pool, "fraction": f}}) for f in OOD_FRACTIONS]
    raise ConfigError(f"unknown experiment '{experiment}'; known: {', '.join(EXPERIMENTS)}")


def run_experiment(experiment: str, opts: SweepOptions, progress: bool | None = None) -> dict[str, Any]:
    """Run every point x seed of ``experiment``; write and return the summary (and its report)."""
    if opts.seeds < 1:
        raise ConfigError(f"--seeds must be >= 1, got {opts.seeds}")
    for flag, value in (("--epochs", opts.epochs), ("--student-epochs", opts.student_epochs)):
        if value is not None and value < 1:
            raise ConfigError(f"{flag} must be >= 1, got {value}")
    if opts.optimizer is not None and opts.optimizer not in ("sgd", "adam"):
        raise ConfigError(f"--optimizer must be sgd or adam, got '{opts.optimizer}'")
    if opts.lr is not None and not opts.lr > 0:
        raise ConfigError(f"--lr must be > 0, got {opts.lr}")
    if experiment == "inference-time":
        from deepmimic.experiments.inference_time import run_inference_time  # noqa: PLC0415 (it imports this module)

        return run_inference_time(opts)
    if experiment in CONFIG_EXPERIMENTS:
        from deepmimic.experiments.config_runs import run_config_experiment  # noqa: PLC0415 (it imports this module)

        return run_config_experiment(experiment, opts, progress)
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
    for label, value, changes in points:
        runs: list[tuple[Path, dict[str, Any]]] = []
        if skipped and experiment == "out-of-domain":  # larger fractions need still more pool images
            skipped.append(label)
            continue
        for seed in range(opts.seeds):
            run_dir = out / label.replace(" ", "-").replace("%", "pct") / f"seed-{seed}"
            raw = _base_config(opts, dataset, f"{experiment} {label} seed {seed}", seed, run_dir, letters, ladder and opts.one_hot)
            raw["split"].update(changes)
            if ladder:
                raw["paper"] = LADDER_TABLES[dataset]
            try:
                runs.append((run_dir, _run_point(raw, run_dir, trained_mentors.get(seed) if reuse_mentor else None, opts, progress,
                                                 f"{label}, seed {seed}")))
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
        rows.append(_summarise(label, value, runs, out, paper))
    paper_source = LADDER_TABLES[dataset]["source"] if ladder else sweep_source(experiment, dataset)
    notes = []
    if skipped:
        notes.append(f"Points {', '.join(skipped)} were skipped: {pool_problem}.")
    if reuse_mentor:
        notes.append("The mentor does not change between points (same labelled split and seed): it was trained once per "
                     "seed at the first point and reused at the others.")
    if ladder and opts.one_hot:
        notes.append("'one-hot' rows: the same student architecture trained on the same student images with their true "
                     "labels (the paper's section 4.2 comparison); they are baselines, not DeepMimic students.")
    summary = {
        "experiment": experiment, "title": TITLES["ladder" if ladder else experiment], "dataset": dataset,
        "x_label": X_LABELS.get(experiment), "seeds": opts.seeds, "epochs": mentor_epochs(opts, dataset),
        "student_epochs": student_epochs(opts, dataset), "subset": opts.subset,
        "recipe": {"train": recipe_train(dataset, optimizer=opts.optimizer, lr=opts.lr), "mentor_model": RECIPES[dataset].mentor_model,
                   "paper_epochs": RECIPES[dataset].paper_epochs and opts.epochs is None, "our_choices": list(OUR_CHOICES)},
        "test_subset": opts.test_subset, "students": [f"Student-{c.upper()}" for c in letters],
        "command": opts.command, "wall_time_s": time.perf_counter() - started, "runs_wall_time_s": _runs_wall_time(rows),
        "environment": describe_environment(), "paper_source": paper_source, "notes": notes, "rows": rows,
    }
    return write_summary(out, summary)


def write_summary(out: Path, summary: dict[str, Any]) -> dict[str, Any]:
    """Write summary.json, summary.md and the sweep report into ``out``; returns ``summary``."""
    write_json(out / "summary.json", summary)
    write_text(out / "summary.md", summary_table(summary) + "\n")
    build_report(out)
    return summary


def _run_point(raw: dict[str, Any], run_dir: Path, mentor_from: Path | None, opts: SweepOptions,
               progress: bool | None, where: str) -> dict[str, Any]:
    """One pipeline run of a sweep; a finished run is read back when resuming."""
    if opts.resume and (run_dir / "results.json").exists():
        check_finished_run(run_dir, parse_config(raw, source=raw["name"]).model_dump(mode="json"), where)
        print(f"[reproduce] {where}: finished earlier, reading {run_dir / 'results.json'}", flush=True)
        build_report(run_dir)  # with this version's report layout
        return read_results(run_dir / "results.json")
    resume = opts.resume
    if mentor_from is not None and not (run_dir / "mentor" / "checkpoint.pt").exists():
        # The trainer's resume sees a finished mentor and loads it instead of training again.
        shutil.copytree(mentor_from, run_dir / "mentor", dirs_exist_ok=True)
        resume = True
    command = f"{opts.command}  # {where}" if opts.command else None
    advice = f"use a new --out, or remove {run_dir} to rerun this point"
    config = parse_config(raw, source=raw["name"])
    if config.pipeline == "feed":
        from deepmimic.pipelines.feed import run_feed  # noqa: PLC0415 (only the FEED tables need it)

        results = run_feed(config, resume=resume, progress=progress, command=command, resume_advice=advice)
    else:
        results = run_pipeline(config, resume=resume, progress=progress, command=command, resume_advice=advice)
    build_report(run_dir)
    return results


def _runs_wall_time(rows: list[dict[str, Any]]) -> float:
    """The runs' own wall times added up (differs from the sweep's when points were resumed)."""
    return sum(sum(row["run_wall_time_s"]) for row in rows)


def _mean_std(values: list[float]) -> list[float]:
    return [statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0]


def run_accuracies(results: dict[str, Any]) -> tuple[dict[str, float], dict[str, float]]:
    """(accuracy by model name, relative accuracy by student name) of a DeepMimic or FEED run."""
    if "rows" in results:  # FEED
        return {r["name"]: r["accuracy"] for r in results["rows"]}, {}
    accuracy = {results["mentor"]["name"]: results["mentor"]["accuracy"]}
    accuracy.update({s["name"]: s["accuracy"] for s in results["students"]})
    return accuracy, {s["name"]: s["relative_accuracy"] for s in results["students"]}


def _summarise(label: str, value: float | None, runs: list[tuple[Path, dict[str, Any]]], out: Path,
               paper: dict[str, float] | None) -> dict[str, Any]:
    """Mean and standard deviation over seeds of every model's accuracy at one point."""
    per_run = [run_accuracies(results) for _, results in runs]
    names = list(per_run[0][0])
    relative_names = list(per_run[0][1])
    first = runs[0][1]
    return {
        "point": label,
        "value": value,
        "unlabeled": (first.get("data") or {}).get("unlabeled"),
        "runs": [str(run_dir.relative_to(out)) for run_dir, _ in runs],
        "run_wall_time_s": [float(results.get("wall_time_s", 0.0)) for _, results in runs],
        "accuracy": {n: _mean_std([acc[n] for acc, _ in per_run]) for n in names},
        "relative": {n: _mean_std([rel[n] for _, rel in per_run]) for n in relative_names},
        "paper": paper,
    }


EXPERIMENTS = (
    "ladder-mnist", "ladder-cifar10", "ladder-tinyimagenet", "split-ratio", "unbalanced-removal", "out-of-domain",
    "inference-time", "imitation-table", "feed-tables",
)
CONFIG_EXPERIMENTS = ("imitation-table", "feed-tables")
