"""bench/teacher_on_views.py on generated data and a TorchScript teacher whose answer is known."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from bench_scripts import load_bench
from pipeline_configs import write_blobs_npz


class AlwaysClass(nn.Module):
    """Answers ``index`` of ``classes`` for every image, with probability about 0.9999."""

    def __init__(self, classes: int, index: int) -> None:
        super().__init__()
        logits = torch.zeros(classes)
        logits[index] = 10.0
        self.register_buffer("logits", logits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits.expand(x.shape[0], -1) + 0.0 * x.mean()


def test_a_constant_teacher_scores_its_class_share_on_plain_and_augmented_views(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bench = load_bench("teacher_on_views")
    data = write_blobs_npz(tmp_path / "blobs.npz")  # 4 balanced classes, 240 training images
    teacher = tmp_path / "always0.ts"
    torch.jit.save(torch.jit.script(AlwaysClass(4, 0)), str(teacher))
    sizes = ["--rows", "240", "--fit-rows", "240"]
    assert bench.main([f"npz:{data}", str(teacher), "--option", "in_shape=1,8,8", *sizes]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].strip().startswith("none: accuracy 25.00%, mean top probability 0.99")
    assert lines[1].startswith("crop-flip: accuracy 25.00%, mean top probability 0.99")


def test_a_missing_teacher_file_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bench = load_bench("teacher_on_views")
    data = write_blobs_npz(tmp_path / "blobs.npz")
    assert bench.main([f"npz:{data}", str(tmp_path / "missing.pt")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and len(err.splitlines()) == 1
