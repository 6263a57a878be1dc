"""Data parallelism: sharding, rank-0-only writes, and torchrun with 2 CPU processes (gloo).

The integration test launches ``torchrun --nproc-per-node 2 -m deepmimic run`` on a tiny
config with three methods (soft labels from the cache, online KD, the imitation game with
the derivative and adversarial terms) and checks that the per-epoch losses match a
single-process run with the same global batch, that each file was written once, and that
a distributed run resumed from its checkpoints ends where an uninterrupted one does.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from torch import nn

from deepmimic import distributed
from deepmimic.config import parse_config
from deepmimic.data import load_dataset
from deepmimic.data.batches import Normalizer, TrainingSet, iterate_batches
from deepmimic.errors import ConfigError, TeacherError
from deepmimic.io_utils import write_json
from deepmimic.labelling.black_box_job import label_dataset_sharded, read_answers
from deepmimic.labelling.query_log import QueryLog
from deepmimic.pipelines.deepmimic import run_pipeline
from pipeline_configs import tiny_config, write_blobs_npz


def test_shard_range_covers_every_row_once() -> None:
    for n in (0, 1, 7, 10, 11):
        for world in (1, 2, 3, 4):
            blocks = [distributed.shard_range(n, r, world) for r in range(world)]
            rows = [i for start, stop in blocks for i in range(start, stop)]
            assert rows == list(range(n))
            sizes = [stop - start for start, stop in blocks]
            assert max(sizes) - min(sizes) <= 1


def test_rank_shares_rebuild_the_global_batches_with_their_augmentation() -> None:
    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (23, 3, 8, 8), generator=gen, dtype=torch.uint8)
    data = TrainingSet(images, {"probs": torch.softmax(torch.randn(23, 4, generator=gen), dim=1)})
    norm = Normalizer.fit(images)
    cpu = torch.device("cpu")

    def batches(rank: int, world: int) -> list:
        g = torch.Generator().manual_seed(5)
        return list(iterate_batches(data, 8, norm, g, cpu, "crop-flip", rank=rank, world_size=world))

    single = batches(0, 1)
    shares = [batches(r, 2) for r in range(2)]
    assert len(shares[0]) == len(shares[1]) == len(single) == 3
    for i, whole in enumerate(single):
        for r in range(2):
            part = shares[r][i]
            assert torch.equal(part.index, whole.index[r::2])
            assert torch.allclose(part.x, whole.x[r::2])  # same crop offsets and flips per row
            assert torch.equal(part.targets["probs"], whole.targets["probs"][r::2])
            assert part.global_size == whole.index.numel()


def test_a_final_global_batch_too_small_to_share_is_skipped() -> None:
    data = TrainingSet(torch.zeros(11, 1, 2, 2, dtype=torch.uint8))
    norm = Normalizer((0.0,), (1.0,))
    got = list(
        iterate_batches(data, 4, norm, torch.Generator().manual_seed(0), torch.device("cpu"), rank=1, world_size=2)
    )
    assert [b.index.numel() for b in got] == [2, 2]  # the last global batch has 3 rows: one rank would get 1


def test_only_rank_zero_writes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(distributed, "_INFO", distributed.ProcessGroupInfo(rank=1, world_size=2, backend="gloo"))
    write_json(tmp_path / "results.json", {"a": 1})
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setattr(distributed, "_INFO", distributed.ProcessGroupInfo(rank=0, world_size=2, backend="gloo"))
    write_json(tmp_path / "results.json", {"a": 1})
    assert json.loads((tmp_path / "results.json").read_text()) == {"a": 1}


def test_an_explicit_gpu_index_is_refused_under_torchrun(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        distributed, "_INFO", distributed.ProcessGroupInfo(rank=1, world_size=2, local_rank=1, backend="gloo")
    )
    with pytest.raises(ConfigError, match="each process trains on its own GPU"):
        distributed.resolve_rank_device("cuda:1")
    assert distributed.resolve_rank_device("cpu") == torch.device("cpu")


def test_read_answers_puts_each_shard_log_back_at_its_rows(tmp_path: Path) -> None:
    n, k = 7, 3  # blocks of 4 and 3 rows
    probs = torch.softmax(torch.randn(n, k, generator=torch.Generator().manual_seed(0)), dim=1)
    logs = []
    for q in range(2):
        start, stop = distributed.shard_range(n, q, 2)
        path = tmp_path / f"log.rank{q}-of-2"
        with QueryLog(path, source="t", num_classes=k, num_rows=stop - start) as log:
            answered = torch.arange(stop - start)[::2]  # a budget stopped each block halfway
            log.append(answered, probs[start:stop][answered])
        logs.append(str(path))
    rows, got = read_answers({"rows": n, "log": "unused", "shard_logs": logs})
    assert rows.tolist() == [0, 2, 4, 6]  # local rows 0, 2 of block 0; local rows 0, 2 of block 1 (= 4, 6)
    assert torch.allclose(got, probs[rows])


def test_not_distributed_without_a_launcher(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    with distributed.process_group("cpu") as group:
        assert (group.rank, group.world_size) == (0, 1)
        assert distributed.is_main() and not distributed.is_distributed()


def _config(tmp_path: Path, out: str, student_epochs: int) -> dict:
    cfg = tiny_config(tmp_path, name="ddp")
    cfg["output_dir"] = str(tmp_path / out)
    # A constant schedule: a student stopped after 2 epochs and resumed to 3 then follows
    # the 3-epoch run exactly.
    cfg["train"].update(epochs=3, batch_size=16, schedule="constant")
    small = {"fc_units": 16}
    cfg["students"] = [
        {"name": "Student-A", "model": "c-mp-fc-s", "model_options": {"conv_channels": 8, "fc_units": 32}},
        {"name": "KD online", "model": "fc-s", "model_options": small, "method": "kd", "teacher": "online"},
        {
            "name": "Imitation",
            "model": "fc-s",
            "model_options": small,
            "method": "imitation",
            "method_options": {"der_weight": 1.0, "adv_weight": 0.1},
        },
    ]
    for student in cfg["students"]:
        student["train"] = {"epochs": student_epochs}
    return cfg


def _torchrun_cli(*args: str, expect_ok: bool = True) -> subprocess.CompletedProcess[str]:
    """``torchrun --standalone --nproc-per-node 2 -m deepmimic ARGS`` (gloo on the CPU)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("WORLD_SIZE", None)
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        "2",
        "-m",
        "deepmimic",
        *args,
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=240)
    assert (done.returncode == 0) == expect_ok, done.stderr[-3000:]
    return done


def _torchrun(config_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return _torchrun_cli("run", str(config_path), "--no-progress", *extra)


def _losses(run: Path, stage: str) -> list[float]:
    return [json.loads(line)["train_loss"] for line in (run / stage / "metrics.jsonl").read_text().splitlines()]


STAGES = ("mentor", "students/student-a", "students/kd-online", "students/imitation")


def test_torchrun_two_cpu_processes_match_one_and_resume(tmp_path: Path) -> None:
    single = _config(tmp_path, "single", student_epochs=3)
    run_pipeline(parse_config(single), progress=False)

    # Two processes; the students stop after 2 of their 3 epochs (as if interrupted), then
    # the run is resumed, still distributed: the mentor and soft labels are reused.
    path = tmp_path / "ddp.yaml"
    path.write_text(yaml.safe_dump(_config(tmp_path, "ddp", student_epochs=2)))
    first = _torchrun(path)
    assert first.stdout.count("| Mentor |") == 1  # rank 1 prints nothing
    more = [arg for i in range(3) for arg in ("--set", f"students.{i}.train.epochs=3")]
    resumed = _torchrun(path, "--resume", *more)
    assert "read from cache" in resumed.stdout
    assert "trained data-parallel on 2 processes (gloo)" in resumed.stdout

    one, two = tmp_path / "single", tmp_path / "ddp"
    for stage in STAGES:
        a, b = _losses(one, stage), _losses(two, stage)
        assert len(b) == 3, f"{stage}: metrics.jsonl has {len(b)} lines, so more than one process wrote it"
        # Soft labels, KD and the mentor match to float rounding; the imitation game's random
        # Jacobian projections are drawn per rank, so it matches within a looser tolerance.
        tol = 5e-2 if stage.endswith("imitation") else 1e-4
        assert a == pytest.approx(b, rel=tol), stage
    results_one = json.loads((one / "results.json").read_text())
    results_two = json.loads((two / "results.json").read_text())
    for s1, s2 in zip(results_one["students"], results_two["students"]):
        assert s2["accuracy"] == pytest.approx(s1["accuracy"], abs=0.05)
    assert not list(two.rglob("*.tmp")), "a half-written file was left behind"


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_torchrun_label_shards_the_rows_and_merges_one_file(tmp_path: Path) -> None:
    data = write_blobs_npz(tmp_path / "blobs.npz")
    from deepmimic.teachers.onnx_teacher import OnnxTeacher

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 4)).eval()
    onnx_path = tmp_path / "teacher.onnx"
    torch.onnx.export(
        model, (torch.zeros(2, 1, 8, 8),), str(onnx_path), input_names=["x"], dynamic_axes={"x": {0: "b"}}, dynamo=False
    )
    images = load_dataset("npz", data).train.images  # (240, 1, 8, 8)
    with torch.no_grad():
        expected = torch.softmax(model(images.float() / 255), dim=1).numpy()

    out = tmp_path / "probs.npy"
    label = [
        "label",
        "--teacher",
        str(onnx_path),
        "--data",
        f"npz:{data}",
        "--out",
        str(out),
        "--batch-size",
        "16",
        "--no-progress",
    ]
    # A budget of 100 is the whole job's: 50 per process, so the job stops at 100 of 240.
    stopped = _torchrun_cli(*label, "--budget", "100", expect_ok=False)
    assert "query budget of 100 samples reached: 100 of 240 images labelled" in stopped.stderr
    assert not out.exists()
    done = _torchrun_cli(*label)
    assert done.stdout.count("240/240 images") == 1  # one summary, from rank 0
    assert "100 from the query log, 140 queried" in done.stdout
    np.testing.assert_allclose(np.load(out), expected, atol=1e-5)
    assert not list(tmp_path.glob("probs.npy.rank*")), "the shards are merged and removed"
    logs = sorted(p.name for p in tmp_path.glob("probs.npy.querylog.rank*"))
    assert logs == ["probs.npy.querylog.rank0-of-2", "probs.npy.querylog.rank1-of-2"]
    again = _torchrun_cli(*label)
    assert "240 from the query log, 0 queried" in again.stdout  # resumed: nothing sent twice
    # One process would not see the two-process logs and would ask again: refused instead.
    teacher = OnnxTeacher(onnx_path)
    with pytest.raises(TeacherError, match="another number of processes"):
        label_dataset_sharded(teacher, images, out)


def test_torchrun_batchnorm_mentor_agrees_across_ranks_and_reuses_its_cache(tmp_path: Path) -> None:
    """BatchNorm statistics are rank 0's on every rank after training, so both ranks hash the
    same mentor, hit the same soft-label cache on a rerun, and nobody waits in a collective."""
    cfg = tiny_config(tmp_path, name="bn")
    cfg["train"].update(epochs=2)
    cfg["mentor"]["model"] = "c-bn-mp-fc-s"
    cfg["students"] = cfg["students"][:1]
    cfg["cache_dir"] = str(tmp_path / "cache")
    path = tmp_path / "bn.yaml"
    path.write_text(yaml.safe_dump(cfg))
    first = _torchrun(path)
    assert "soft labels computed" in first.stdout
    cfg["output_dir"] = str(tmp_path / "rerun")  # a new run, same mentor seed and data: same weights
    path.write_text(yaml.safe_dump(cfg))
    second = _torchrun(path)
    assert "read from cache" in second.stdout


def test_torchrun_runs_the_feed_pipeline_and_mimic(tmp_path: Path) -> None:
    feed = {
        "pipeline": "feed",
        "output_dir": str(tmp_path / "feed"),
        "data": {"name": "npz", "root": str(write_blobs_npz(tmp_path / "blobs.npz"))},
        "model": "c-bn-mp-c-s",
        "model_options": {"conv_channels": 6},
        "train": {"epochs": 2, "batch_size": 32, "lr": 0.05, "device": "cpu"},
        "scratch_seeds": [0, 1],
        "ensemble_students": [{"name": "pFEED (k={k})", "method": "pfeed", "method_options": {"beta": 10.0}}],
        "sequential": [
            {
                "stacks": 3,
                "method": "factor_transfer",
                "method_options": {"beta": 10.0, "paraphraser_epochs": 1},
            }
        ],
    }
    path = tmp_path / "feed.yaml"
    path.write_text(yaml.safe_dump(feed))
    done = _torchrun(path)
    assert done.stdout.count("| sFEED stack 3 | sfeed |") == 1
    out = Path(feed["output_dir"])
    for stage in ("scratch-seed-0", "pfeed-k-2", "sfeed-stack-3"):  # each trained once, by both ranks together
        assert len((out / stage / "metrics.jsonl").read_text().splitlines()) == 2

    # mimic: a trained stage folder as the black box; labelling sharded, students data-parallel.
    run_pipeline(parse_config(_config(tmp_path, "teacher", student_epochs=1)), progress=False)
    data = tmp_path / "blobs.npz"
    done = _torchrun_cli(
        "mimic",
        "--teacher",
        str(tmp_path / "teacher" / "mentor"),
        "--data",
        f"npz:{data}",
        "--student",
        "fc-s",
        "--student-option",
        "fc_units=16",
        "--epochs",
        "2",
        "--batch-size",
        "16",
        "--out",
        str(tmp_path / "mimic"),
        "--no-progress",
    )
    assert "queries sent to the teacher: 320 (240 unlabelled images labelled, 80 test images)" in done.stdout
    results = json.loads((tmp_path / "mimic" / "results.json").read_text())
    assert results["students"][0]["agreement"] >= 0.9
    assert len((tmp_path / "mimic" / "students" / "student" / "metrics.jsonl").read_text().splitlines()) == 2


def test_commands_that_cannot_run_distributed_say_so(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from deepmimic.cli import main

    monkeypatch.setenv("WORLD_SIZE", "2")
    assert main(["models"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: 'deepmimic models' does not run under torchrun") and len(err.splitlines()) == 1


PFEED_WITHOUT_CE = """
import torch
from torch import nn
from deepmimic import distributed
from deepmimic.data.batches import Normalizer, TrainingSet
from deepmimic.engine import TrainSettings, fit
from deepmimic.methods import ParallelFeed
from deepmimic.teachers import EnsembleTeacher, ModuleTeacher

class Net(nn.Module):
    def __init__(self, seed, width=4):
        super().__init__()
        torch.manual_seed(seed)
        self.features = nn.Sequential(nn.Conv2d(1, width, 3, padding=1), nn.ReLU())
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, 4))
    def forward(self, x):
        return self.head(self.features(x))

with distributed.process_group("cpu"):
    images = torch.randint(0, 256, (64, 1, 8, 8), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    teachers = EnsembleTeacher([ModuleTeacher(Net(s, 5), 4, feature_layers=["features"]) for s in (1, 2)])
    method = ParallelFeed(Net(0), teachers, beta=1.0, ce_weight=0.0)  # the head gets no gradient
    settings = TrainSettings(epochs=2, batch_size=16, device="cpu")
    result = fit(method, TrainingSet(images, {}), Normalizer.fit(images), settings, progress=False)
    if distributed.is_main():
        print("FT", [round(r["train_ft"], 6) for r in result.history])
"""


def test_torchrun_trains_a_method_whose_head_gets_no_gradient(tmp_path: Path) -> None:
    """pFEED without its cross-entropy term leaves the student's head without gradients; the
    method says so, and DDP looks for unused parameters instead of failing on step 2."""
    script = tmp_path / "pfeed.py"
    script.write_text(PFEED_WITHOUT_CE)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("WORLD_SIZE", None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", str(script)]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    line = next(x for x in done.stdout.splitlines() if x.startswith("FT "))
    losses = json.loads(line[3:])
    assert len(losses) == 2 and losses[1] < losses[0]


def test_torchrun_label_with_a_predictions_file_is_not_sharded(tmp_path: Path) -> None:
    data = write_blobs_npz(tmp_path / "blobs.npz")
    given = np.random.default_rng(0).random((240, 4)).astype(np.float32) + 0.05
    given /= given.sum(axis=1, keepdims=True)
    np.save(tmp_path / "given.npy", given)
    out = tmp_path / "probs.npy"
    done = _torchrun_cli(
        "label", "--teacher", str(tmp_path / "given.npy"), "--data", f"npz:{data}", "--out", str(out), "--no-progress"
    )
    assert done.stdout.count("240/240 images") == 1
    np.testing.assert_array_equal(np.load(out), given)


@pytest.mark.parametrize("barrier_fails", [False, True])
def test_shutdown_meets_the_other_ranks_before_destroying_the_group(
    monkeypatch: pytest.MonkeyPatch, barrier_fails: bool
) -> None:
    """Ranks leave together (a rank tearing gloo down early aborted the other in CI); a peer that
    already failed (the barrier raises) does not stop this rank from leaving."""
    import torch.distributed as dist

    calls: list[str] = []

    def barrier() -> None:
        calls.append("barrier")
        if barrier_fails:
            raise RuntimeError("peer gone")

    monkeypatch.setattr(dist, "is_initialized", lambda: True)
    monkeypatch.setattr(dist, "barrier", barrier)
    monkeypatch.setattr(dist, "destroy_process_group", lambda: calls.append("destroy"))
    distributed.shutdown()
    assert calls == ["barrier", "destroy"]
