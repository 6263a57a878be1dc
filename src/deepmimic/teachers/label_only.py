"""Label-only mode: the defended setting where an API returns only the top class.

A student can still mimic such a teacher, from hard labels; these helpers turn any
teacher's probabilities into one-hot top-1 targets so the setting can be studied (or
reproduced exactly when the real API answers with classes).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from deepmimic.teachers.blackbox import ImageLabeler


def one_hot_top1(probs: torch.Tensor) -> torch.Tensor:
    """probs (B, K) -> float32 (B, K) with 1 at each row's top class, 0 elsewhere.

    Ties go to the lowest class index (``argmax``'s choice).
    """
    if probs.dim() != 2:
        raise ValueError(f"expected probabilities (B, K), got shape {tuple(probs.shape)}")
    top = probs.argmax(dim=1) if probs.shape[0] else torch.empty(0, dtype=torch.int64)  # (B,)
    return torch.nn.functional.one_hot(top, num_classes=probs.shape[1]).to(torch.float32)


class LabelOnlyTeacher:
    """Wraps an :class:`ImageLabeler` and answers with one-hot top-1 targets (B, K).

    Concurrency, budget and answering by row are those of the wrapped labeler.
    """

    def __init__(self, inner: ImageLabeler) -> None:
        self.inner = inner
        self.num_classes = inner.num_classes
        self.source = f"{inner.source} (label only)"
        self.identity = f"{getattr(inner, 'identity', inner.source)} (label only)"
        inner_rows = getattr(inner, "label_rows", None)
        if callable(inner_rows):  # answer by row too, like the wrapped labeler
            self.label_rows: Callable[[torch.Tensor], torch.Tensor] = lambda rows: one_hot_top1(inner_rows(rows))

    @property
    def concurrency(self) -> int:
        value = getattr(self.inner, "concurrency", 1)
        return value if isinstance(value, int) else 1

    @property
    def budget(self) -> int | None:
        return getattr(self.inner, "budget", None)

    def label_batch(self, images: torch.Tensor) -> torch.Tensor:
        """One-hot (B, K) float32 of the wrapped labeler's top class for uint8 images (B, C, H, W)."""
        return one_hot_top1(self.inner.label_batch(images))

    def close(self) -> None:
        close = getattr(self.inner, "close", None)
        if callable(close):
            close()
