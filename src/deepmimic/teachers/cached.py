"""A teacher backed by precomputed probabilities (the soft-label cache, a predictions file).

DeepMimic labels the unlabelled set once (section 3.2); a student epoch then reads its
targets by row instead of running the mentor, so it costs what a supervised epoch costs.
"""

from __future__ import annotations

import torch

from deepmimic.errors import TeacherError
from deepmimic.teachers.base import TeacherOutput, validate_probs


class CachedTeacher:
    """Answers with stored probabilities (N, K) looked up by training-set row index."""

    provides = frozenset({"probs"})

    def __init__(self, probs: torch.Tensor, source: str = "cached predictions") -> None:
        self.probs = validate_probs(probs, probs.shape[1] if probs.dim() == 2 else -1, source)
        self.num_classes = int(self.probs.shape[1])
        self.source = source

    def predict(self, x: torch.Tensor, index: torch.Tensor | None = None) -> TeacherOutput:
        if index is None:
            raise TeacherError(f"{self.source}: a cached teacher answers by row index and got none")
        return TeacherOutput(probs=self.probs[index.to(self.probs.device)])

    def to(self, device: torch.device) -> CachedTeacher:
        self.probs = self.probs.to(device)
        return self
