"""Experiment reports built from a fixture summary.json alone."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from deepmimic.errors import DataError
from deepmimic.report.build import build_report
from deepmimic.report.plots import accuracy_label
from deepmimic.report.sweep import summary_table, sweep_png

ENV = {"python": "3.11.7", "torch": "2.13.0+cpu", "cpus": 2, "threads": 2, "platform": "Linux-test"}


def _row(
    point: str, value: float | None, mentor: float, student: float, paper: dict[str, float] | None
) -> dict[str, Any]:
    return {
        "point": point,
        "value": value,
        "unlabeled": 800,
        "runs": [f"{point}/seed-0", f"{point}/seed-1"],
        "run_wall_time_s": [10.0, 12.0],
        "accuracy": {"Mentor": [mentor, 0.01], "Student-A": [student, 0.02]},
        "relative": {"Student-A": [student / mentor, 0.01]},
        "paper": paper,
    }


def _write(folder: Path, summary: dict[str, Any]) -> Path:
    folder.mkdir(parents=True)
    (folder / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
    return folder


def _summary(rows: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {
        "experiment": "unbalanced-removal",
        "title": "Removal",
        "dataset": "cifar10",
        "x_label": "bound",
        "seeds": 2,
        "epochs": 10,
        "student_epochs": 5,
        "subset": 6000,
        "test_subset": 2000,
        "students": ["Student-A"],
        "command": "deepmimic reproduce unbalanced-removal --seeds 2",
        "wall_time_s": 44.0,
        "environment": ENV,
        "paper_source": "DeepMimic, Table 3",
        "notes": ["mentor reused"],
        "rows": rows,
        **extra,
    }


def test_sweep_report_shows_paper_beside_ours_command_and_wall_time(tmp_path: Path) -> None:
    rows = [
        _row("bound 5%", 0.05, 0.7, 0.69, {"Mentor": 72.92, "Student-A": 73.01}),
        _row("bound 90%", 0.9, 0.7, 0.6, None),
    ]
    out = _write(tmp_path / "sweep", _summary(rows))
    written = build_report(out)
    assert written["sweep.png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = written["report.md"].read_text()
    assert "| bound 5% | 800 | 70.00 ± 1.00 | 72.92 | 69.00 ± 2.00 | 98.57 ± 1.00 | 73.01 |" in md
    assert "deepmimic reproduce unbalanced-removal --seeds 2" in md and "Wall time: 44.0 s" in md
    assert "[bound 5%/seed-1/report.md](bound 5%/seed-1/report.md)" in md and "wall time 12.0 s" in md
    html = written["report.html"].read_text()
    assert "data:image/png;base64," in html and "<script" not in html
    assert build_report(out)["report.html"].read_text() == html  # rebuilding gives the same report


def test_single_point_report_lists_models_with_delta(tmp_path: Path) -> None:
    out = _write(
        tmp_path / "ladder",
        _summary([_row("ladder", None, 0.98, 0.97, {"Mentor": 97.46, "Student-A": 97.38})], experiment="ladder-mnist"),
    )
    md = build_report(out)["report.md"].read_text()
    assert "| Student-A | 97.00 ± 2.00 | 98.98 ± 1.00 | 97.38 | -0.38 |" in md
    assert "| Model |" in summary_table(json.loads((out / "summary.json").read_text()))


def test_single_point_figure_draws_the_spread_over_seeds() -> None:
    assert accuracy_label(72.5444, 0.4988) == "72.54 ± 0.50%"
    assert accuracy_label(92.63, 0.0) == "92.63%"  # one value (an evaluated model): no spread to show
    spread = _summary([_row("ladder", None, 0.98, 0.97, None)], experiment="ladder-mnist")
    one_seed = json.loads(json.dumps(spread))
    for pair in one_seed["rows"][0]["accuracy"].values():
        pair[1] = 0.0
    with_bars, without = sweep_png(spread), sweep_png(one_seed)
    assert with_bars is not None and without is not None
    assert with_bars[:8] == b"\x89PNG\r\n\x1a\n" and with_bars != without  # the error bars and their labels


def test_timing_report(tmp_path: Path) -> None:
    rows = [
        {"model": "Mentor", "preset": "m", "parameters": 1000, "macs": 5000, "cpu": {"mean_s": 1.0, "std_s": 0.1}},
        {"model": "Student-B", "preset": "b", "parameters": 500, "macs": 1000, "cpu": {"mean_s": 0.5, "std_s": 0.05}},
    ]
    summary = {
        "experiment": "inference-time",
        "title": "Inference",
        "dataset": "mnist",
        "test_images": 10000,
        "batch_size": 256,
        "repeats": 5,
        "threads": 2,
        "torch": "2.13.0+cpu",
        "command": "deepmimic reproduce inference-time",
        "wall_time_s": 30.0,
        "environment": ENV,
        "rows": rows,
    }
    written = build_report(_write(tmp_path / "timing", summary))
    md = written["report.md"].read_text()
    assert "| Student-B | 500 | 1,000 | 0.500 ± 0.050 | 2.00x |" in md and "Wall time: 30.0 s" in md
    assert written["sweep.png"].read_bytes()[:4] == b"\x89PNG"


def test_corrupt_summary_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "summary.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(DataError, match="unreadable experiment summary"):
        build_report(tmp_path / "bad")
    (tmp_path / "bad" / "summary.json").write_text('{"rows": []}', encoding="utf-8")
    with pytest.raises(DataError, match="non-empty 'rows'"):
        build_report(tmp_path / "bad")
