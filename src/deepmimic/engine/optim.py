"""Optimisers and learning-rate schedules built from :class:`TrainSettings`."""

from __future__ import annotations

from collections.abc import Iterable

import torch

from deepmimic import distributed
from deepmimic.engine.settings import TrainSettings


def build_optimizer(params: Iterable[torch.nn.Parameter], settings: TrainSettings) -> torch.optim.Optimizer:
    """SGD with momentum (the paper's choice) or Adam, with weight decay."""
    params = [p for p in params if p.requires_grad]
    if settings.optimizer == "adam":
        return torch.optim.Adam(params, lr=settings.lr, weight_decay=settings.weight_decay)
    return torch.optim.SGD(
        params,
        lr=settings.lr,
        momentum=settings.momentum,
        nesterov=settings.nesterov and settings.momentum > 0,
        weight_decay=settings.weight_decay,
    )


def build_scheduler(optimizer: torch.optim.Optimizer, settings: TrainSettings) -> torch.optim.lr_scheduler.LRScheduler:
    """Per-epoch schedule: constant, step (x gamma every step_size epochs) or cosine to 0."""
    if settings.schedule == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=settings.step_size, gamma=settings.gamma)
    if settings.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=settings.epochs)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda=lambda _epoch: 1.0)


def resolve_device(name: str) -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; anything else as given.

    Under torchrun with NCCL, "auto"/"cuda" mean this rank's own GPU (``cuda:LOCAL_RANK``).
    """
    return distributed.resolve_rank_device(name)
