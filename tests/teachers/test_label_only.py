"""Label-only mode: one-hot top-1 targets from any teacher."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from black_box_answers import label_all
from deepmimic.teachers.label_only import LabelOnlyTeacher, one_hot_top1
from deepmimic.teachers.spec import open_teacher


class SoftLabeler:
    """Probabilities from the mean pixel: a deterministic fake black box (K = 3)."""

    num_classes = 3
    source = "soft"
    concurrency = 2
    budget = 7

    def label_batch(self, images: torch.Tensor) -> torch.Tensor:
        m = images.float().mean(dim=(1, 2, 3)) / 255  # (B,)
        return torch.softmax(torch.stack([m, 1 - m, 0.5 * torch.ones_like(m)], dim=1) * 10, dim=1)


def test_one_hot_top1() -> None:
    p = torch.tensor([[0.2, 0.5, 0.3], [0.6, 0.1, 0.3], [0.4, 0.4, 0.2]])
    expected = torch.tensor([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [1.0, 0.0, 0.0]])  # a tie goes to the lowest class
    out = one_hot_top1(p)
    assert out.dtype == torch.float32 and torch.equal(out, expected)
    assert one_hot_top1(torch.empty(0, 4)).shape == (0, 4)


def test_wrapper_answers_with_the_inner_top_class() -> None:
    inner = SoftLabeler()
    teacher = LabelOnlyTeacher(inner)
    assert teacher.source == "soft (label only)" and teacher.num_classes == 3
    assert teacher.concurrency == 2 and teacher.budget == 7 and not hasattr(teacher, "label_rows")
    images = torch.randint(0, 256, (9, 1, 2, 2), generator=torch.Generator().manual_seed(0), dtype=torch.int64).to(
        torch.uint8
    )
    out = label_all(teacher, images, batch_size=4, progress=False)
    assert torch.equal(out.argmax(dim=1), inner.label_batch(images).argmax(dim=1))
    assert torch.equal(out.sum(dim=1), torch.ones(9)) and set(out.unique().tolist()) == {0.0, 1.0}


def test_label_only_option_wraps_any_teacher_and_keeps_rows(tmp_path: Path) -> None:
    p = np.array([[0.1, 0.9], [0.7, 0.3], [0.5, 0.5]], dtype=np.float32)
    np.save(tmp_path / "p.npy", p)
    teacher = open_teacher(str(tmp_path / "p.npy"), {"label_only": "true"})
    assert isinstance(teacher, LabelOnlyTeacher)
    assert torch.equal(teacher.label_rows(torch.tensor([0, 1, 2])), torch.tensor([[0.0, 1.0], [1.0, 0.0], [1.0, 0.0]]))
    assert not isinstance(open_teacher(str(tmp_path / "p.npy"), {"label_only": "false"}), LabelOnlyTeacher)
