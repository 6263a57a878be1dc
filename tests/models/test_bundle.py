"""load_trained: rebuild a finished run's mentor and students (and FEED models, and bundles)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
import yaml

from deepmimic.config import parse_config
from deepmimic.data import load_dataset
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


def _test_set(run: Path) -> tuple[torch.Tensor, torch.Tensor]:
    config = yaml.safe_load((run / "config.yaml").read_text())
    data = load_dataset("npz", config["data"]["root"])
    return data.test.images, data.test.labels


@pytest.mark.parametrize("stage", ["mentor", "students/student-a", "students/student-b"])
def test_loaded_stage_reproduces_the_runs_accuracy(run_dir: Path, stage: str) -> None:
    results = json.loads((run_dir / "results.json").read_text())
    by_folder = {f"students/{slugify(s['name'])}": s for s in results["students"]}
    expected = results["mentor"] if stage == "mentor" else by_folder[stage]
    trained = load_trained(run_dir / stage)
    assert isinstance(trained, TrainedModel)
    assert trained.name == expected["name"] and trained.num_classes == 4 and trained.in_shape == (1, 8, 8)
    assert not trained.model.training
    assert trained.normalizer.to_dict() == results["data"]["normalizer"]
    images, labels = _test_set(run_dir)
    probs = trained.probs(images)
    assert probs.dtype == torch.float32 and probs.shape == (len(labels), 4)
    assert torch.allclose(probs.sum(1), torch.ones(len(labels)), atol=1e-5)
    accuracy = (probs.argmax(1) == labels).float().mean().item()
    assert accuracy == pytest.approx(expected["accuracy"], abs=1e-9)


def test_weights_file_path_and_bundle_round_trip(run_dir: Path, tmp_path: Path) -> None:
    trained = load_trained(run_dir / "students" / "student-a")
    via_file = load_trained(run_dir / "students" / "student-a" / "weights.safetensors")
    images = torch.randint(0, 256, (5, 1, 8, 8), dtype=torch.uint8)
    assert torch.equal(trained.probs(images), via_file.probs(images))
    bundle = save_bundle(trained, tmp_path / "elsewhere" / "student-a.safetensors")
    assert not list(bundle.parent.glob("*.tmp"))
    again = load_trained(bundle)  # no run folder around it
    assert (again.name, again.in_shape, again.num_classes, again.normalizer) == (
        trained.name, trained.in_shape, trained.num_classes, trained.normalizer
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
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not safetensors at all")
    with pytest.raises(ModelSpecError, match="not a readable safetensors file"):
        load_trained(junk)


def test_stage_without_run_config_and_unknown_stage(run_dir: Path, tmp_path: Path) -> None:
    lone = tmp_path / "lone"
    shutil.copytree(run_dir / "mentor", lone)
    with pytest.raises(ModelSpecError, match=r"no run config \(config.yaml\)"):
        load_trained(lone)
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    shutil.copytree(copy / "mentor", copy / "students" / "ghost")
    with pytest.raises(ModelSpecError, match="stage 'students/ghost' not found.*students/student-b"):
        load_trained(copy / "students" / "ghost")


def test_weights_not_matching_the_architecture(run_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    config = yaml.safe_load((copy / "config.yaml").read_text())
    config["students"][0]["model_options"]["fc_units"] = 12
    (copy / "config.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(ModelSpecError, match="weights do not match architecture 'c-mp-fc-s'") as info:
        load_trained(copy / "students" / "student-a")
    assert "\n" not in str(info.value)


def test_feed_stage_folders_load(tmp_path: Path) -> None:
    cfg = {
        "pipeline": "feed",
        "output_dir": str(tmp_path / "feed"),
        "data": {"name": "npz", "root": str(write_blobs_npz(tmp_path / "blobs.npz"))},
        "model": "c-mp-fc-s",
        "model_options": {"conv_channels": 4, "fc_units": 16},
        "train": {"epochs": 1, "batch_size": 32, "lr": 0.05, "device": "cpu"},
        "scratch_seeds": [0],
        "kd": {"enabled": False},
        "pfeed": {"enabled": False},
        "sfeed": {"stacks": 1},
    }
    results = run_feed(parse_config(cfg), progress=False)
    trained = load_trained(tmp_path / "feed" / "scratch-seed-0")
    assert trained.name == "Scratch (seed 0)" and trained.in_shape == (1, 8, 8) and trained.num_classes == 4
    data = load_dataset("npz", cfg["data"]["root"])
    accuracy = (trained.probs(data.test.images).argmax(1) == data.test.labels).float().mean().item()
    assert accuracy == pytest.approx(results["rows"][0]["accuracy"], abs=1e-9)


def test_bundle_of_a_registered_model(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = create_model("resnet20", (3, 16, 16), 5, width=4).eval()
    trained = TrainedModel(model, Normalizer((0.5,) * 3, (0.25,) * 3), 5, (3, 16, 16), "tiny-resnet", "resnet20", {"width": 4})
    path = save_bundle(trained, tmp_path / "r.safetensors")
    again = load_trained(path)
    images = torch.randint(0, 256, (3, 3, 16, 16), dtype=torch.uint8)
    assert torch.allclose(again.probs(images), trained.probs(images), atol=0, rtol=0)
    with pytest.raises(ModelSpecError, match="is a folder"):
        save_bundle(trained, tmp_path)
