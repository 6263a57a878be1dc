"""Test images to look at: where mentor and student agree, and where only the mentor is right.

DeepMimic paper, Fig. 6 ("images successfully classified by both Mentor and Student-A")
and Fig. 7 ("classified successfully by Mentor, but incorrectly by Student-A"). The
pipeline picks a few of each per student and saves them with the run, so a report can
show them later without the dataset.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from deepmimic.io_utils import atomic_open

EXAMPLES_FILE = "examples.npz"


def pick_examples(
    labels: torch.Tensor, mentor_pred: torch.Tensor, student_pred: torch.Tensor, limit: int = 8, seed: int = 0
) -> dict[str, torch.Tensor]:
    """Up to ``limit`` test rows of each kind, drawn at random with ``seed``.

    All inputs are (N,) int64 over the same test set. Returns ``{"both_right": rows,
    "mentor_only": rows}``: rows where both are right (Fig. 6) and where the mentor is
    right and the student wrong (Fig. 7), each sorted, int64.
    """
    mentor_right = mentor_pred == labels
    student_right = student_pred == labels
    generator = torch.Generator().manual_seed(seed)
    picked = {}
    for kind, mask in (("both_right", mentor_right & student_right), ("mentor_only", mentor_right & ~student_right)):
        rows = torch.nonzero(mask).flatten()
        order = torch.randperm(len(rows), generator=generator)[:limit]
        picked[kind] = rows[order].sort().values
    return picked


def save_examples(
    path: Path,
    images: torch.Tensor,
    labels: torch.Tensor,
    mentor_pred: torch.Tensor,
    students: dict[str, tuple[torch.Tensor, dict[str, torch.Tensor]]],
) -> None:
    """Write the picked images with their labels and predictions to ``path`` (npz, atomically).

    ``images`` (N, C, H, W) uint8, ``labels`` and ``mentor_pred`` (N,) cover the whole test
    set; ``students`` maps a student's name to (its predictions (N,), its picked rows from
    :func:`pick_examples`). Only the picked rows are stored: ``rows`` (M,) test-set rows,
    ``images`` (M, C, H, W), ``labels`` / ``mentor_pred`` (M,), ``names`` (S,) student names
    and, for student ``i``, ``pred_i`` (M,), ``both_right_i`` / ``mentor_only_i`` (positions
    into ``rows``).
    """
    union = sorted({int(r) for _, picked in students.values() for rows in picked.values() for r in rows})
    rows = torch.tensor(union, dtype=torch.long)
    position = {row: i for i, row in enumerate(union)}
    arrays: dict[str, np.ndarray] = {
        "rows": rows.numpy(),
        "images": images[rows].numpy().astype(np.uint8),
        "labels": labels[rows].numpy(),
        "mentor_pred": mentor_pred[rows].numpy(),
        "names": np.array(list(students), dtype=str),
    }
    for i, (pred, picked) in enumerate(students.values()):
        arrays[f"pred_{i}"] = pred[rows].numpy()
        for kind, chosen in picked.items():
            arrays[f"{kind}_{i}"] = np.array([position[int(r)] for r in chosen], dtype=np.int64)
    with atomic_open(path, "wb") as handle:
        np.savez_compressed(handle, **arrays)
