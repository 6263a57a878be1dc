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
    """Per-epoch schedule: constant, step (x gamma every step_size epochs), multistep (x gamma
    at each milestone, a fraction of the run) or cosine to 0; optionally after a linear warm-up.

    With ``warmup_epochs`` W the first W epochs run at lr * (e + 1) / (W + 1) (e = 0..W-1);
    the schedule then starts at the full lr and spans the remaining epochs (a multistep
    schedule keeps its milestones at the same epochs of the whole run).
    """
    warmup = min(settings.warmup_epochs, max(settings.epochs - 1, 0))
    main = _main_schedule(optimizer, settings, warmup)
    if warmup == 0:
        return main
    ramp = torch.optim.lr_scheduler.LinearLR(
        optimizer, start_factor=1.0 / (warmup + 1), end_factor=1.0, total_iters=warmup
    )
    return torch.optim.lr_scheduler.SequentialLR(optimizer, [ramp, main], milestones=[warmup])


def _main_schedule(
    optimizer: torch.optim.Optimizer, settings: TrainSettings, warmup: int
) -> torch.optim.lr_scheduler.LRScheduler:
    if settings.schedule == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=settings.step_size, gamma=settings.gamma)
    if settings.schedule == "multistep":
        milestones = [m - warmup for m in settings.milestone_epochs() if m > warmup]
        return torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=milestones, gamma=settings.gamma)
    if settings.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(settings.epochs - warmup, 1))
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda=lambda _epoch: 1.0)


def resolve_device(name: str) -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; anything else as given.

    Under torchrun with NCCL, "auto"/"cuda" mean this rank's own GPU (``cuda:LOCAL_RANK``).
    """
    return distributed.resolve_rank_device(name)
