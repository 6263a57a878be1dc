"""The Teacher contract: what a student learns from.

A teacher answers for a batch of inputs and says what it can give. Inputs are the
normalised float batches (B, C, H, W) that the student sees, so white-box teachers can
be differentiated with respect to them; ``index`` (B,) gives the rows of the training
set, which cached teachers use to look their answers up.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch

from deepmimic.errors import TeacherError

PROVIDABLE = frozenset({"probs", "logits", "features", "input_grad"})


@dataclass(frozen=True)
class TeacherOutput:
    """A teacher's answer for one batch.

    probs (B, K); logits (B, K) when known; features: intermediate feature maps by name,
    e.g. ``{"layer3": (B, C, H, W)}``, for teachers that provide ``features``.
    """

    probs: torch.Tensor
    logits: torch.Tensor | None = None
    features: dict[str, torch.Tensor] | None = None


@runtime_checkable
class Teacher(Protocol):
    """Anything that maps a batch to class probabilities.

    ``provides`` names what it can give: ``probs`` always; ``logits`` when it exposes raw
    scores; ``input_grad`` when its outputs are differentiable with respect to ``x``.
    """

    provides: frozenset[str]
    num_classes: int

    def predict(self, x: torch.Tensor, index: torch.Tensor | None = None) -> TeacherOutput: ...

    def to(self, device: torch.device) -> Teacher: ...


def describe_teacher(teacher: object) -> str:
    """A short name for messages, e.g. ``CachedTeacher (provides probs)``."""
    provides = ", ".join(sorted(getattr(teacher, "provides", ()))) or "nothing"
    return f"{type(teacher).__name__} (provides {provides})"


def validate_probs(probs: torch.Tensor, num_classes: int, source: str, atol: float = 1e-3) -> torch.Tensor:
    """Check a teacher's probabilities: shape (N, K), finite, non-negative, rows sum to 1.

    Returns ``probs`` as float32; raises TeacherError naming ``source`` otherwise.
    """
    if probs.dim() != 2 or probs.shape[1] != num_classes:
        raise TeacherError(f"{source}: expected probabilities of shape (N, {num_classes}), got {tuple(probs.shape)}")
    probs = probs.float()
    if not torch.isfinite(probs).all():
        raise TeacherError(f"{source}: probabilities contain NaN or infinity")
    if (probs < 0).any():
        raise TeacherError(f"{source}: probabilities contain negative values")
    worst = (probs.sum(dim=1) - 1).abs().max().item() if probs.numel() else 0.0
    if worst > atol:
        raise TeacherError(f"{source}: probability rows must sum to 1 (worst row is off by {worst:.3g})")
    return probs
