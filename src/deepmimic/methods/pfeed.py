"""Parallel FEED (FEED paper section 4, eqs. 4-5).

k teachers, one translator each, and no paraphrasers: the teachers' raw feature maps
are the targets.

    L_student = CE(z_s, y) + beta * sum_{n=1..k} L_FT(F_T^n, T_n(F_S))

The k teachers are the members of an :class:`~deepmimic.teachers.EnsembleTeacher` whose
members provide ``features``; with k = 1 this is factor transfer without a paraphraser.
"""

from __future__ import annotations

from torch import nn

from deepmimic.methods.factor_transfer import FactorTransfer
from deepmimic.teachers.base import Teacher


class ParallelFeed(FactorTransfer):
    """Factor transfer from every teacher's raw feature map at once (no paraphraser)."""

    def __init__(
        self,
        student: nn.Module,
        teacher: Teacher | None = None,
        *,
        beta: float = 500.0,
        p: int = 1,
        student_layer: str | None = None,
        ce_weight: float = 1.0,
        reduction: str = "mean",
    ) -> None:
        super().__init__(
            student,
            teacher,
            beta=beta,
            p=p,
            paraphraser=False,
            student_layer=student_layer,
            ce_weight=ce_weight,
            reduction=reduction,
        )
