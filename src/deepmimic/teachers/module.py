"""A white-box teacher: a frozen PyTorch module in eval mode."""

from __future__ import annotations

import torch
from torch import nn

from deepmimic.teachers.base import TeacherOutput


class ModuleTeacher:
    """Wraps a trained ``nn.Module`` that returns logits (B, K).

    The module is put in eval mode and its parameters are frozen (requires_grad=False),
    so no optimiser can touch it and no gradient accumulates in it; its outputs stay
    differentiable with respect to the input (for the derivative loss).
    """

    provides = frozenset({"probs", "logits", "input_grad"})

    def __init__(self, module: nn.Module, num_classes: int) -> None:
        self.module = module.eval()
        for parameter in self.module.parameters():
            parameter.requires_grad_(False)
        self.num_classes = num_classes

    def predict(self, x: torch.Tensor, index: torch.Tensor | None = None) -> TeacherOutput:
        self.module.eval()  # a caller's .train() elsewhere must never put the teacher in training mode
        logits = self.module(x)
        return TeacherOutput(probs=torch.softmax(logits.float(), dim=1), logits=logits)

    def to(self, device: torch.device) -> ModuleTeacher:
        self.module.to(device)
        return self
