"""Supervised cross-entropy on ground-truth labels: how the mentor is trained
(DeepMimic paper, section 3.2: "SGD algorithm and the cross-entropy loss")."""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F

from deepmimic.data.batches import Batch
from deepmimic.methods.base import Method
from deepmimic.teachers.base import Teacher


class Supervised(Method):
    """loss = CE(student(x), y), with optional label smoothing. Needs no teacher."""

    uses_labels: ClassVar[bool] = True

    def __init__(
        self, student: torch.nn.Module, teacher: Teacher | None = None, *, label_smoothing: float = 0.0
    ) -> None:
        super().__init__(student, teacher)
        self.label_smoothing = label_smoothing

    def losses(self, batch: Batch) -> dict[str, torch.Tensor]:
        logits = self.student(batch.x)  # (B, K)
        return {"ce": F.cross_entropy(logits, batch.targets["labels"], label_smoothing=self.label_smoothing)}
