"""load_trained: rebuild a trained model from its self-describing weights file alone.

Stage folders of DeepMimic and FEED runs, the weights file on its own, standalone bundles;
never the run's config.yaml or results.json, never the dataset.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from deepmimic.config import parse_config
from deepmimic.data.batches import Normalizer
from deepmimic.errors import ModelSpecError
from deepmimic.io_utils import slugify
from deepmimic.models import create_model
from deepmimic.models.bundle import TrainedModel, load_trained, save_bundle
from deepmimic.pipelines.deepmimic import run_pipeline
from deepmimic.pipelines.feed import run_feed
from pipeline_configs import tiny_config, write_blobs_npz


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("bundle")
    cfg = tiny_config(tmp)
    cfg["train"]["epochs"] = 1
    run_pipeline(parse_config(cfg), progress=False)
    return tmp / "run"


def _test_set(npz: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """The test split of a blobs npz, read directly (not through deepmimic.data)."""
    with np.load(npz) as data:
        return torch.from_numpy(data["test_images"]), torch.from_numpy(data["test_labels"])


def _forbid_data_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    """From here on, any call to deepmimic's dataset loader fails the test."""
    import deepmimic.data
    import deepmimic.data.registry

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"load_dataset called with {args} {kwargs}")

    monkeypatch.setattr(deepmimic.data, "load_dataset", refuse)
    monkeypatch.setattr(deepmimic.data.registry, "load_dataset", refuse)


def _strip_run(run: Path, dest: Path) -> Path:
    """A copy of ``run`` holding only its stage folders: no config.yaml, results.json, split.json."""
    shutil.copytree(run, dest)
    for name in ("config.yaml", "results.json", "split.json", "table.md"):
        (dest / name).unlink(missing_ok=True)
    return dest


def _metadata(weights: Path) -> dict[str, str]:
    with safe_open(str(weights), framework="pt") as handle:
        return dict(handle.metadata() or {})


def _rewrite(weights: Path, metadata: dict[str, str]) -> None:
    """Write ``weights`` again with the same tensors and ``metadata``."""
    with safe_open(str(weights), framework="pt") as handle:
        tensors = {k: handle.get_tensor(k) for k in handle.keys()}  # noqa: SIM118 (safe_open is not iterable)
    save_file(tensors, str(weights), metadata=metadata)


@pytest.mark.parametrize("stage", ["mentor", "students/student-a", "students/student-b"])
def test_loaded_stage_reproduces_the_runs_accuracy(run_dir: Path, stage: str) -> None:
    results = json.loads((run_dir / "results.json").read_text())
    by_folder = {f"students/{slugify(s['name'])}": s for s in results["students"]}
    expected = results["mentor"] if stage == "mentor" else by_folder[stage]
    trained = load_trained(run_dir / stage)
    assert isinstance(trained, TrainedModel)
    assert trained.name == expected["name"] and trained.num_classes == 4 and trained.in_shape == (1, 8, 8)
    assert trained.architecture == expected["model"] and trained.method == expected["method"]
    assert list(trained.class_names) == results["data"]["class_names"]
    assert not trained.model.training
    assert trained.normalizer.to_dict() == results["data"]["normalizer"]
    images, labels = _test_set(run_dir.parent / "blobs.npz")
    probs = trained.probs(images)
    assert probs.dtype == torch.float32 and probs.shape == (len(labels), 4)
    assert torch.allclose(probs.sum(1), torch.ones(len(labels)), atol=1e-5)
    accuracy = (probs.argmax(1) == labels).float().mean().item()
    assert accuracy == pytest.approx(expected["accuracy"], abs=1e-9)


def test_deepmimic_stages_load_without_config_results_or_data(
    run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _forbid_data_reads(monkeypatch)
    stripped = _strip_run(run_dir, tmp_path / "stripped")
    images = torch.randint(0, 256, (6, 1, 8, 8), dtype=torch.uint8)
    for stage in ("mentor", "students/student-a", "students/student-b"):
        original, alone = load_trained(run_dir / stage), load_trained(stripped / stage)
        assert alone.description == original.description
        assert torch.equal(alone.probs(images), original.probs(images))
    lone = tmp_path / "elsewhere" / "mentor-copy.safetensors"  # the weights file alone, renamed
    lone.parent.mkdir()
    shutil.copy(run_dir / "mentor" / "weights.safetensors", lone)
    assert load_trained(lone).name == "Mentor"


def test_weights_file_path_and_bundle_round_trip(run_dir: Path, tmp_path: Path) -> None:
    stage = run_dir / "students" / "student-a"
    trained = load_trained(stage)
    via_file = load_trained(stage / "weights.safetensors")
    images = torch.randint(0, 256, (5, 1, 8, 8), dtype=torch.uint8)
    assert torch.equal(trained.probs(images), via_file.probs(images))
    bundle = save_bundle(trained, tmp_path / "elsewhere" / "student-a.safetensors")
    assert not list(bundle.parent.glob("*.tmp"))
    # A bundle is the stage's weights file: the same tensors and the same metadata.
    assert _metadata(bundle) == _metadata(stage / "weights.safetensors")
    assert bundle.read_bytes() == (stage / "weights.safetensors").read_bytes()
    again = load_trained(bundle)  # no run folder around it
    assert (again.name, again.in_shape, again.num_classes, again.normalizer) == (
        trained.name,
        trained.in_shape,
        trained.num_classes,
        trained.normalizer,
    )
    assert torch.equal(again.probs(images), trained.probs(images))


def test_probs_rejects_wrong_images(run_dir: Path) -> None:
    trained = load_trained(run_dir / "mentor")
    with pytest.raises(ModelSpecError, match="expected uint8 images"):
        trained.probs(torch.zeros(2, 1, 8, 8))
    with pytest.raises(ModelSpecError, match="expected uint8 images"):
        trained.probs(torch.zeros(2, 3, 8, 8, dtype=torch.uint8))


def test_missing_and_empty_paths(run_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelSpecError, match="no such file or folder"):
        load_trained(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelSpecError, match="no weights.safetensors"):
        load_trained(tmp_path / "empty")
    with pytest.raises(ModelSpecError, match=r"this is a run folder; its trained stages: mentor, students/student-a"):
        load_trained(run_dir)
    stripped = _strip_run(run_dir, tmp_path / "stripped")  # a run folder is recognised by its stages alone
    with pytest.raises(ModelSpecError, match=r"this is a run folder; its trained stages: mentor, students/student-a"):
        load_trained(stripped)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not safetensors at all")
    with pytest.raises(ModelSpecError, match="not a readable safetensors file"):
        load_trained(junk)


def test_old_style_weights_give_a_one_line_error_naming_the_field(run_dir: Path, tmp_path: Path) -> None:
    old = tmp_path / "old-run"
    shutil.copytree(run_dir, old)
    weights = old / "students" / "student-a" / "weights.safetensors"
    current = _metadata(weights)
    _rewrite(weights, {"normalizer": current["normalizer"]})  # all deepmimic 0.1's trainer wrote
    for path in (weights.parent, weights):
        with pytest.raises(ModelSpecError) as info:
            load_trained(path)
        message = str(info.value)
        assert message.startswith(f"{weights}: no 'architecture' in its metadata (written by an older deepmimic")
        assert "retrain" in message and "\n" not in message
    _rewrite(weights, {k: v for k, v in current.items() if k != "num_classes"})
    with pytest.raises(ModelSpecError, match=r"weights.safetensors: no 'num_classes' in its metadata"):
        load_trained(weights.parent)


def test_resume_upgrades_a_run_with_old_style_weights(tmp_path: Path) -> None:
    """--resume rewrites a finished stage's weights with the metadata, without retraining it."""
    cfg = tiny_config(tmp_path)
    cfg["train"]["epochs"] = 1
    cfg["students"] = cfg["students"][:1]
    run_pipeline(parse_config(cfg), progress=False)
    stages = [tmp_path / "run" / "mentor", tmp_path / "run" / "students" / "student-a"]
    fresh = {stage: (stage / "weights.safetensors").read_bytes() for stage in stages}
    for stage in stages:
        _rewrite(stage / "weights.safetensors", {"normalizer": _metadata(stage / "weights.safetensors")["normalizer"]})
        with pytest.raises(ModelSpecError, match="no 'architecture' in its metadata.*--resume"):
            load_trained(stage)
    run_pipeline(parse_config(cfg), resume=True, progress=False)
    for stage in stages:
        assert (stage / "weights.safetensors").read_bytes() == fresh[stage]
        assert load_trained(stage).architecture


def test_old_standalone_bundles_still_load(run_dir: Path, tmp_path: Path) -> None:
    """deepmimic 0.1's save_bundle already wrote every field (format deepmimic-bundle/1, 'model'
    for the architecture)."""
    trained = load_trained(run_dir / "students" / "student-a")
    now = trained.description.to_metadata()
    old = {"format": "deepmimic-bundle/1", "model": now["architecture"]}
    old.update({k: now[k] for k in ("name", "model_options", "in_shape", "num_classes", "class_names", "normalizer")})
    path = tmp_path / "old-bundle.safetensors"
    save_file({k: v.contiguous() for k, v in trained.model.state_dict().items()}, str(path), metadata=old)
    again = load_trained(path)
    images = torch.randint(0, 256, (4, 1, 8, 8), dtype=torch.uint8)
    assert again.name == "Student-A" and torch.equal(again.probs(images), trained.probs(images))


def test_weights_not_matching_the_description(run_dir: Path, tmp_path: Path) -> None:
    stage = tmp_path / "student-a"
    shutil.copytree(run_dir / "students" / "student-a", stage)
    weights = stage / "weights.safetensors"
    metadata = _metadata(weights)
    options = json.loads(metadata["model_options"])
    _rewrite(weights, {**metadata, "model_options": json.dumps({**options, "fc_units": 12})})
    with pytest.raises(ModelSpecError, match="weights do not match architecture 'c-mp-fc-s'") as info:
        load_trained(stage)
    assert "\n" not in str(info.value)
    _rewrite(weights, {**metadata, "architecture": "no-such-model"})
    with pytest.raises(ModelSpecError, match="cannot build the described model") as info:
        load_trained(stage)
    assert "\n" not in str(info.value)


def test_feed_stage_folders_load_without_config_results_or_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    npz = write_blobs_npz(tmp_path / "blobs.npz")
    cfg = {
        "pipeline": "feed",
        "output_dir": str(tmp_path / "feed"),
        "data": {"name": "npz", "root": str(npz)},
        "model": "c-mp-fc-s",
        "model_options": {"conv_channels": 4, "fc_units": 16},
        "train": {"epochs": 1, "batch_size": 32, "lr": 0.05, "device": "cpu"},
        "scratch_seeds": [0],
    }
    results = run_feed(parse_config(cfg), progress=False)
    _forbid_data_reads(monkeypatch)
    stripped = _strip_run(tmp_path / "feed", tmp_path / "feed-stripped")
    (tmp_path / "feed").rename(tmp_path / "gone")  # nothing of the original run is left where it was
    trained = load_trained(stripped / "scratch-seed-0")
    assert trained.name == "Scratch (seed 0)" and trained.in_shape == (1, 8, 8) and trained.num_classes == 4
    assert trained.architecture == "c-mp-fc-s" and dict(trained.model_options) == {"conv_channels": 4, "fc_units": 16}
    images, labels = _test_set(npz)
    accuracy = (trained.probs(images).argmax(1) == labels).float().mean().item()
    row = next(r for r in results["rows"] if r["name"] == "Scratch (seed 0)")
    assert accuracy == pytest.approx(row["accuracy"], abs=1e-9)


def test_bundle_of_a_registered_model(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = create_model("resnet20", (3, 16, 16), 5, width=4).eval()
    trained = TrainedModel(
        model, Normalizer((0.5,) * 3, (0.25,) * 3), 5, (3, 16, 16), "tiny-resnet", "resnet20", {"width": 4}
    )
    path = save_bundle(trained, tmp_path / "r.safetensors")
    again = load_trained(path)
    images = torch.randint(0, 256, (3, 3, 16, 16), dtype=torch.uint8)
    assert torch.allclose(again.probs(images), trained.probs(images), atol=0, rtol=0)
    with pytest.raises(ModelSpecError, match="is a folder"):
        save_bundle(trained, tmp_path)
