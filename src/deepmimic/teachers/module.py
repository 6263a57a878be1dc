"""A white-box teacher: a frozen PyTorch module in eval mode."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from deepmimic.models.features import FeatureCapture
from deepmimic.teachers.base import TeacherOutput


class ModuleTeacher:
    """Wraps a trained ``nn.Module`` that returns logits (B, K).

    The module is put in eval mode and its parameters are frozen (requires_grad=False),
    so no optimiser can touch it and no gradient accumulates in it; its outputs stay
    differentiable with respect to the input (for the derivative loss). With
    ``feature_layers`` it also returns those modules' outputs (forward hooks, no edits to
    the model) and provides ``features``.
    """

    def __init__(self, module: nn.Module, num_classes: int, feature_layers: Sequence[str] = ()) -> None:
        self.module = module.eval()
        for parameter in self.module.parameters():
            parameter.requires_grad_(False)
        self.num_classes = num_classes
        self.feature_layers = tuple(feature_layers)
        self._capture = FeatureCapture(self.module, self.feature_layers) if self.feature_layers else None
        self.provides = frozenset({"probs", "logits", "input_grad"} | ({"features"} if self.feature_layers else set()))

    def predict(self, x: torch.Tensor, index: torch.Tensor | None = None) -> TeacherOutput:
        self.module.eval()  # a caller's .train() elsewhere must never put the teacher in training mode
        logits = self.module(x)
        features = {name: self._capture[name] for name in self.feature_layers} if self._capture else None
        return TeacherOutput(probs=torch.softmax(logits.float(), dim=1), logits=logits, features=features)

    def to(self, device: torch.device) -> ModuleTeacher:
        self.module.to(device)
        return self

    def compile(self) -> None:
        """torch.compile the module in place (``TrainSettings.compile_teacher``)."""
        self.module.compile()
