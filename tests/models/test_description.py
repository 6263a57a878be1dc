"""ModelDescription: the metadata that makes a weights file self-describing, and how fit writes it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from deepmimic import __version__
from deepmimic.data.batches import Normalizer, TrainingSet
from deepmimic.engine.settings import TrainSettings
from deepmimic.engine.trainer import WEIGHTS_NAME, fit
from deepmimic.errors import ConfigError, ModelSpecError
from deepmimic.methods.registry import create_method
from deepmimic.models import create_model
from deepmimic.models.bundle import load_trained
from deepmimic.models.description import MODEL_FORMAT, ModelDescription
from synthetic import make_blobs_dataset

OPTIONS = {"conv_channels": 4, "fc_units": 8}
NORM = Normalizer((0.25,), (0.5,))


def _description(**changes: object) -> ModelDescription:
    fields: dict[str, object] = dict(
        architecture="c-mp-fc-s",
        in_shape=(1, 8, 8),
        num_classes=4,
        model_options=OPTIONS,
        class_names=("a", "b", "c", "d"),
        name="Student-A",
        method="soft_label",
        normalizer=NORM,
    )
    fields.update(changes)
    return ModelDescription(**fields)  # type: ignore[arg-type]


def _metadata(path: Path) -> dict[str, str]:
    with safe_open(str(path), framework="pt") as handle:
        return dict(handle.metadata() or {})


def test_metadata_round_trip() -> None:
    description = _description()
    metadata = description.to_metadata()
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items())
    assert metadata["format"] == MODEL_FORMAT and metadata["architecture"] == "c-mp-fc-s"
    assert json.loads(metadata["model_options"]) == OPTIONS and json.loads(metadata["in_shape"]) == [1, 8, 8]
    assert metadata["num_classes"] == "4" and json.loads(metadata["class_names"]) == ["a", "b", "c", "d"]
    assert json.loads(metadata["normalizer"]) == {"mean": [0.25], "std": [0.5]}
    assert (metadata["method"], metadata["name"], metadata["deepmimic_version"]) == (
        "soft_label",
        "Student-A",
        __version__,
    )
    assert ModelDescription.from_metadata(metadata, "x") == description


def test_descriptions_are_checked() -> None:
    with pytest.raises(ModelSpecError, match="in_shape must be three positive sizes"):
        _description(in_shape=(8, 8))
    with pytest.raises(ModelSpecError, match="2 class names for 4 classes"):
        _description(class_names=("a", "b"))
    with pytest.raises(ModelSpecError, match="normaliser has 3 channels but the input has 1"):
        _description(normalizer=Normalizer((0.5,) * 3, (0.2,) * 3))
    with pytest.raises(ModelSpecError, match="needs its normaliser before it is written"):
        _description(normalizer=None).to_metadata()
    with pytest.raises(ModelSpecError, match="not JSON values"):
        _description(model_options={"x": object()}).to_metadata()


@pytest.mark.parametrize("missing", ["architecture", "in_shape", "num_classes", "normalizer", "format"])
def test_a_missing_field_is_named_in_one_line(missing: str) -> None:
    metadata = _description().to_metadata()
    del metadata[missing]
    with pytest.raises(ModelSpecError, match=rf"^w\.safetensors: no '{missing}' in its metadata") as info:
        ModelDescription.from_metadata(metadata, "w.safetensors")
    assert "\n" not in str(info.value)


def test_malformed_and_future_metadata() -> None:
    metadata = {**_description().to_metadata(), "in_shape": "[1, 8"}
    with pytest.raises(ModelSpecError, match="w: malformed model metadata"):
        ModelDescription.from_metadata(metadata, "w")
    metadata = {**_description().to_metadata(), "format": "deepmimic-model/99"}
    with pytest.raises(ModelSpecError, match="unknown model format 'deepmimic-model/99'"):
        ModelDescription.from_metadata(metadata, "w")


def test_for_data_keeps_class_names_only_when_they_fit() -> None:
    data = make_blobs_dataset(n_per_class=2)
    description = ModelDescription.for_data("fc-s", data, {"fc_units": 8}, name="S", method="kd")
    assert (description.in_shape, description.num_classes, len(description.class_names)) == (data.in_shape, 4, 4)
    assert ModelDescription.for_data("fc-s", data, num_classes=7).class_names == ()


def _fit(tmp_path: Path, description: ModelDescription | None) -> Path:
    data = make_blobs_dataset(n_per_class=10)
    torch.manual_seed(0)
    student = create_model("c-mp-fc-s", data.in_shape, data.num_classes, **OPTIONS)
    method = create_method("supervised", student)
    train = TrainingSet(data.images, {"labels": data.labels})
    settings = TrainSettings(batch_size=16, lr=0.05, epochs=1, seed=0, device="cpu")
    fit(method, train, Normalizer.fit(data.images), settings, run_dir=tmp_path, progress=False, description=description)
    return tmp_path / WEIGHTS_NAME


def test_fit_writes_a_self_describing_weights_file(tmp_path: Path) -> None:
    data = make_blobs_dataset(n_per_class=10)
    description = ModelDescription.for_data("c-mp-fc-s", data, OPTIONS, name="Tiny")  # no method: the trainer names it
    weights = _fit(tmp_path, description)
    metadata = _metadata(weights)
    assert metadata["format"] == MODEL_FORMAT and metadata["method"] == "Supervised" and metadata["name"] == "Tiny"
    assert json.loads(metadata["normalizer"]) == Normalizer.fit(data.images).to_dict()
    trained = load_trained(weights)  # nothing else in the folder but the trainer's own files
    assert (trained.name, trained.in_shape, trained.num_classes, trained.class_names) == (
        "Tiny",
        data.in_shape,
        4,
        data.class_names,
    )


def test_fit_without_a_description_writes_what_it_knows(tmp_path: Path) -> None:
    weights = _fit(tmp_path, None)
    assert set(_metadata(weights)) == {"normalizer", "method", "deepmimic_version"}
    with pytest.raises(ModelSpecError, match="no 'architecture' in its metadata"):
        load_trained(tmp_path)


def test_fit_refuses_a_description_of_other_images(tmp_path: Path) -> None:
    data = make_blobs_dataset(n_per_class=10)
    wrong = ModelDescription("c-mp-fc-s", (3, 8, 8), 4, OPTIONS)
    with pytest.raises(ConfigError, match=r"in_shape \(3, 8, 8\), the training images are \(1, 8, 8\)"):
        _fit(tmp_path, wrong)
    assert not (tmp_path / WEIGHTS_NAME).exists() and data.in_shape == (1, 8, 8)


def test_save_file_metadata_is_what_load_trained_reads(tmp_path: Path) -> None:
    """A weights file written by anything (here: safetensors directly) loads when its metadata describes it."""
    torch.manual_seed(0)
    model = create_model("c-mp-fc-s", (1, 8, 8), 4, **OPTIONS).eval()
    path = tmp_path / "anywhere.safetensors"
    save_file(
        {k: v.contiguous() for k, v in model.state_dict().items()}, str(path), metadata=_description().to_metadata()
    )
    trained = load_trained(path)
    images = torch.randint(0, 256, (3, 1, 8, 8), dtype=torch.uint8)
    expected = torch.softmax(model(NORM(images)), dim=1)
    assert torch.allclose(trained.probs(images), expected, atol=1e-6)
    assert trained.description == _description()
