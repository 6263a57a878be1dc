"""DeepMimic Figs. 6-7: picking and drawing test images both got right / only the mentor got right."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from deepmimic.errors import DataError
from deepmimic.eval.examples import pick_examples, save_examples
from deepmimic.report.examples import examples_png, load_examples


def test_pick_examples_respects_each_kind_and_the_limit() -> None:
    labels = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    mentor = torch.tensor([0, 1, 2, 0, 1, 0, 0, 1])  # wrong at row 5
    student = torch.tensor([0, 2, 2, 1, 1, 2, 0, 0])  # wrong at rows 1, 3, 7
    picked = pick_examples(labels, mentor, student, limit=2)
    assert set(picked["both_right"].tolist()) <= {0, 2, 4, 6} and len(picked["both_right"]) == 2
    assert set(picked["mentor_only"].tolist()) <= {1, 3, 7} and len(picked["mentor_only"]) == 2
    assert pick_examples(labels, mentor, student, limit=10)["mentor_only"].tolist() == [1, 3, 7]


@pytest.mark.parametrize("channels", [1, 3])
def test_saved_examples_load_back_and_draw(tmp_path: Path, channels: int) -> None:
    images = torch.randint(0, 256, (8, channels, 6, 6), dtype=torch.uint8)
    labels = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    mentor = labels.clone()
    student = torch.tensor([0, 2, 2, 1, 1, 2, 0, 0])
    save_examples(
        tmp_path / "examples.npz",
        images,
        labels,
        mentor,
        {"Student-A": (student, pick_examples(labels, mentor, student))},
    )
    examples = load_examples(tmp_path)
    assert examples is not None
    stored = examples.students[0]
    rows = examples.rows[stored.mentor_only]
    assert rows.tolist() == [1, 3, 7]
    assert np.array_equal(examples.images[stored.mentor_only], images[[1, 3, 7]].numpy())
    png = examples_png(examples, ("cat", "dog", "car"))
    assert png is not None and png[:8] == b"\x89PNG\r\n\x1a\n"


def test_missing_and_corrupt_examples(tmp_path: Path) -> None:
    assert load_examples(tmp_path) is None
    (tmp_path / "examples.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="unreadable examples file"):
        load_examples(tmp_path)
