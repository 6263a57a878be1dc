"""The imitation game's conditional discriminator D(output | y)."""

from __future__ import annotations

import torch
from torch import nn


class ConditionalDiscriminator(nn.Module):
    """Scores whether a K-vector (logits or softened probabilities) came from the teacher, given class y.

    A projection discriminator (Miyato and Koyama, 2018): an MLP embeds the output into
    features h (B, H), and the score is ``w . h + e_y . h`` with a learned embedding e_y per
    class. The inner product makes "does this output fit class y" the easy thing for D to
    learn; a plain concatenation of a one-hot y let D separate teacher from student by
    marginal statistics alone, and the student then learnt nothing (measured: chance accuracy
    on MNIST). Returns raw scores (B,).

    ``class_head=True`` adds a K-way classifier on the same features h, as the paper's
    Algorithm 1 has the adversary answer ``isStud, y_pred`` (an auxiliary-classifier GAN,
    Odena et al., 2017): :meth:`score_and_class` returns both.
    """

    def __init__(self, num_classes: int, hidden: int = 128, *, class_head: bool = False) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.features = nn.Sequential(
            nn.Linear(num_classes, hidden),
            nn.LeakyReLU(0.2),
            nn.Linear(hidden, hidden),
            nn.LeakyReLU(0.2),
        )
        self.score = nn.Linear(hidden, 1)
        self.class_embedding = nn.Embedding(num_classes, hidden)
        self.class_head = nn.Linear(hidden, num_classes) if class_head else None

    def forward(self, output: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        return self.score_and_class(output, condition)[0]

    def score_and_class(
        self, output: torch.Tensor, condition: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Raw real/fake scores (B,) and, with a class head, class logits (B, K); else None."""
        h = self.features(output)  # (B, H)
        score = self.score(h).squeeze(1) + (self.class_embedding(condition) * h).sum(dim=1)  # (B,)
        return score, (self.class_head(h) if self.class_head is not None else None)
