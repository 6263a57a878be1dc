"""bench/peer_extraction.py on a tiny ONNX victim and generated data (the ART column only where ART is installed)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch
from torch import nn

from deepmimic.data import load_dataset
from deepmimic.pipelines.mimic import budget_order
from deepmimic.pipelines.mimic_config import MimicConfig
from pipeline_configs import write_blobs_npz

BENCH = Path(__file__).resolve().parents[2] / "bench" / "peer_extraction.py"
STUDENT = "c:4-mp-fc:16-s"


def load_bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("peer_extraction", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["peer_extraction"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    """A 4-class ONNX classifier on 1x8x8 pixels / 255, answering probabilities."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 4), nn.Softmax(1)).eval()
    path = tmp_path / "victim.onnx"
    torch.onnx.export(
        model, (torch.zeros(2, 1, 8, 8),), str(path), input_names=["x"], dynamic_axes={"x": {0: "b"}}, dynamo=False
    )
    return path


def test_the_query_images_are_the_ones_mimic_asks_about() -> None:
    bench = load_bench()
    config = MimicConfig(teacher="t.onnx", data="mnist", student="mnist-student-b", budget=50, budget_order="random")
    for seed in (0, 3):
        config = config.model_copy(update={"train": config.train.model_copy(update={"seed": seed})})
        assert torch.equal(bench.query_rows(240, 50, seed), budget_order(240, config)[:50])


def test_the_deepmimic_command_is_a_scripted_single_student_run() -> None:
    bench = load_bench()
    job = bench.Job("v.onnx", "npz:d.npz", STUDENT, 100, "top1", 2, epochs=4)
    command = bench.deepmimic_command(job, Path("out"))
    flags = dict(zip(command[4::2], command[5::2]))
    assert flags["--budget"] == "100" and flags["--budget-order"] == "random" and flags["--seed"] == "2"
    assert flags["--eval-every"] == "4" and flags["--schedule"] == "constant" and flags["--weight-decay"] == "0"
    assert "--no-report" in command and "--label-only" in command and "--compare-label-only" not in command


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_the_benchmark_measures_deepmimic_and_summarises_over_seeds(
    tmp_path: Path, victim: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bench = load_bench()
    data = write_blobs_npz(tmp_path / "blobs.npz")
    out = tmp_path / "bench"
    argv = ["--victim", str(victim), "--data", f"npz:{data}", "--student", STUDENT, "--queries", "60,120"]
    assert (
        bench.main(
            [*argv, "--labels", "soft", "--seeds", "2", "--epochs", "2", "--tools", "deepmimic", "--out", str(out)]
        )
        == 0
    )
    runs = json.loads((out / "runs.json").read_text())
    tests = len(load_dataset("npz", data).test)
    assert [(r["queries"], r["seed"]) for r in runs] == [(60, 0), (120, 0), (60, 1), (120, 1)]
    assert all(r["queries_sent"] == r["queries"] + tests and 0 <= r["accuracy"] <= 1 and r["wall_s"] > 0 for r in runs)
    rows = json.loads((out / "summary.json").read_text())
    assert [(row["labels"], row["queries"], row["deepmimic"]["seeds"]) for row in rows] == [
        ("soft", 60, 2),
        ("soft", 120, 2),
    ]
    assert "| soft | 120 |" in (out / "summary.md").read_text() and not (out / "work").exists()
    with pytest.raises(SystemExit):
        bench.main(["--victim", str(tmp_path / "missing.onnx")])
    assert "no ONNX file" in capsys.readouterr().err


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_the_art_worker_copies_the_same_job(tmp_path: Path, victim: Path) -> None:
    pytest.importorskip("art", reason="ART (adversarial-robustness-toolbox) is an optional benchmark dependency")
    bench = load_bench()
    data = write_blobs_npz(tmp_path / "blobs.npz")
    for labels in ("soft", "top1"):
        job = bench.Job(str(victim), f"npz:{data}", STUDENT, 80, labels, 0, epochs=2)
        run = bench.run_one("art", job, tmp_path / "work")
        assert run["queries_sent"] == 80 + len(load_dataset("npz", data).test) and 0 <= run["agreement"] <= 1
