"""Kill a real ``deepmimic run`` with SIGKILL twice, resume it, and get the uninterrupted result bit for bit.

A tiny run (a mentor and one student, several epochs each) is started in a subprocess.
The first SIGKILL lands while the mentor trains, the second (after ``--resume``) while the
student trains: each at a seeded random epoch, found by polling the stage's metrics.jsonl,
plus a seeded random delay within the epoch. A third ``--resume`` finishes the run. The
final weights.safetensors of mentor and student and the accuracies in results.json must
equal those of an uninterrupted run of the same config (run alongside, in its own folder).
Checkpoints are sparse (every 2 epochs), so a resume also retrains the epochs after the last
checkpoint and rewrites their metrics lines.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import yaml

from reliability import builders
from reliability.harness import subprocess_env

EPOCHS = 5
SEED = 12


def _write_inputs(root: Path, out: Path) -> Path:
    images, labels = builders.tiny_arrays(24, seed=0)
    flip = np.random.default_rng(5).random(labels.size) < 0.25  # label noise: accuracies are not all 100%
    labels = np.where(flip, (labels + 1) % builders.K, labels)
    test_images, test_labels = builders.tiny_arrays(8, seed=1)
    np.savez(root / "data.npz", images=images, labels=labels, test_images=test_images, test_labels=test_labels)
    config = {
        "name": "crash",
        "output_dir": str(out),
        "data": {"name": "npz", "root": str(root / "data.npz")},
        "split": {"labeled_fraction": 0.5},
        # A checkpoint every 2 epochs (not by time): a kill resumes from the last even epoch, or
        # (killed in epoch 1 or 2) retrains the stage from its seeded start.
        "train": {
            "batch_size": 8,
            "lr": 0.05,
            "epochs": EPOCHS,
            "device": "cpu",
            "checkpoint_every": 2,
            "checkpoint_seconds": 3600,
        },
        "mentor": {"name": "Mentor", "model": "c:4-mp-fc:16-s", "method": "supervised"},
        "students": [{"name": "Student", "model": "c:4-mp-fc:8-s"}],
    }
    path = root / f"{out.name}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def _start(config: Path, resume: bool, log: Path) -> subprocess.Popen[bytes]:
    env = subprocess_env()
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")  # same arithmetic in every process, less contention
    argv = [sys.executable, "-m", "deepmimic", "run", str(config), "--no-progress", *(["--resume"] if resume else [])]
    with open(log, "ab") as handle:
        return subprocess.Popen(argv, stdout=handle, stderr=subprocess.STDOUT, env=env)


def _lines(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def _kill_at(proc: subprocess.Popen[bytes], metrics: Path, epoch: int, delay: float, deadline: float) -> str:
    """SIGKILL ``proc`` ``delay`` seconds after ``metrics`` holds ``epoch`` lines; returns what happened."""
    while proc.poll() is None and _lines(metrics) < epoch:
        assert time.monotonic() < deadline, "the run did not reach the kill point in time"
        time.sleep(0.005)
    if proc.poll() is not None:
        return f"finished before epoch {epoch} of {metrics.parent.name} (exit {proc.returncode})"
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return f"killed {delay * 1000:.0f} ms after epoch {epoch} of {metrics.parent.name} appeared"


def test_two_sigkills_and_resumes_give_the_uninterrupted_result(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    baseline_cfg = _write_inputs(tmp_path, tmp_path / "baseline")
    crashed_cfg = _write_inputs(tmp_path, tmp_path / "crashed")
    log = tmp_path / "crashed.log"
    deadline = time.monotonic() + 120

    procs: list[subprocess.Popen[bytes]] = []
    baseline = _start(baseline_cfg, resume=False, log=tmp_path / "baseline.log")  # runs alongside the crashed one
    procs.append(baseline)
    try:
        first = _start(crashed_cfg, resume=False, log=log)
        procs.append(first)
        what = [
            _kill_at(
                first,
                tmp_path / "crashed" / "mentor" / "metrics.jsonl",
                rng.randint(1, EPOCHS - 1),
                rng.uniform(0, 0.15),
                deadline,
            )
        ]
        second = _start(crashed_cfg, resume=True, log=log)
        procs.append(second)
        what.append(
            _kill_at(
                second,
                tmp_path / "crashed" / "students" / "student" / "metrics.jsonl",
                rng.randint(1, EPOCHS - 1),
                rng.uniform(0, 0.15),
                deadline,
            )
        )
        third = _start(crashed_cfg, resume=True, log=log)
        procs.append(third)
        assert third.wait(timeout=max(1.0, deadline - time.monotonic())) == 0, f"{what}\n{log.read_text()[-3000:]}"
        assert baseline.wait(timeout=max(1.0, deadline - time.monotonic())) == 0, (
            tmp_path / "baseline.log"
        ).read_text()[-3000:]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    for stage in ("mentor", "students/student"):
        expected = (tmp_path / "baseline" / stage / "weights.safetensors").read_bytes()
        got = (tmp_path / "crashed" / stage / "weights.safetensors").read_bytes()
        assert got == expected, f"{stage}: weights differ from the uninterrupted run ({what})"
    ours = json.loads((tmp_path / "crashed" / "results.json").read_text())
    theirs = json.loads((tmp_path / "baseline" / "results.json").read_text())
    assert ours["mentor"]["accuracy"] == theirs["mentor"]["accuracy"], what
    assert [s["accuracy"] for s in ours["students"]] == [s["accuracy"] for s in theirs["students"]], what
    assert (
        ours["mentor"]["loss"] == theirs["mentor"]["loss"]
        and ours["students"][0]["loss"] == theirs["students"][0]["loss"]
    ), what
    for stage in ("mentor", "students/student"):
        assert _lines(tmp_path / "crashed" / stage / "metrics.jsonl") == EPOCHS, (
            f"{stage}: metrics.jsonl should hold one line per epoch"
        )
    print("kill points:", what)
