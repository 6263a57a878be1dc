"""A pretrained mentor in the DeepMimic pipeline (issue 15): used as it is, white-box, recorded for --resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from deepmimic.config import parse_config
from deepmimic.data import load_dataset
from deepmimic.data.batches import Normalizer
from deepmimic.errors import ConfigError
from deepmimic.eval.metrics import evaluate
from deepmimic.models import create_model
from deepmimic.pipelines.deepmimic import run_pipeline
from deepmimic.report.build import build_report
from pipeline_configs import tiny_config

ARCH = "c-mp-fc-s"
TEACHER_NORM = {"mean": "0.2", "std": "0.5"}


def _config(tmp_path: Path, checkpoint: Path) -> dict:
    raw = tiny_config(tmp_path, train={"batch_size": 16, "epochs": 2, "lr": 0.05, "device": "cpu"})
    raw["mentor"] = {
        "name": "Teacher",
        "pretrained": f"{ARCH}:{checkpoint}",
        "pretrained_options": {"in_shape": "1,8,8", **TEACHER_NORM},
    }
    return raw


def test_a_pretrained_mentor_is_used_as_it_is_and_measured(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = create_model(ARCH, (1, 8, 8), 4)  # default widths: what the spec builds
    checkpoint = tmp_path / "teacher.pt"
    torch.save({"state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}}, checkpoint)
    results = run_pipeline(parse_config(_config(tmp_path, checkpoint)), progress=False)

    test = load_dataset("npz", tmp_path / "blobs.npz").test
    expected = evaluate(model.eval(), test.images, test.labels, Normalizer((0.2,), (0.5,)), torch.device("cpu"))
    mentor = results["mentor"]
    assert mentor["method"] == "pretrained" and mentor["epochs"] == 0
    assert mentor["accuracy"] == pytest.approx(expected.accuracy)  # renormalisation reproduces the teacher's inputs
    assert not (tmp_path / "run" / "mentor").exists()  # nothing trained, nothing saved for it
    assert [s["name"] for s in results["students"]] == ["Student-A", "Student-B"]
    report = build_report(tmp_path / "run")["report.md"].read_text()
    assert "Teacher" in report and "pretrained" in report

    # --resume reuses the students; a different checkpoint (other bytes) makes them stale.
    run_pipeline(parse_config(_config(tmp_path, checkpoint)), resume=True, progress=False)
    torch.manual_seed(1)
    other = create_model(ARCH, (1, 8, 8), 4)
    torch.save({"state_dict": {f"module.{k}": v for k, v in other.state_dict().items()}}, checkpoint)
    with pytest.raises(ConfigError, match="other inputs"):
        run_pipeline(parse_config(_config(tmp_path, checkpoint)), resume=True, progress=False)
    assert json.loads((tmp_path / "run" / "results.json").read_text())["mentor"]["accuracy"] == mentor["accuracy"]


def test_a_pretrained_mentor_for_other_classes_is_refused_before_any_write(tmp_path: Path) -> None:
    model = create_model(ARCH, (1, 8, 8), 7)
    checkpoint = tmp_path / "seven.pt"
    torch.save(model.state_dict(), checkpoint)
    with pytest.raises(ConfigError, match="7 classes, the data has 4"):
        run_pipeline(parse_config(_config(tmp_path, checkpoint)), progress=False)
    assert not (tmp_path / "run").exists()


def test_a_mentor_is_trained_or_pretrained_not_both(tmp_path: Path) -> None:
    raw = tiny_config(tmp_path)
    raw["mentor"]["pretrained"] = "x:y.pt"
    with pytest.raises(ConfigError, match="exactly one of 'model'"):
        parse_config(raw)


def test_the_resume_record_of_an_entry_point_covers_its_weights_file(tmp_path: Path) -> None:
    from deepmimic.pipelines.pretrained_record import pretrained_record  # noqa: PLC0415

    weights = tmp_path / "w.pt"
    weights.write_bytes(b"one")
    before = pretrained_record("mymodule:build", {"weights": str(weights)})["file"]
    weights.write_bytes(b"two")
    after = pretrained_record("mymodule:build", {"weights": str(weights)})["file"]
    assert before is not None and after is not None and before != after  # other bytes: the students are stale
    assert pretrained_record("mymodule:build", {})["file"] is None  # code only: nothing to hash
