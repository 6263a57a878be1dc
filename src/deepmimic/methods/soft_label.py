"""DeepMimic soft-label training (DeepMimic paper, section 3.2).

The student is trained on the mentor's softmax outputs p_t for unlabelled images with
the cross-entropy between distributions:

    L = - (1/B) sum_i sum_k p_t[i, k] * log softmax(z_s[i] / T)[k]   (* T^2 when T != 1)

At T = 1 (the paper's setting) this is the plain soft cross-entropy. With T != 1 the
teacher's probabilities are re-tempered as softmax(log p_t / T) and the loss is scaled by
T^2 so gradient magnitudes stay comparable (Hinton et al., 2015). Only probabilities are
needed, so a cached or black-box teacher serves. The loss is
:func:`deepmimic.methods.losses.soft_cross_entropy`.
"""

from __future__ import annotations

from typing import ClassVar

import torch

from deepmimic.data.batches import Batch
from deepmimic.methods.base import Method, check_option
from deepmimic.methods.losses import soft_cross_entropy
from deepmimic.teachers.base import Teacher


class SoftLabel(Method):
    """Train the student on its teacher's soft labels; no ground-truth labels used."""

    needs: ClassVar[frozenset[str]] = frozenset({"probs"})

    def __init__(self, student: torch.nn.Module, teacher: Teacher | None = None, *, temperature: float = 1.0) -> None:
        super().__init__(student, teacher)
        check_option("soft_label", "temperature", temperature, above=0)
        self.temperature = temperature

    def losses(self, batch: Batch) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            target = self.ask_teacher(batch).probs
        return {"soft_ce": soft_cross_entropy(self.student(batch.x), target, self.temperature)}
