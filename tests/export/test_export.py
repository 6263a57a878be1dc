"""ONNX and TorchScript export: normalisation inside, verified, atomic, clean errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from deepmimic.config import parse_config
from deepmimic.data import load_dataset
from deepmimic.data.batches import Normalizer
from deepmimic.export import ExportError, ExportReport, export_onnx, export_torchscript
from deepmimic.models import create_model
from deepmimic.models.bundle import TrainedModel, load_trained
from deepmimic.pipelines.deepmimic import run_pipeline
from pipeline_configs import tiny_config


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> TrainedModel:
    tmp = tmp_path_factory.mktemp("export")
    cfg = tiny_config(tmp)
    cfg["train"]["epochs"] = 1
    cfg["students"] = cfg["students"][:1]
    run_pipeline(parse_config(cfg), progress=False)
    return load_trained(tmp / "run" / "students" / "student-a")


def _test_images(model: TrainedModel) -> torch.Tensor:
    root = Path(model.source).parents[2] / "blobs.npz"  # type: ignore[arg-type]
    return load_dataset("npz", root).test.images


def test_onnx_round_trip_matches_pytorch(trained: TrainedModel, tmp_path: Path) -> None:
    out = tmp_path / "student.onnx"
    report = export_onnx(trained, out, batch_size=4)
    assert isinstance(report, ExportReport) and report.path == out and report.format == "onnx"
    assert report.batch_sizes == (4, 1)
    assert report.max_abs_diff_probs < 1e-4 and report.max_abs_diff_logits < 1e-4
    assert "max abs diff probs" in report.summary()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["student.onnx"]  # no temporary left

    # A plain onnxruntime consumer: uint8 / 255 as float32, nothing else, any batch size.
    images = _test_images(trained)
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["images"]
    assert session.get_inputs()[0].shape[1:] == [1, 8, 8]
    assert [o.name for o in session.get_outputs()] == ["logits", "probs"]
    logits, probs = session.run(None, {"images": images.numpy().astype(np.float32) / 255})
    ref_logits = trained.logits(images)
    assert np.abs(logits - ref_logits.numpy()).max() < 1e-4
    assert np.abs(probs - trained.probs(images).numpy()).max() < 1e-4
    assert np.array_equal(probs.argmax(1), trained.probs(images).argmax(1).numpy())

    meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert json.loads(meta["deepmimic.in_shape"]) == [1, 8, 8] and meta["deepmimic.num_classes"] == "4"
    assert json.loads(meta["deepmimic.mean"]) == list(trained.normalizer.mean)
    assert meta["deepmimic.name"] == "Student-A"


def test_exported_onnx_reloads_as_an_onnx_teacher_with_the_same_predictions(
    trained: TrainedModel, tmp_path: Path
) -> None:
    from deepmimic.teachers.onnx_teacher import OnnxTeacher

    out = tmp_path / "student.onnx"
    export_onnx(trained, out, batch_size=4)
    images = _test_images(trained)
    teacher = OnnxTeacher(out, output_name="probs")  # the file takes pixels / 255 (the default "unit" scale)
    got = teacher.label_batch(images)
    want = trained.probs(images)
    assert teacher.num_classes == trained.num_classes
    assert (got - want).abs().max().item() < 1e-4
    assert torch.equal(got.argmax(1), want.argmax(1))
    auto = OnnxTeacher(out)  # first output = logits, detected as such and softmaxed
    assert (auto.label_batch(images) - want).abs().max().item() < 1e-4


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
def test_torchscript_round_trip_matches_pytorch(trained: TrainedModel, tmp_path: Path) -> None:
    out = tmp_path / "student.pt"
    report = export_torchscript(trained, out, batch_size=3)
    assert report.format == "torchscript" and report.max_abs_diff < 1e-4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["student.pt"]
    module = torch.jit.load(str(out))
    images = _test_images(trained)
    logits, probs = module(images.float() / 255)
    assert torch.allclose(logits, trained.logits(images), atol=1e-5)
    assert torch.allclose(probs, trained.probs(images), atol=1e-5)


def test_registered_model_with_batchnorm_exports(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = create_model("resnet20", (3, 16, 16), 5, width=4).eval()
    tm = TrainedModel(
        model, Normalizer((0.4, 0.5, 0.6), (0.2, 0.25, 0.3)), 5, (3, 16, 16), "r20", "resnet20", {"width": 4}
    )
    assert export_onnx(tm, tmp_path / "r.onnx", batch_size=2).max_abs_diff < 1e-4
    assert export_torchscript(tm, tmp_path / "r.pt", batch_size=1).batch_sizes == (1, 3)


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_unwritable_target_gives_a_clean_error_and_no_file(trained: TrainedModel, tmp_path: Path, fmt: str) -> None:
    export = export_onnx if fmt == "onnx" else export_torchscript
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(ExportError, match="cannot write") as info:
        export(trained, blocker / "model.out")
    assert "\n" not in str(info.value)
    with pytest.raises(ExportError, match="is a folder"):
        export(trained, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]


def test_failed_verification_leaves_nothing(
    trained: TrainedModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A model whose PyTorch reference disagrees with what was exported: verification must fail.
    class Drifting(TrainedModel):
        def logits(self, images_uint8: torch.Tensor) -> torch.Tensor:
            return super().logits(images_uint8) + 1.0

    drifting = Drifting(trained.model, trained.normalizer, trained.num_classes, trained.in_shape, trained.name)
    with pytest.raises(ExportError, match="differs from PyTorch.*nothing written"):
        export_onnx(drifting, tmp_path / "bad.onnx")
    with pytest.raises(ExportError, match="differs from PyTorch"):
        export_torchscript(drifting, tmp_path / "bad.pt")
    assert list(tmp_path.iterdir()) == []


def test_bad_batch_size(trained: TrainedModel, tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="batch size must be at least 1"):
        export_onnx(trained, tmp_path / "m.onnx", batch_size=0)
