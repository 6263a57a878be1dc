"""End to end: mentor -> soft labels (cached) -> students -> results, on tiny generated data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from deepmimic.config import parse_config
from deepmimic.pipelines.deepmimic import run_pipeline
from pipeline_configs import tiny_config
from synthetic import make_blobs_dataset


def test_pipeline_end_to_end_writes_results_and_students_mimic_mentor(tmp_path: Path) -> None:
    results = run_pipeline(parse_config(tiny_config(tmp_path)), progress=False)
    out = tmp_path / "run"
    saved = json.loads((out / "results.json").read_text())
    assert saved["mentor"]["accuracy"] == results["mentor"]["accuracy"]
    assert results["mentor"]["accuracy"] > 0.8
    for student in results["students"]:
        assert student["relative_accuracy"] > 0.9
        assert student["agreement"] > 0.85
        assert np.array(student["confusion"]).sum() == results["data"]["test"]
    assert results["data"]["labeled"] == 48 and results["data"]["unlabeled"] == 192
    table = (out / "table.md").read_text()
    assert "| Student-B |" in table and "Relative accuracy" in table
    split = json.loads((out / "split.json").read_text())
    assert len(split["labeled_indices"]) == 48 and not set(split["labeled_indices"]) & set(split["unlabeled_indices"])
    for stage in ("mentor", "students/student-a", "students/student-b"):
        assert (out / stage / "metrics.jsonl").exists() and (out / stage / "weights.safetensors").exists()
    assert results["soft_labels"]["cached"] is False


def test_rerun_reuses_cached_soft_labels_and_resume_skips_finished_stages(tmp_path: Path) -> None:
    config = parse_config(tiny_config(tmp_path))
    first = run_pipeline(config, progress=False)
    again = run_pipeline(config, resume=True, progress=False)
    assert again["soft_labels"]["cached"] is True
    assert again["soft_labels"]["key"] == first["soft_labels"]["key"]
    assert [s["accuracy"] for s in again["students"]] == [s["accuracy"] for s in first["students"]]


def test_paper_numbers_appear_beside_ours(tmp_path: Path) -> None:
    paper = {"source": "Table 1", "accuracy": {"Mentor": 97.46}, "relative_accuracy": {"Student-A": 99.91}}
    run_pipeline(parse_config(tiny_config(tmp_path, paper=paper)), progress=False)
    table = (tmp_path / "run" / "table.md").read_text()
    assert "97.46%" in table and "99.91%" in table


@pytest.mark.parametrize("variant", ["removal", "ood"])
def test_unbalanced_variants_change_the_student_set(tmp_path: Path, variant: str) -> None:
    split: dict = {"labeled_fraction": 0.2}
    if variant == "removal":
        split["removal_ratio_bound"] = 0.5
    else:
        pool = make_blobs_dataset(n_per_class=50, num_classes=2, seed=5)
        pool_path = tmp_path / "pool.npz"
        np.savez(pool_path, images=pool.images.numpy(), labels=pool.labels.numpy())
        split["out_of_domain"] = {"pool": str(pool_path), "fraction": 0.3}
    cfg = tiny_config(tmp_path, split=split)
    cfg["train"]["epochs"] = 1
    cfg["students"] = cfg["students"][:1]
    results = run_pipeline(parse_config(cfg), progress=False)
    if variant == "removal":
        assert results["data"]["unlabeled"] < 192
    else:
        assert results["data"]["unlabeled"] > 192


def test_examples_and_class_names_are_saved_for_the_report(tmp_path: Path) -> None:
    from deepmimic.report.build import build_report
    from deepmimic.report.examples import load_examples

    results = run_pipeline(parse_config(tiny_config(tmp_path)), progress=False)
    out = tmp_path / "run"
    assert len(results["data"]["class_names"]) == results["data"]["test"] // 20  # blobs: 20 test images per class
    examples = load_examples(out)
    assert examples is not None and [s.name for s in examples.students] == ["Student-A", "Student-B"]
    for student in examples.students:
        both = student.both_right
        assert (examples.labels[both] == examples.mentor_pred[both]).all() and (
            student.pred[both] == examples.labels[both]
        ).all()
        only = student.mentor_only
        assert (examples.mentor_pred[only] == examples.labels[only]).all() and (
            student.pred[only] != examples.labels[only]
        ).all()
    written = build_report(out)
    assert written["examples.png"].read_bytes()[:4] == b"\x89PNG"
    assert "Where the student differs from the mentor" in written["report.md"].read_text()


def test_one_hot_baseline_student_trains_on_true_labels_and_is_marked(tmp_path: Path) -> None:
    raw = tiny_config(tmp_path)
    raw["students"].append({**raw["students"][0], "name": "Student-A one-hot", "method": "supervised"})
    results = run_pipeline(parse_config(raw), progress=False)
    assert [s["uses_true_labels"] for s in results["students"]][-1] is True
    assert not any(s["uses_true_labels"] for s in results["students"][:-1])
    assert results["students"][-1]["accuracy"] > 0.8


def test_one_hot_baseline_refuses_out_of_domain_rows(tmp_path: Path) -> None:
    from deepmimic.errors import ConfigError

    pool = make_blobs_dataset(n_per_class=30, num_classes=2, seed=9)
    np.savez(tmp_path / "pool.npz", images=pool.images.numpy(), labels=pool.labels.numpy())
    raw = tiny_config(tmp_path)
    raw.setdefault("split", {})["out_of_domain"] = {"pool": str(tmp_path / "pool.npz"), "fraction": 0.2}
    raw["students"] = [{**raw["students"][0], "name": "one-hot", "method": "supervised"}]
    with pytest.raises(ConfigError, match="out-of-domain images that have none"):
        run_pipeline(parse_config(raw), progress=False)


def test_a_validation_run_evaluates_on_held_out_training_images(tmp_path: Path) -> None:
    """Issue 15's tuning: data.validation_fraction replaces the test set, and the report says so."""
    from deepmimic.report.build import build_report

    config = tiny_config(tmp_path)
    config["data"]["validation_fraction"] = 0.25
    results = run_pipeline(parse_config(config), progress=False)
    assert results["data"]["validation_fraction"] == 0.25
    assert results["data"]["test"] == 60 and results["data"]["labeled"] + results["data"]["unlabeled"] == 180
    report = build_report(tmp_path / "run")["report.md"].read_text()
    assert "the test set was not used" in report
