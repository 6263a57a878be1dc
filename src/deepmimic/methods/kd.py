"""Hinton knowledge distillation (Hinton, Vinyals and Dean, 2015).

    L = T^2 * KL(p_t^T || p_s^T) + alpha * CE(z_s, y)

with p^T = softmax(z / T). The teacher's tempered distribution is computed from its
probabilities as softmax(log p_t / T), so a probabilities-only teacher serves (the soft
term is :func:`deepmimic.methods.losses.kd_loss`).

The hard-label term is off by default (``alpha = 0``): the label-free setting, in which a
DeepMimic student distils its mentor without ever seeing a label. With ``alpha > 0`` the
batches must carry labels; the FEED configs set ``alpha: 1.0`` explicitly for the paper's
KD-from-the-ensemble baseline (Table 4), which trains on the labelled set.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from deepmimic.data.batches import Batch
from deepmimic.methods.base import Method, check_option
from deepmimic.methods.losses import kd_loss
from deepmimic.teachers.base import Teacher


class KnowledgeDistillation(Method):
    """Soft KD term at temperature T, plus an optional hard-label term weighted by alpha."""

    needs = frozenset({"probs"})

    def __init__(
        self, student: torch.nn.Module, teacher: Teacher | None = None, *, temperature: float = 4.0, alpha: float = 0.0
    ) -> None:
        check_option("kd", "temperature", temperature, above=0)
        check_option("kd", "alpha", alpha, at_least=0)
        super().__init__(student, teacher)
        self.temperature = temperature
        self.alpha = alpha

    def labels_required(self) -> bool:
        return self.alpha > 0

    def losses(self, batch: Batch) -> dict[str, torch.Tensor]:
        logits = self.student(batch.x)
        with torch.no_grad():
            target = self.ask_teacher(batch).probs
        out = {"kd": kd_loss(logits, target, self.temperature)}
        if self.alpha > 0:
            out["ce"] = self.alpha * F.cross_entropy(logits, batch.targets["labels"])
        return out
