"""Test helper: every answer of a black-box teacher at once (no query log, no budget)."""

from __future__ import annotations

import torch

from deepmimic.labelling.black_box import run_labeler
from deepmimic.teachers.blackbox import ImageLabeler


def label_all(
    labeler: ImageLabeler, images: torch.Tensor, batch_size: int = 256, progress: bool | None = False
) -> torch.Tensor:
    """Probabilities (N, K) float32 of ``labeler`` for every row of uint8 ``images`` (N, C, H, W),
    via :func:`run_labeler`."""
    probs = torch.empty(images.shape[0], labeler.num_classes, dtype=torch.float32)  # (N, K)

    def store(rows: torch.Tensor, answer: torch.Tensor) -> None:
        probs[rows] = answer

    run_labeler(labeler, images, batch_size=batch_size, on_batch=store, progress=progress)
    return probs
