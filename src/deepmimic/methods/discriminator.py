"""The imitation game's conditional discriminator D(output | y)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ConditionalDiscriminator(nn.Module):
    """MLP scoring whether a K-vector (logits or softened probabilities) came from the teacher.

    The condition y (B,) is a class index, embedded one-hot and concatenated to the input,
    so D judges "is this what the teacher outputs for class y". Returns raw scores (B,).
    """

    def __init__(self, num_classes: int, hidden: int = 128) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.net = nn.Sequential(
            nn.Linear(2 * num_classes, hidden),
            nn.LeakyReLU(0.2),
            nn.Linear(hidden, hidden),
            nn.LeakyReLU(0.2),
            nn.Linear(hidden, 1),
        )

    def forward(self, output: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        y = F.one_hot(condition, self.num_classes).to(output.dtype)  # (B, K)
        return self.net(torch.cat([output, y], dim=1)).squeeze(1)  # (B,)
