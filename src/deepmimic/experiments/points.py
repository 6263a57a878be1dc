"""One run of an experiment (a point x seed) and the summary over seeds; any registered pipeline.

A point is an ordinary pipeline run (its own folder, results.json and report). Runs of
every pipeline are summarised the same way: the pipeline's view
(:meth:`deepmimic.report.views.RunView.accuracies`) says which accuracies a run holds.
"""

from __future__ import annotations

import shutil
import statistics
from pathlib import Path
from typing import Any

from deepmimic.config import parse_config
from deepmimic.errors import DataError
from deepmimic.experiments.options import SweepOptions
from deepmimic.io_utils import write_json, write_text
from deepmimic.pipelines.registry import pipeline_of, pipeline_of_results
from deepmimic.pipelines.resume_guard import check_finished_run
from deepmimic.report.run_data import read_results
from deepmimic.report.sweep import summary_table


def write_summary(out: Path, summary: dict[str, Any], report: bool = True) -> dict[str, Any]:
    """Write summary.json, summary.md and (unless ``report`` is False) the sweep report into ``out``;
    returns ``summary``."""
    write_json(out / "summary.json", summary)
    write_text(out / "summary.md", summary_table(summary) + "\n")
    if report:
        _build_report(out)
    return summary


def _build_report(folder: Path) -> None:
    from deepmimic.report.build import build_report  # noqa: PLC0415 (matplotlib only when a report is drawn)

    build_report(folder)


def train_overrides(opts: SweepOptions) -> dict[str, Any]:
    """The training settings ``reproduce`` flags set on every model of every point (``--eval-every``)."""
    return {"eval_every": opts.eval_every} if opts.eval_every is not None else {}


def finished_earlier(run_dir: Path, opts: SweepOptions) -> bool:
    """True when ``run_point`` will read the run back instead of training (``--resume`` and a results.json)."""
    return opts.resume and (run_dir / "results.json").exists()


def run_point(
    raw: dict[str, Any], run_dir: Path, mentor_from: Path | None, opts: SweepOptions, progress: bool | None, where: str
) -> dict[str, Any]:
    """One pipeline run of a sweep; a finished run is read back when resuming.

    ``opts.eval_every`` is set on every model of the point (a stage's own ``train:`` block
    included); ``opts.report`` False skips the point's report.
    """
    config = parse_config(raw, source=raw["name"], train_overrides=train_overrides(opts))
    if finished_earlier(run_dir, opts):
        check_finished_run(run_dir, config.model_dump(mode="json"), where)
        print(f"[reproduce] {where}: finished earlier, reading {run_dir / 'results.json'}", flush=True)
        if opts.report:
            _build_report(run_dir)  # with this version's report layout
        return read_results(run_dir / "results.json")
    resume = opts.resume
    if mentor_from is not None and not (run_dir / "mentor" / "checkpoint.pt").exists():
        # The trainer's resume sees a finished mentor and loads it instead of training again.
        shutil.copytree(mentor_from, run_dir / "mentor", dirs_exist_ok=True)
        resume = True
    command = f"{opts.command}  # {where}" if opts.command else None
    advice = f"use a new --out, or remove {run_dir} to rerun this point"
    results = pipeline_of(config).run(config, resume=resume, progress=progress, command=command, resume_advice=advice)
    if opts.report:
        _build_report(run_dir)
    return results


def runs_wall_time(rows: list[dict[str, Any]]) -> float:
    """The runs' own wall times added up (differs from the sweep's when points were resumed)."""
    return sum(sum(row["run_wall_time_s"]) for row in rows)


def mean_std(values: list[float]) -> list[float]:
    return [statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0]


def run_accuracies(results: dict[str, Any]) -> tuple[dict[str, float], dict[str, float]]:
    """(accuracy by model name, relative accuracy by model name) of a run of any pipeline."""
    return pipeline_of_results(results).view.accuracies(results)


def summarise(
    label: str, value: float | None, runs: list[tuple[Path, dict[str, Any]]], out: Path, paper: dict[str, float] | None
) -> dict[str, Any]:
    """Mean and standard deviation over seeds of every model's accuracy at one point."""
    per_run = [run_accuracies(results) for _, results in runs]
    names = list(per_run[0][0])
    for (run_dir, _), (accuracy, _) in zip(runs[1:], per_run[1:], strict=True):
        missing, extra = [n for n in names if n not in accuracy], [n for n in accuracy if n not in names]
        if missing or extra:
            raise DataError(
                f"{run_dir}: its models differ from {runs[0][0]}'s (missing: {', '.join(missing) or '-'}; "
                f"extra: {', '.join(extra) or '-'}), so the seeds cannot be averaged"
            )
    relative_names = list(per_run[0][1])
    first = runs[0][1]
    return {
        "point": label,
        "value": value,
        "unlabeled": (first.get("data") or {}).get("unlabeled"),
        "runs": [str(run_dir.relative_to(out)) for run_dir, _ in runs],
        "run_wall_time_s": [float(results.get("wall_time_s", 0.0)) for _, results in runs],
        "accuracy": {n: mean_std([acc[n] for acc, _ in per_run]) for n in names},
        "relative": {n: mean_std([rel[n] for _, rel in per_run]) for n in relative_names},
        "paper": paper,
    }
