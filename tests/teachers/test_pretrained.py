"""Pretrained PyTorch models as teachers: checkpoints (by names, renames, structure), TorchScript, torch.export,
entry points, safety, options, renormalisation, the published akamaster ResNet-20 and ``deepmimic mimic``."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from deepmimic.cli import main
from deepmimic.data import load_dataset
from deepmimic.data.batches import Normalizer
from deepmimic.errors import TeacherError
from deepmimic.eval.metrics import evaluate
from deepmimic.models import create_model
from deepmimic.teachers.pretrained import (
    PretrainedModel,
    Renormalized,
    load_pretrained,
    pretrained_kind,
    read_state_dict,
)
from deepmimic.teachers.spec import open_teacher, teacher_kind
from pipeline_configs import write_blobs_npz

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
RESNET20 = SHARED / "models" / "akamaster-resnet-cifar10" / "resnet20-12fca82f.th"
CIFAR10 = SHARED / "data" / "cifar-10-batches-bin"
IN_SHAPE = {"in_shape": "1,8,8"}


class Payload:
    """A custom class: a checkpoint that needs it unpickled must be refused."""


def _default_model(seed: int = 0) -> nn.Module:
    """``c-mp-fc-s`` on 1x8x8 images, 4 classes, default widths: what ``c-mp-fc-s:CHECKPOINT`` builds."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return create_model("c-mp-fc-s", (1, 8, 8), 4).eval()


def _small_model(seed: int = 0, channels: int = 1) -> nn.Module:
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return create_model("c-mp-fc-s", (channels, 8, 8), 4, conv_channels=4, fc_units=8).eval()


def _images(n: int = 6, channels: int = 1, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (n, channels, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


@torch.no_grad()
def _probs(model: nn.Module, images: torch.Tensor, mean: float = 0.0, std: float = 1.0) -> torch.Tensor:
    return torch.softmax(model((images.float() / 255 - mean) / std), dim=1)


def _same_outputs(a: nn.Module, b: nn.Module) -> bool:
    x = torch.randn(5, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        return torch.equal(a(x), b(x))


def _one_line_error(needle: str, load: Callable[[], Any]) -> str:
    with pytest.raises(TeacherError, match=needle) as info:
        load()
    message = str(info.value)
    assert "\n" not in message, message
    return message


# 1. Names (nested state_dict, DataParallel prefix).
def test_a_nested_dataparallel_checkpoint_loads_by_names(tmp_path: Path) -> None:
    model = _default_model()
    path = tmp_path / "model.pth"
    torch.save({"state_dict": {"module." + k: v for k, v in model.state_dict().items()}, "epoch": 3}, path)
    spec = f"c-mp-fc-s:{path}"
    assert pretrained_kind(spec) == "checkpoint" and teacher_kind(spec) == "pretrained"
    assert list(read_state_dict(path)) == list(model.state_dict())
    loaded = load_pretrained(spec, IN_SHAPE)
    assert isinstance(loaded, PretrainedModel) and "names match" in loaded.source
    assert loaded.num_classes == 4 and loaded.in_shape == (1, 8, 8) and not loaded.model.training
    assert _same_outputs(loaded.model, model)


# 2. Structure, renames, and what does not fit.
def test_renamed_keys_load_by_a_verified_structural_match(tmp_path: Path) -> None:
    model = _default_model()
    path = tmp_path / "renamed.pt"
    torch.save({"net." + k: v for k, v in model.state_dict().items()}, path)
    loaded = load_pretrained(f"c-mp-fc-s:{path}", IN_SHAPE)
    assert "structure match" in loaded.source and _same_outputs(loaded.model, model)
    renamed = load_pretrained(f"c-mp-fc-s:{path}", {**IN_SHAPE, "rename": "net.="})
    assert "names match" in renamed.source and _same_outputs(renamed.model, model)
    _one_line_error("after renaming", lambda: load_pretrained(f"c-mp-fc-s:{path}", {**IN_SHAPE, "rename": "net.=x."}))
    _one_line_error("OLD=NEW", lambda: load_pretrained(f"c-mp-fc-s:{path}", {**IN_SHAPE, "rename": "net."}))


def test_a_tensor_of_the_wrong_shape_is_named(tmp_path: Path) -> None:
    state = _default_model().state_dict()
    state["classifier.1.bias"] = torch.zeros(127)
    torch.save(state, tmp_path / "shape.pt")
    message = _one_line_error(
        "no structural match", lambda: load_pretrained(f"c-mp-fc-s:{tmp_path / 'shape.pt'}", IN_SHAPE)
    )
    assert "'classifier.1.bias' (127,)" in message and "(128,)" in message


def test_a_missing_tensor_is_a_one_line_error(tmp_path: Path) -> None:
    state = _default_model().state_dict()
    del state["classifier.1.bias"]
    torch.save(state, tmp_path / "missing.pt")
    message = _one_line_error("do not fit", lambda: load_pretrained(f"c-mp-fc-s:{tmp_path / 'missing.pt'}", IN_SHAPE))
    assert "5 tensors" in message and "6" in message and "classifier.1.bias" in message


# 3. Safety and broken files.
def test_a_checkpoint_that_needs_arbitrary_objects_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "pickled.pt"
    torch.save({"state_dict": _default_model().state_dict(), "obj": Payload()}, path)
    message = _one_line_error("refused", lambda: load_pretrained(f"c-mp-fc-s:{path}", IN_SHAPE))
    assert "Payload" in message and "can run code" in message


@pytest.mark.parametrize("name", ["random.pt", "random.safetensors", "empty.pth"])
def test_a_corrupt_checkpoint_is_a_one_line_error(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(b"" if name.startswith("empty") else os.urandom(4096))
    message = _one_line_error("not a readable", lambda: load_pretrained(f"c-mp-fc-s:{path}", IN_SHAPE))
    assert "refused" not in message
    _one_line_error("no such checkpoint file", lambda: load_pretrained(f"c-mp-fc-s:{tmp_path / 'nope.pt'}", IN_SHAPE))


# 4. safetensors.
def test_a_safetensors_checkpoint_loads(tmp_path: Path) -> None:
    model = _default_model(seed=3)
    save_file(model.state_dict(), str(tmp_path / "model.safetensors"))
    loaded = load_pretrained(f"c-mp-fc-s:{tmp_path / 'model.safetensors'}", IN_SHAPE)
    assert "names match" in loaded.source and _same_outputs(loaded.model, model)


# 5. Programs: TorchScript and torch.export.
@pytest.mark.parametrize("how", ["script", "trace"])
def test_a_torchscript_teacher_answers_as_the_eager_model(tmp_path: Path, how: str) -> None:
    model = _small_model()
    program = torch.jit.script(model) if how == "script" else torch.jit.trace(model, torch.randn(2, 1, 8, 8))
    torch.jit.save(program, str(tmp_path / "m.ts"))
    assert pretrained_kind(str(tmp_path / "m.ts")) == "torchscript"
    teacher = open_teacher(str(tmp_path / "m.ts"), IN_SHAPE)
    images = _images(7)
    assert teacher.num_classes == 4
    torch.testing.assert_close(teacher.label_batch(images), _probs(model, images), atol=1e-5, rtol=0)


def test_a_torch_export_teacher_answers_as_the_eager_model(tmp_path: Path) -> None:
    model = _small_model()
    example = (torch.randn(2, 1, 8, 8),)
    program = torch.export.export(model, example, dynamic_shapes=({0: torch.export.Dim("batch")},))
    torch.export.save(program, str(tmp_path / "m.pt2"))
    assert pretrained_kind(str(tmp_path / "m.pt2")) == "export"
    teacher = open_teacher(str(tmp_path / "m.pt2"), IN_SHAPE)
    assert teacher.num_classes == 4
    for n in (1, 7):  # any batch size
        images = _images(n)
        torch.testing.assert_close(teacher.label_batch(images), _probs(model, images), atol=1e-5, rtol=0)
    # Exported without a dynamic batch dimension, it only takes batches of its example's size: said at load time.
    torch.export.save(torch.export.export(model, example), str(tmp_path / "fixed.pt2"))
    message = _one_line_error("exactly 2 images", lambda: open_teacher(str(tmp_path / "fixed.pt2"), IN_SHAPE))
    assert "dynamic_shapes" in message
    (tmp_path / "bad.pt2").write_bytes(os.urandom(512))
    _one_line_error("not a readable torch.export", lambda: open_teacher(str(tmp_path / "bad.pt2"), IN_SHAPE))


# 6. Entry points.
FACTORY_MODULE = """
import torch

from deepmimic.models import create_model


def build():
    torch.manual_seed(0)
    return create_model("c-mp-fc-s", (1, 8, 8), 4, conv_channels=4, fc_units=8)


def not_a_model():
    return 42


VALUE = 3
"""


@pytest.fixture
def factory_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    name = "deepmimic_test_pretrained_factory"
    (tmp_path / f"{name}.py").write_text(FACTORY_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)


def test_an_entry_point_builds_the_model_and_loads_weights(tmp_path: Path, factory_module: str) -> None:
    spec = f"{factory_module}:build"
    assert pretrained_kind(spec) == "entry_point"
    loaded = load_pretrained(spec)
    assert loaded.source == spec and loaded.num_classes == 4 and loaded.in_shape == (1, 8, 8)
    assert _same_outputs(loaded.model, _small_model(seed=0))
    other = _small_model(seed=5)
    torch.save({"model": other.state_dict()}, tmp_path / "other.pt")
    weighted = load_pretrained(spec, {"weights": str(tmp_path / "other.pt")})
    assert "names match" in weighted.source and _same_outputs(weighted.model, other)
    images = _images(4)
    torch.testing.assert_close(
        open_teacher(spec).label_batch(images), _probs(_small_model(0), images), atol=1e-6, rtol=0
    )


def test_entry_point_failures_are_one_line_errors(factory_module: str) -> None:
    _one_line_error("cannot import module", lambda: load_pretrained("deepmimic_no_such_module_xyz:build"))
    _one_line_error("has no callable 'missing'", lambda: load_pretrained(f"{factory_module}:missing"))
    _one_line_error("has no callable 'VALUE'", lambda: load_pretrained(f"{factory_module}:VALUE"))
    _one_line_error("returned int, not a torch.nn.Module", lambda: load_pretrained(f"{factory_module}:not_a_model"))


# 7. Options.
def test_mean_and_std_are_applied_to_uint8_images(tmp_path: Path) -> None:
    model = _default_model()
    torch.save(model.state_dict(), tmp_path / "m.pt")
    teacher = open_teacher(f"c-mp-fc-s:{tmp_path / 'm.pt'}", {**IN_SHAPE, "mean": "0.4", "std": "0.2"})
    images = _images(8)
    torch.testing.assert_close(teacher.label_batch(images), _probs(model, images, 0.4, 0.2), atol=1e-6, rtol=0)
    _one_line_error(
        "one value per input channel",
        lambda: open_teacher(f"c-mp-fc-s:{tmp_path / 'm.pt'}", {**IN_SHAPE, "mean": "0.1,0.2", "std": "1,1"}),
    )
    _one_line_error(
        "std values must be above 0",
        lambda: load_pretrained(f"c-mp-fc-s:{tmp_path / 'm.pt'}", {**IN_SHAPE, "std": "0"}),
    )


def test_an_unknown_option_lists_the_known_ones(tmp_path: Path) -> None:
    torch.save(_default_model().state_dict(), tmp_path / "m.pt")
    spec = f"c-mp-fc-s:{tmp_path / 'm.pt'}"
    message = _one_line_error("unknown option", lambda: open_teacher(spec, {**IN_SHAPE, "bogus": "1"}))
    assert "bogus" in message and all(k in message for k in ("mean", "std", "rename", "weights", "label_only"))
    message = _one_line_error("unknown option", lambda: load_pretrained(spec, {"bogus": "1"}))
    assert "known: mean, std" in message


def test_label_only_answers_one_hot(tmp_path: Path) -> None:
    model = _default_model()
    torch.save(model.state_dict(), tmp_path / "m.pt")
    teacher = open_teacher(f"c-mp-fc-s:{tmp_path / 'm.pt'}", {**IN_SHAPE, "label_only": "true"})
    images = _images(8)
    answers = teacher.label_batch(images)
    assert torch.equal(answers, torch.eye(4)[_probs(model, images).argmax(dim=1)])


# 8. Renormalisation for a student's inputs.
def test_renormalized_feeds_the_teacher_its_own_normalisation_and_passes_gradients() -> None:
    model = _small_model(channels=3)
    student = Normalizer((0.5, 0.4, 0.3), (0.2, 0.25, 0.3))
    teacher = Normalizer((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    images = _images(5, channels=3)
    x = student(images).requires_grad_(True)
    out = Renormalized(model, student, teacher)(x)
    with torch.no_grad():
        expected = model(teacher(images))
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=0)
    out.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


# 9. The published akamaster ResNet-20 (skips without ../shared).
def test_the_published_resnet20_reaches_its_published_accuracy() -> None:
    if not RESNET20.is_file() or not CIFAR10.is_dir():
        pytest.skip("../shared/models/akamaster-resnet-cifar10 or ../shared/data/cifar-10-batches-bin is absent")
    loaded = load_pretrained(f"resnet20:{RESNET20}", {"mean": "0.485,0.456,0.406", "std": "0.229,0.224,0.225"})
    assert loaded.num_classes == 10 and loaded.in_shape == (3, 32, 32)
    test = load_dataset("cifar10", CIFAR10).test
    assert len(test) == 10_000
    result = evaluate(loaded.model, test.images, test.labels, loaded.normalizer, torch.device("cpu"), 500)
    assert abs(100 * result.accuracy - 91.73) <= 0.5, result.accuracy


# 10. The command line.
def test_deepmimic_mimic_copies_a_pretrained_checkpoint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = _default_model()
    torch.save({"state_dict": model.state_dict()}, tmp_path / "teacher.pth")
    data = write_blobs_npz(tmp_path / "blobs.npz")
    args = ["mimic", "--teacher", f"c-mp-fc-s:{tmp_path / 'teacher.pth'}", "--option", "in_shape=1,8,8"]
    args += ["--data", f"npz:{data}", "--student", "fc-s", "--student-option", "fc_units=8", "--epochs", "1"]
    args += ["--batch-size", "32", "--no-progress"]
    assert main([*args, "--out", str(tmp_path / "out")]) == 0
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    test = load_dataset("npz", data).test
    direct = evaluate(model, test.images, test.labels, Normalizer((0.0,), (1.0,)), torch.device("cpu"))
    assert results["mentor"]["accuracy"] == pytest.approx(direct.accuracy)
    # The report says what the teacher is (a pretrained checkpoint of c-mp-fc-s), not "black box".
    assert results["mentor"]["architecture"] == "c-mp-fc-s (pretrained checkpoint, queried)"
    capsys.readouterr()

    args[2] = f"c-mp-fc-s:{tmp_path / 'missing.pth'}"
    assert main([*args, "--out", str(tmp_path / "bad")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "no such checkpoint file" in err
