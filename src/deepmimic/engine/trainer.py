"""The one training loop, for every method.

The loop slices batches from in-memory tensors, asks the method for named losses,
sums them, steps the optimiser and scheduler, evaluates on the test set, appends one
JSON line per epoch to ``metrics.jsonl`` and writes an atomic checkpoint per epoch.
It never branches on which method it runs.

Determinism: epoch ``e`` seeds torch's global RNG (dropout) and the batch generator
(shuffling, augmentation) from ``(seed, e)`` alone, so a run resumed from the
checkpoint of epoch ``e`` replays epochs ``e+1..`` exactly as an uninterrupted run.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from deepmimic.data.batches import Normalizer, TrainingSet, iterate_batches
from deepmimic.data.dataset import ImageDataset
from deepmimic.engine.checkpoint import load_checkpoint, save_checkpoint, save_weights
from deepmimic.engine.optim import build_optimizer, build_scheduler, resolve_device
from deepmimic.engine.progress import EpochProgress, print_epoch_line
from deepmimic.engine.settings import TrainSettings
from deepmimic.errors import TeacherError, TrainingError
from deepmimic.eval.metrics import evaluate
from deepmimic.io_utils import atomic_open
from deepmimic.methods.base import Method

CHECKPOINT_NAME = "checkpoint.pt"
METRICS_NAME = "metrics.jsonl"
WEIGHTS_NAME = "weights.safetensors"

# Settings that may change between a run and its resumption without breaking equivalence.
_RESUMABLE_CHANGES = {"epochs", "device", "eval_batch_size", "eval_every"}


@dataclass
class FitResult:
    """What :func:`fit` returns: per-epoch history and the final epoch's record."""

    history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def final(self) -> dict[str, Any]:
        return self.history[-1] if self.history else {}


def epoch_seed(seed: int, epoch: int) -> int:
    """A distinct, reproducible 63-bit seed for each (run seed, epoch)."""
    return (seed * 1_000_003 + epoch * 7919 + 1) % (2**63 - 1)


def check_targets(method: Method, data: TrainingSet) -> None:
    """Fail early when a method needs ground-truth labels and the training set has none."""
    if method.labels_required() and "labels" not in data.targets:
        raise TeacherError(
            f"method {type(method).__name__} as configured needs ground-truth labels, "
            f"but the training set '{data.name}' is unlabelled"
        )


def fit(
    method: Method,
    train: TrainingSet,
    normalizer: Normalizer,
    settings: TrainSettings,
    *,
    test: ImageDataset | None = None,
    run_dir: Path | None = None,
    resume: bool = False,
    label: str = "train",
    progress: bool | None = None,
) -> FitResult:
    """Train ``method`` (and so ``method.student``) on ``train`` for ``settings.epochs``.

    With ``run_dir``, writes ``metrics.jsonl``, ``checkpoint.pt`` (every epoch) and the
    student's final ``weights.safetensors`` there; ``resume=True`` continues from the
    checkpoint found in ``run_dir`` (a finished run returns its history at once).
    """
    check_targets(method, train)
    device = resolve_device(settings.device)
    method.to_device(device)
    resuming = resume and run_dir is not None and (run_dir / CHECKPOINT_NAME).exists()
    torch.manual_seed(epoch_seed(settings.seed, 0))  # modules a setup stage creates get seeded weights
    method.setup(train, normalizer, device, settings.batch_size, pretrain=not resuming)
    optimizer = build_optimizer(method.optimized_parameters(), settings)
    scheduler = build_scheduler(optimizer, settings)
    result = FitResult()
    start_epoch = 0
    if run_dir is not None:
        run_dir.mkdir(parents=True, exist_ok=True)
        if resuming:
            start_epoch = _restore(run_dir, method, optimizer, scheduler, settings, result)
        _rewrite_metrics(run_dir, result.history)

    for epoch in range(start_epoch + 1, settings.epochs + 1):
        record = _train_one_epoch(method, train, normalizer, settings, optimizer, device, epoch, label, progress)
        scheduler.step()
        if test is not None and (epoch % settings.eval_every == 0 or epoch == settings.epochs):
            ev = evaluate(method.student, test.images, test.labels, normalizer, device, settings.eval_batch_size)
            record.update(test_loss=ev.loss, test_accuracy=ev.accuracy)
        result.history.append(record)
        print_epoch_line(label, epoch, settings.epochs, record)
        if run_dir is not None:
            _append_metrics(run_dir, record)
            save_checkpoint(
                run_dir / CHECKPOINT_NAME,
                {
                    "epoch": epoch,
                    "settings": settings.model_dump(),
                    "method_state": method.state_dict(),
                    "optimizer_state": optimizer.state_dict(),
                    "auxiliary_optimizer_states": {k: o.state_dict() for k, o in method.auxiliary_optimizers().items()},
                    "scheduler_state": scheduler.state_dict(),
                    "history": result.history,
                },
            )
    if run_dir is not None:
        save_weights(run_dir / WEIGHTS_NAME, method.student, metadata={"normalizer": json.dumps(normalizer.to_dict())})
    return result


def _train_one_epoch(
    method: Method,
    train: TrainingSet,
    normalizer: Normalizer,
    settings: TrainSettings,
    optimizer: torch.optim.Optimizer,
    device: torch.device,
    epoch: int,
    label: str,
    progress: bool | None,
) -> dict[str, Any]:
    seed = epoch_seed(settings.seed, epoch)
    torch.manual_seed(seed)  # dropout and any other use of the global RNG
    generator = torch.Generator().manual_seed(seed)  # shuffling and augmentation
    n_batches = math.ceil(len(train) / settings.batch_size)
    bar = EpochProgress(label, n_batches, epoch, settings.epochs, enabled=progress)
    method.train()
    sums: dict[str, torch.Tensor] = {}
    seen = 0
    lr = optimizer.param_groups[0]["lr"]
    started = time.perf_counter()
    for step, batch in enumerate(
        iterate_batches(train, settings.batch_size, normalizer, generator, device, settings.augment)
    ):
        losses = method.losses(batch)
        total = torch.stack(list(losses.values())).sum()
        if not torch.isfinite(total):
            values = ", ".join(f"{k}={v.item():.4g}" for k, v in losses.items())
            raise TrainingError(
                f"{label}: non-finite loss at epoch {epoch}, batch {step + 1} ({values}); "
                "try a lower learning rate"
            )
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()
        losses.update(method.auxiliary_step(batch))  # e.g. the imitation game's discriminator update
        b = batch.x.shape[0]
        seen += b
        for name, value in losses.items():
            sums[name] = sums.get(name, 0.0) + value.detach() * b
        sums["loss"] = sums.get("loss", 0.0) + total.detach() * b  # the student's objective only
        bar.advance()
    elapsed = time.perf_counter() - started
    record: dict[str, Any] = {"epoch": epoch, "lr": lr}
    record.update({("train_loss" if k == "loss" else f"train_{k}"): float(v) / max(seen, 1) for k, v in sums.items()})
    record.update(epoch_time_s=elapsed, images_per_s=seen / elapsed if elapsed > 0 else float("nan"))
    bar.close()
    return record


def _restore(
    run_dir: Path,
    method: Method,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    settings: TrainSettings,
    result: FitResult,
) -> int:
    state = load_checkpoint(run_dir / CHECKPOINT_NAME)
    saved = state.get("settings", {})
    changed = sorted(k for k, v in settings.model_dump().items() if k not in _RESUMABLE_CHANGES and saved.get(k) != v)
    if changed:
        raise TrainingError(
            f"{run_dir / CHECKPOINT_NAME}: cannot resume with different settings ({', '.join(changed)}); "
            "use a new run directory"
        )
    try:
        method.load_state_dict(state["method_state"])
        optimizer.load_state_dict(state["optimizer_state"])
        for name, aux in method.auxiliary_optimizers().items():
            aux.load_state_dict(state["auxiliary_optimizer_states"][name])
        scheduler.load_state_dict(state["scheduler_state"])
    except (KeyError, RuntimeError, ValueError) as exc:
        raise TrainingError(f"{run_dir / CHECKPOINT_NAME}: checkpoint does not fit this model ({exc})") from exc
    result.history.extend(state.get("history", []))
    return int(state["epoch"])


def _rewrite_metrics(run_dir: Path, history: list[dict[str, Any]]) -> None:
    """Make metrics.jsonl hold exactly the checkpointed epochs (drops lines of a killed epoch)."""
    with atomic_open(run_dir / METRICS_NAME) as handle:
        for record in history:
            handle.write(json.dumps(record) + "\n")


def _append_metrics(run_dir: Path, record: dict[str, Any]) -> None:
    with open(run_dir / METRICS_NAME, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")
