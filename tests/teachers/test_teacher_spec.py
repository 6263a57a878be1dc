"""open_teacher (teacher specs and options) and open_unlabeled (data specs)."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from deepmimic.data.batches import Normalizer
from deepmimic.data.spec import open_unlabeled, parse_data_spec
from deepmimic.errors import DataError, TeacherError
from deepmimic.teachers.http_teacher import HttpTeacher
from deepmimic.teachers.label_only import LabelOnlyTeacher
from deepmimic.teachers.onnx_teacher import OnnxTeacher
from deepmimic.teachers.predictions_teacher import PredictionsTeacher
from deepmimic.teachers.spec import TrainedModelLabeler, open_teacher, teacher_kind
from pipeline_configs import write_blobs_npz


def test_teacher_kinds(tmp_path: Path) -> None:
    (tmp_path / "run").mkdir()
    assert teacher_kind("http://h:1/v1/predict") == "http" and teacher_kind("HTTPS://h/x") == "http"
    assert teacher_kind(str(tmp_path / "run")) == "model"
    assert teacher_kind("missing.onnx") == "onnx"  # the teacher itself says the file is missing
    assert teacher_kind("p.npy") == "predictions" and teacher_kind("p.CSV") == "predictions"
    with pytest.raises(
        TeacherError, match=r"teacher '.*nope\.bin': no such file or directory \(expected a \.onnx file"
    ):
        teacher_kind(str(tmp_path / "nope.bin"))
    (tmp_path / "x.bin").write_bytes(b"")
    with pytest.raises(TeacherError, match="cannot tell what kind of teacher"):
        teacher_kind(str(tmp_path / "x.bin"))


def test_unknown_and_malformed_options(tmp_path: Path) -> None:
    with pytest.raises(
        TeacherError, match=r"unknown option\(s\) colour for http teacher .*known options: backoff, budget, concurrency"
    ):
        open_teacher("http://127.0.0.1:9/v1/predict", {"colour": "red"})
    with pytest.raises(TeacherError, match="http teacher option concurrency expects an integer, got 'many'"):
        open_teacher("http://127.0.0.1:9/v1/predict", {"concurrency": "many", "num_classes": "3"})
    with pytest.raises(TeacherError, match="option label_only expects true or false, got 'maybe'"):
        open_teacher("http://127.0.0.1:9/v1/predict", {"label_only": "maybe", "num_classes": "3"})
    with pytest.raises(TeacherError, match=r"onnx teacher option mean expects numbers separated by commas"):
        open_teacher(str(tmp_path / "m.onnx"), {"mean": "a,b"})


def test_http_options_are_typed() -> None:
    teacher = open_teacher(
        "http://127.0.0.1:9/v1/predict",
        {
            "num_classes": "5",
            "timeout": "2.5",
            "retries": "1",
            "concurrency": "3",
            "budget": "100",
            "label_only": "yes",
        },
    )
    assert isinstance(teacher, LabelOnlyTeacher) and isinstance(teacher.inner, HttpTeacher)
    inner = teacher.inner
    assert (inner.num_classes, inner.timeout, inner.retries, inner.concurrency, inner.budget) == (5, 2.5, 1, 3, 100)
    assert teacher.concurrency == 3 and teacher.budget == 100
    teacher.close()


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_onnx_options(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(2 * 3 * 3, 4)).eval()
    path = tmp_path / "m.onnx"
    torch.onnx.export(
        model, (torch.zeros(1, 3, 3, 2),), str(path), input_names=["x"], dynamic_axes={"x": {0: "b"}}, dynamo=False
    )
    teacher = open_teacher(
        str(path), {"layout": "nhwc", "scale": "byte", "mean": "10,20", "std": "2", "outputs": "logits"}
    )
    assert isinstance(teacher, OnnxTeacher) and teacher.num_classes == 4 and teacher.layout == "nhwc"
    images = torch.randint(0, 256, (3, 2, 3, 3), dtype=torch.int64).to(torch.uint8)  # (B, C, H, W)
    x = (images.float() - torch.tensor([10.0, 20.0]).view(1, 2, 1, 1)) / 2
    with torch.no_grad():
        expected = torch.softmax(model(x.permute(0, 2, 3, 1)), dim=1)
    torch.testing.assert_close(teacher.label_batch(images), expected, atol=1e-5, rtol=0)


def test_predictions_are_checked_against_the_images(tmp_path: Path) -> None:
    np.save(tmp_path / "p.npy", np.full((4, 2), 0.5, dtype=np.float32))
    images = torch.zeros(4, 1, 2, 2, dtype=torch.uint8)
    teacher = open_teacher(str(tmp_path / "p.npy"), {}, images=images)
    assert isinstance(teacher, PredictionsTeacher) and teacher.num_rows == 4
    with pytest.raises(TeacherError, match="4 rows of predictions but the unlabelled set has 5 images"):
        open_teacher(str(tmp_path / "p.npy"), {}, images=torch.zeros(5, 1, 2, 2, dtype=torch.uint8))


class FakeTrained:
    """What deepmimic.models.bundle.load_trained returns, reduced to what a labeler needs."""

    def __init__(self) -> None:
        torch.manual_seed(0)
        self.model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3)).eval()
        self.normalizer = Normalizer(mean=(0.5,), std=(0.25,))
        self.num_classes = 3
        self.in_shape = (1, 2, 2)
        self.name = "Student-A"


def test_a_model_directory_is_a_trained_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = types.ModuleType("deepmimic.models.bundle")
    fake.load_trained = lambda path: FakeTrained()  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "deepmimic.models.bundle", fake)
    (tmp_path / "run").mkdir()
    teacher = open_teacher(str(tmp_path / "run"), {})
    assert isinstance(teacher, TrainedModelLabeler) and teacher.source == "Student-A" and teacher.num_classes == 3
    images = torch.randint(0, 256, (5, 1, 2, 2), dtype=torch.int64).to(torch.uint8)
    trained = FakeTrained()
    with torch.no_grad():
        expected = torch.softmax(trained.model((images.float() / 255 - 0.5) / 0.25), dim=1)
    torch.testing.assert_close(teacher.label_batch(images), expected)
    with pytest.raises(TeacherError, match=r"expects images of shape \(C, H, W\) = \(1, 2, 2\)"):
        teacher.label_batch(torch.zeros(1, 3, 2, 2, dtype=torch.uint8))


def test_a_model_directory_without_the_bundle_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "deepmimic.models.bundle", None)  # import fails
    (tmp_path / "run").mkdir()
    with pytest.raises(TeacherError, match="needs deepmimic.models.bundle, which is not available"):
        open_teacher(str(tmp_path / "run"), {})


def test_data_specs(tmp_path: Path) -> None:
    assert parse_data_spec("mnist-5k") == ("mnist-5k", None)
    assert parse_data_spec("mnist:../shared/data/mnist") == ("mnist", "../shared/data/mnist")
    assert parse_data_spec("npz:a:b.npz") == ("npz", "a:b.npz")
    assert parse_data_spec("some/file.npz") == ("npz", "some/file.npz")
    with pytest.raises(DataError, match="expected NAME or NAME:ROOT"):
        parse_data_spec("imagenet:/data")
    with pytest.raises(DataError, match="empty root"):
        parse_data_spec("npz:")
    path = write_blobs_npz(tmp_path / "blobs.npz")
    train = open_unlabeled(f"npz:{path}")
    test = open_unlabeled(str(path), split="test")
    assert len(train) == 240 and len(test) == 80 and train.images.dtype == torch.uint8
    with pytest.raises(DataError, match="split must be one of train, test"):
        open_unlabeled(f"npz:{path}", split="val")
    with pytest.raises(DataError, match="no such file"):
        open_unlabeled(f"npz:{tmp_path / 'missing.npz'}")
