"""Reports built from the saved files of a (fake) finished run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from PIL import Image

from deepmimic.errors import ConfigError, DataError
from deepmimic.io_utils import slugify
from deepmimic.report.build import build_report
from deepmimic.report.loading import load_run

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SRC = Path(__file__).resolve().parents[2] / "src"


def _model(name: str, accuracy: float, k: int = 3, **extra: Any) -> dict[str, Any]:
    right = int(round(accuracy * 10))
    confusion = [[right if i == j else (10 - right if j == (i + 1) % k else 0) for j in range(k)] for i in range(k)]
    return {
        "name": name,
        "model": name.lower(),
        "architecture": "c-mp-fc2-s",
        "method": "soft_label",
        "parameters": 1234,
        "macs": 5678,
        "loss": 0.5,
        "accuracy": accuracy,
        "train_time_s": 1.5,
        "epochs": 4,
        "confusion": confusion,
        **extra,
    }


def _metrics(path: Path, epochs: int, *, start_acc: float, eval_every: int = 1) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = []
    for epoch in range(1, epochs + 1):
        row: dict[str, Any] = {
            "epoch": epoch,
            "lr": 0.1,
            "train_loss": 1.0 / epoch,
            "train_ce": 1.0 / epoch,
            "epoch_time_s": 0.5,
            "images_per_s": 1000.0,
        }
        if epoch % eval_every == 0:
            row["test_loss"] = 1.2 / epoch
            row["test_accuracy"] = min(1.0, start_acc + 0.05 * epoch)
        lines.append(json.dumps(row))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def write_deepmimic_run(root: Path) -> Path:
    """A small finished DeepMimic run: mentor + Student-A + Student-B, 3 classes, paper numbers."""
    run = root / "dm-run"
    run.mkdir()
    students = [
        _model("Student-A", 0.8, relative_accuracy=0.889, agreement=0.9),
        _model("Student-B", 0.7, relative_accuracy=0.778, agreement=0.8),
    ]
    results = {
        "name": "tiny-demo",
        "command": "deepmimic run configs/tiny.yaml --out runs/tiny",
        "data": {
            "name": "blobs",
            "labeled": 60,
            "unlabeled": 240,
            "test": 30,
            "train_subset": None,
            "test_subset": None,
            "normalizer": {"mean": [0.5], "std": [0.25]},
        },
        "mentor": _model("Mentor", 0.9, method="supervised"),
        "soft_labels": {"key": "ab" * 32, "cached": False, "time_s": 0.1},
        "students": students,
        "wall_time_s": 12.5,
        "environment": {
            "python": "3.11.7",
            "torch": "2.13.0+cpu",
            "device": "cpu",
            "threads": 2,
            "platform": "Linux-test",
        },
        "paper": {
            "source": "DeepMimic paper, Table 1 (MNIST)",
            "accuracy": {"Mentor": 97.46, "Student-A": 97.38, "Student-B": 97.17},
            "relative_accuracy": {"Student-A": 99.91, "Student-B": 99.7},
        },
    }
    (run / "results.json").write_text(json.dumps(results), encoding="utf-8")
    train = {
        "epochs": 4,
        "batch_size": 16,
        "optimizer": "sgd",
        "lr": 0.1,
        "schedule": "cosine",
        "augment": "none",
        "seed": 7,
    }
    config = {
        "name": "tiny-demo",
        "output_dir": "runs/tiny",
        "data": {"name": "blobs"},
        "split": {"labeled_fraction": 0.2, "seed": 3},
        "mentor": {"name": "Mentor", "train": train},
        "students": [{"name": s["name"], "train": {**train, "seed": 11}} for s in students],
    }
    (run / "config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    _metrics(run / "mentor" / "metrics.jsonl", 4, start_acc=0.6)
    for student in students:
        _metrics(run / "students" / slugify(student["name"]) / "metrics.jsonl", 4, start_acc=0.5)
    return run


def write_feed_run(root: Path) -> Path:
    """A small finished FEED run: two scratch models, their ensemble, and sFEED; no paper block."""
    run = root / "feed-run"
    run.mkdir()
    rows = [
        {
            "name": "Scratch (seed 0)",
            "kind": "scratch",
            "accuracy": 0.8,
            "error": 0.2,
            "loss": 0.6,
            "parameters": 999,
            "train_time_s": 2.0,
            "seed": 0,
        },
        {
            "name": "Scratch (seed 1)",
            "kind": "scratch",
            "accuracy": 0.78,
            "error": 0.22,
            "loss": 0.62,
            "parameters": 999,
            "train_time_s": 2.1,
            "seed": 1,
        },
        {
            "name": "Ensemble of 2",
            "kind": "ensemble",
            "accuracy": 0.83,
            "error": 0.17,
            "parameters": 1998,
            "seed": None,
        },
        {
            "name": "sFEED stack 2",
            "kind": "sfeed",
            "accuracy": 0.82,
            "error": 0.18,
            "loss": 0.55,
            "parameters": 999,
            "train_time_s": 3.0,
            "seed": 102,
        },
    ]
    results = {
        "name": "tiny-feed",
        "command": None,
        "model": "resnet8",
        "data": {"name": "blobs", "train": 300, "test": 30},
        "rows": rows,
        "wall_time_s": 9.0,
        "environment": {"python": "3.11.7", "torch": "2.13.0+cpu", "device": "cpu", "threads": 2},
        "agreement_scratch0_vs_ensemble": 0.93,
    }
    (run / "results.json").write_text(json.dumps(results), encoding="utf-8")
    config = {
        "pipeline": "feed",
        "name": "tiny-feed",
        "output_dir": "runs/tiny-feed",
        "data": {"name": "blobs"},
        "train": {
            "epochs": 4,
            "batch_size": 16,
            "optimizer": "sgd",
            "lr": 0.1,
            "schedule": "cosine",
            "augment": "none",
            "seed": 0,
        },
    }
    (run / "config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    for row in rows:
        if row["kind"] != "ensemble":
            _metrics(run / slugify(row["name"]) / "metrics.jsonl", 4, start_acc=0.5, eval_every=2)
    return run


@pytest.fixture(scope="module")
def dm_report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Path]]:
    run = write_deepmimic_run(tmp_path_factory.mktemp("dm"))
    return run, build_report(run)


def test_files_are_created_beside_the_run(dm_report: tuple[Path, dict[str, Path]]) -> None:
    run, paths = dm_report
    assert set(paths) == {"report.md", "report.html", "curves.png", "confusion.png", "accuracy.png"}
    for name, path in paths.items():
        assert path == run / name and path.is_file() and path.stat().st_size > 0
    assert not list(run.glob(".*.tmp")), "no temporary files are left behind"


def test_pngs_are_valid_images(dm_report: tuple[Path, dict[str, Path]]) -> None:
    _, paths = dm_report
    for name in ("curves.png", "confusion.png", "accuracy.png"):
        data = paths[name].read_bytes()
        assert data.startswith(PNG_SIGNATURE), name
        with Image.open(paths[name]) as image:
            image.load()
            width, height = image.size
        assert 300 <= width <= 4000 and 150 <= height <= 4000, (name, image.size)


def test_markdown_has_table_beside_paper_and_figures(dm_report: tuple[Path, dict[str, Path]]) -> None:
    _, paths = dm_report
    text = paths["report.md"].read_text(encoding="utf-8")
    assert text.startswith("# DeepMimic report: tiny-demo")
    header = next(line for line in text.splitlines() if line.startswith("| Model | Architecture"))
    assert "| Accuracy |" in header and "| Paper accuracy |" in header and "| Paper relative |" in header
    mentor_row = next(line for line in text.splitlines() if line.startswith("| Mentor |"))
    assert "90.00%" in mentor_row and "97.46%" in mentor_row and "-7.46 pp" in mentor_row
    for name in ("Student-A", "Student-B"):
        assert f"| {name} |" in text
    assert "DeepMimic paper, Table 1 (MNIST)" in text
    for png in ("curves.png", "confusion.png", "accuracy.png"):
        assert f"]({png})" in text
    # what ran: the recorded command, data, seeds, epochs, environment, wall time
    assert "deepmimic run configs/tiny.yaml --out runs/tiny" in text
    assert "60 labelled" in text and "240 unlabelled" in text and "seed 3" in text
    student_row = next(line for line in text.splitlines() if line.startswith("| Student-A | 4 |"))
    assert "| 11 |" in student_row
    assert "`2.13.0+cpu`" in text and "Wall time: 12.5 s" in text


def test_html_is_self_contained(dm_report: tuple[Path, dict[str, Path]]) -> None:
    _, paths = dm_report
    page = paths["report.html"].read_text(encoding="utf-8")
    assert page.count("data:image/png;base64,") == 3
    assert "http://" not in page and "https://" not in page
    assert "<script" not in page and "<link" not in page
    assert "Paper accuracy" in page and "Student-B" in page and "<table>" in page


def test_rebuilding_gives_identical_files(dm_report: tuple[Path, dict[str, Path]]) -> None:
    _, paths = dm_report
    before = {name: path.read_bytes() for name, path in paths.items()}
    again = build_report(paths["report.md"].parent)
    assert {name: path.read_bytes() for name, path in again.items()} == before


def test_html_escapes_text(tmp_path: Path) -> None:
    run = write_deepmimic_run(tmp_path)
    results = json.loads((run / "results.json").read_text(encoding="utf-8"))
    results["name"] = "<script>alert(1)</script> & co"
    (run / "results.json").write_text(json.dumps(results), encoding="utf-8")
    page = build_report(run)["report.html"].read_text(encoding="utf-8")
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt; &amp; co" in page


def test_feed_run_gets_curves_and_table(tmp_path: Path) -> None:
    run = write_feed_run(tmp_path)
    paths = build_report(run)
    assert set(paths) == {"report.md", "report.html", "curves.png", "accuracy.png"}  # no confusion matrices in FEED
    assert paths["curves.png"].read_bytes().startswith(PNG_SIGNATURE)
    text = paths["report.md"].read_text(encoding="utf-8")
    assert text.startswith("# FEED report: tiny-feed")
    assert "| Test error |" in text and "| sFEED stack 2 | sfeed | 102 |" in text and "| Ensemble of 2 |" in text
    assert "No paper numbers" in text
    assert "deepmimic run runs/tiny-feed/config.yaml" in text  # no recorded command: how to rerun


def test_missing_run_dir_is_a_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(DataError, match="run directory not found") as info:
        build_report(missing)
    assert str(missing) in str(info.value) and "\n" not in str(info.value)


def test_missing_results_json_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="results.json not found"):
        load_run(tmp_path)


def test_corrupt_results_json_is_a_clear_error(tmp_path: Path) -> None:
    run = write_deepmimic_run(tmp_path)
    (run / "results.json").write_text('{"name": "x", "mentor": ', encoding="utf-8")
    with pytest.raises(DataError, match="not valid JSON") as info:
        build_report(run)
    assert str(run / "results.json") in str(info.value) and "\n" not in str(info.value)
    assert not (run / "report.md").exists()


def test_malformed_metrics_line_names_file_and_line(tmp_path: Path) -> None:
    run = write_deepmimic_run(tmp_path)
    metrics = run / "students" / "student-b" / "metrics.jsonl"
    lines = metrics.read_text(encoding="utf-8").splitlines()
    lines[1] = '{"epoch": 2, "test_loss": '
    metrics.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"metrics\.jsonl:2: malformed metrics line"):
        load_run(run)


def test_corrupt_config_yaml_is_a_config_error(tmp_path: Path) -> None:
    run = write_deepmimic_run(tmp_path)
    (run / "config.yaml").write_text("name: [unclosed\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="config.yaml: not valid YAML"):
        load_run(run)


def test_report_package_does_not_import_the_engine() -> None:
    code = (
        "import deepmimic.report, sys; "
        "bad = [m for m in sys.modules if m.split('.')[:2] in "
        "(['deepmimic', 'engine'], ['deepmimic', 'pipelines'], ['deepmimic', 'methods'])]; "
        "assert not bad, bad"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "PYTHONPATH": str(SRC)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr


def test_curves_draw_sparse_evaluation_points(tmp_path: Path) -> None:
    """``eval_every`` > 1 (or "auto") leaves epochs without test keys: the curves use the evaluated
    epochs only, and a model evaluated only after its last epoch still gets its point."""
    from deepmimic.report.plots import curves_png
    from deepmimic.report.run_data import series

    run = write_deepmimic_run(tmp_path)
    _metrics(run / "mentor" / "metrics.jsonl", 10, start_acc=0.4, eval_every=3)  # epochs 3, 6, 9
    _metrics(run / "students" / "student-a" / "metrics.jsonl", 4, start_acc=0.5, eval_every=4)  # the last only
    loaded = load_run(run)
    mentor, student_a = loaded.models[0], loaded.models[1]
    assert series(mentor.metrics, "test_accuracy")[0] == [3, 6, 9]
    assert series(student_a.metrics, "test_loss")[0] == [4]
    png = curves_png(loaded.models)
    assert png is not None and png.startswith(PNG_SIGNATURE)
    assert "curves.png" in build_report(run)


def test_matplotlib_is_imported_only_to_draw() -> None:
    code = (
        "import sys; import deepmimic.report.build, deepmimic.report.sweep, deepmimic.experiments.catalog; "
        "assert 'matplotlib' not in sys.modules"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "PYTHONPATH": str(SRC)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
