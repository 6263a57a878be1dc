"""OnnxTeacher: tiny torch models exported to ONNX must label exactly as torch does."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from black_box_answers import label_all
from deepmimic.errors import TeacherError
from deepmimic.teachers.onnx_teacher import OnnxTeacher

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the TorchScript exporter warns

SHAPE = (3, 6, 6)
K = 4


def tiny_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 4 * 4, K)).eval()


class NhwcByte(nn.Module):
    """The same classifier taking NHWC 0..255 floats."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x.permute(0, 3, 1, 2) / 255.0)


class WithSoftmax(nn.Module):
    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.inner(x), dim=1)


def export(model: nn.Module, path: Path, example_shape: tuple[int, ...], dynamic: bool = True) -> Path:
    axes = {"x": {0: "batch"}, "y": {0: "batch"}} if dynamic else None
    torch.onnx.export(
        model,
        (torch.zeros(example_shape),),
        str(path),
        input_names=["x"],
        output_names=["y"],
        dynamic_axes=axes,
        dynamo=False,
    )
    return path


def images(n: int = 10, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (n, *SHAPE), generator=torch.Generator().manual_seed(seed), dtype=torch.int64).to(
        torch.uint8
    )


@torch.no_grad()
def reference(model: nn.Module, x: torch.Tensor) -> np.ndarray:
    return torch.softmax(model(x), dim=1).numpy()


def test_matches_torch_softmax(tmp_path: Path) -> None:
    model = tiny_model()
    teacher = OnnxTeacher(export(model, tmp_path / "m.onnx", (2, *SHAPE)))
    assert teacher.num_classes == K and teacher.source == "m.onnx" and teacher.fixed_batch is None
    imgs = images()
    expected = reference(model, imgs.float() / 255)
    np.testing.assert_allclose(teacher.label_batch(imgs).numpy(), expected, atol=1e-5)
    np.testing.assert_allclose(label_all(teacher, imgs, batch_size=3, progress=False).numpy(), expected, atol=1e-5)
    assert teacher._resolved == "logits"  # auto: the outputs are not probabilities


def test_nhwc_and_byte_scale(tmp_path: Path) -> None:
    model = tiny_model()
    path = export(NhwcByte(model), tmp_path / "nhwc.onnx", (2, 6, 6, 3))
    teacher = OnnxTeacher(path, layout="nhwc", scale="byte")
    imgs = images()
    np.testing.assert_allclose(teacher.label_batch(imgs).numpy(), reference(model, imgs.float() / 255), atol=1e-5)


def test_mean_and_std_per_channel(tmp_path: Path) -> None:
    model = tiny_model()
    mean, std = [0.5, 0.4, 0.3], [0.25, 0.2, 0.3]
    teacher = OnnxTeacher(export(model, tmp_path / "m.onnx", (2, *SHAPE)), mean=mean, std=std)
    imgs = images()
    x = (imgs.float() / 255 - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    np.testing.assert_allclose(teacher.label_batch(imgs).numpy(), reference(model, x), atol=1e-5)
    with pytest.raises(TeacherError, match="mean needs 1 or 3 values, got 2"):
        OnnxTeacher(tmp_path / "m.onnx", mean=[0.5, 0.5])


def test_probability_outputs_are_detected_and_not_softmaxed_twice(tmp_path: Path) -> None:
    model = tiny_model()
    path = export(WithSoftmax(model), tmp_path / "p.onnx", (2, *SHAPE))
    imgs = images()
    expected = reference(model, imgs.float() / 255)
    auto = OnnxTeacher(path)
    np.testing.assert_allclose(auto.label_batch(imgs).numpy(), expected, atol=1e-5)
    assert auto._resolved == "probs"
    np.testing.assert_allclose(OnnxTeacher(path, outputs="probs").label_batch(imgs).numpy(), expected, atol=1e-5)
    forced = OnnxTeacher(path, outputs="logits").label_batch(imgs).numpy()  # softmax of probabilities: flatter
    assert not np.allclose(forced, expected, atol=1e-3)


def test_fixed_batch_of_one_is_looped(tmp_path: Path) -> None:
    model = tiny_model()
    teacher = OnnxTeacher(export(model, tmp_path / "b1.onnx", (1, *SHAPE), dynamic=False))
    assert teacher.fixed_batch == 1
    imgs = images(5)
    np.testing.assert_allclose(teacher.label_batch(imgs).numpy(), reference(model, imgs.float() / 255), atol=1e-5)


def test_fixed_batch_of_three_pads_the_last_chunk(tmp_path: Path) -> None:
    model = tiny_model()
    teacher = OnnxTeacher(export(model, tmp_path / "b3.onnx", (3, *SHAPE), dynamic=False))
    imgs = images(7)
    np.testing.assert_allclose(teacher.label_batch(imgs).numpy(), reference(model, imgs.float() / 255), atol=1e-5)


def test_corrupt_and_missing_files(tmp_path: Path) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"this is not a protobuf \x00\x01\x02" * 10)
    with pytest.raises(TeacherError, match=r"bad\.onnx: not a readable ONNX model") as info:
        OnnxTeacher(bad)
    assert "\n" not in str(info.value)
    with pytest.raises(TeacherError, match=r"missing\.onnx: no such ONNX file"):
        OnnxTeacher(tmp_path / "missing.onnx")


def test_shape_mismatch_and_bad_options(tmp_path: Path) -> None:
    path = export(tiny_model(), tmp_path / "m.onnx", (2, *SHAPE))
    teacher = OnnxTeacher(path)
    gray = torch.zeros(2, 1, 6, 6, dtype=torch.uint8)
    with pytest.raises(
        TeacherError, match=r"m\.onnx: the model expects images of shape \(C, H, W\) = \(3, 6, 6\).*got \(1, 6, 6\)"
    ):
        teacher.label_batch(gray)
    with pytest.raises(TeacherError, match="black-box teachers label uint8 images"):
        teacher.label_batch(torch.zeros(2, 3, 6, 6))
    with pytest.raises(TeacherError, match="layout must be one of nchw, nhwc"):
        OnnxTeacher(path, layout="chw")
    with pytest.raises(TeacherError, match="no input named 'nope'"):
        OnnxTeacher(path, input_name="nope")
    with pytest.raises(TeacherError, match="num_classes=3 but the model outputs 4 classes"):
        OnnxTeacher(path, num_classes=3)


def test_a_query_log_written_under_other_preprocessing_is_refused(tmp_path: Path) -> None:
    from deepmimic.labelling.black_box_job import label_dataset

    path = export(tiny_model(), tmp_path / "m.onnx", (2, *SHAPE))
    label_dataset(OnnxTeacher(path), images(4), tmp_path / "p.npy", progress=False)
    assert label_dataset(OnnxTeacher(path), images(4), tmp_path / "p.npy", progress=False)["from_log"] == 4
    with pytest.raises(TeacherError, match=r"belongs to another labelling job .*scale=byte"):
        label_dataset(OnnxTeacher(path, scale="byte"), images(4), tmp_path / "p.npy", progress=False)
