"""The one training loop, for every method.

The loop slices batches from in-memory tensors, asks the method for named losses,
sums them, steps the optimiser and scheduler, appends one JSON line per epoch to
``metrics.jsonl``, and when it pays: evaluates on the test set (``eval_every``, by default
about 10 points a run, optionally on a fixed stratified ``eval_subset``; always the full
test set after the last epoch) and writes an atomic checkpoint (``checkpoint_every``
epochs or ``checkpoint_seconds`` since the last one; always after the last epoch).
It never branches on which method it runs.

Determinism: epoch ``e`` seeds torch's global RNG (dropout) and the batch generator
(shuffling, augmentation) from ``(seed, e)`` alone, so a run resumed from the
checkpoint of epoch ``e`` replays epochs ``e+1..`` exactly as an uninterrupted run
(epochs trained after the last checkpoint are trained again; their metrics lines are
rewritten from the checkpoint's history). Evaluation draws no random numbers and leaves
the model as it was, so when it runs does not change what is trained.

Speed (docs/scaling.md): on CUDA the data stay on the GPU, the forward pass runs under
bf16 autocast and conv nets use channels_last, each a :class:`TrainSettings` switch; the
student (and a white-box teacher) can be compiled. Under torchrun the method is wrapped
in :class:`~torch.nn.parallel.DistributedDataParallel`, every rank trains on its share of
each global batch (:func:`~deepmimic.data.batches.iterate_batches`), logged losses are
summed over ranks, and only rank 0 writes or prints (:mod:`deepmimic.distributed`).

Self-describing weights: the caller passes a :class:`~deepmimic.models.description.ModelDescription`
(architecture, model options, input shape, classes, stage name) and the trainer writes it,
with the normaliser and method it trained with, into the metadata of ``weights.safetensors``,
so :func:`deepmimic.models.bundle.load_trained` rebuilds the model from that file alone.
"""

from __future__ import annotations

import json
import math
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.nn.parallel import DistributedDataParallel

from deepmimic import distributed
from deepmimic.data.batches import Normalizer, TrainingSet, iterate_batches
from deepmimic.data.dataset import ImageDataset
from deepmimic.data.rows import Images, is_streamed
from deepmimic.data.splits import stratified_subset
from deepmimic.engine.checkpoint import load_checkpoint, save_checkpoint, save_weights
from deepmimic.engine.optim import build_optimizer, build_scheduler
from deepmimic.engine.progress import EpochProgress, print_epoch_line
from deepmimic.engine.settings import TrainSettings
from deepmimic.errors import ConfigError, TeacherError, TrainingError
from deepmimic.eval.metrics import Evaluation, evaluate
from deepmimic.io_utils import atomic_open
from deepmimic.methods.base import Method
from deepmimic.models.description import ModelDescription, weights_metadata

CHECKPOINT_NAME = "checkpoint.pt"
METRICS_NAME = "metrics.jsonl"
WEIGHTS_NAME = "weights.safetensors"
EVAL_SUBSET_SEED = 0  # the stratified subset of the test set for curve points (eval_subset) is fixed

# Settings that may change between a run and its resumption without changing what the
# finished epochs computed ("epochs" extends the schedule, see _restore): device, when to
# evaluate and checkpoint, and the speed switches.
RESUMABLE_CHANGES = {
    "epochs",
    "device",
    "eval_batch_size",
    "eval_every",
    "eval_subset",
    "checkpoint_every",
    "checkpoint_seconds",
    "precision",
    "channels_last",
    "data_on_device",
    "read_ahead",
    "flush_denormal",
    "compile",
    "compile_teacher",
}


@dataclass(frozen=True)
class SpeedPlan:
    """The speed switches of :class:`TrainSettings` resolved for one device."""

    device: torch.device
    autocast_dtype: torch.dtype | None  # None: full float32
    memory_format: torch.memory_format
    data_on_device: bool
    read_ahead: bool = False  # gather streamed batches in a thread
    flush_denormal: bool = False  # denormal floats read as zero while an epoch trains (CPU)

    @classmethod
    def resolve(cls, settings: TrainSettings, device: torch.device, model: torch.nn.Module | None = None) -> SpeedPlan:
        """The switches for ``device``; ``model`` (the student) lets "auto" pick by model family.

        "auto" choices, each from measurements (docs/scaling.md): bf16 only where the GPU
        computes it natively (Ampere and newer); channels_last on CUDA, and on the CPU for
        nets with two or more Conv2d (1.11-1.36x on the MNIST and CIFAR-10 ladder models; a
        single conv layer loses 4-8% to the layout change and the copy before its linear
        layers, as in ``mnist-student-b``; nothing to gain without Conv2d); GPU-resident data on CUDA;
        read-ahead of streamed batches on CUDA or with a spare core (on 2 cores busy with 2
        compute threads the thread cost 16% of a small student's epoch: docs/scaling.md);
        denormals flushed to zero on the CPU (a collapsed adversarial student's epoch ran 7x
        faster; nothing a float32 model needs lives below 1.2e-38).
        """
        cuda = device.type == "cuda"
        native_bf16 = cuda and torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)
        bf16 = settings.precision == "bf16" or (settings.precision == "auto" and native_bf16)
        convs = 0 if model is None else sum(isinstance(m, torch.nn.Conv2d) for m in model.modules())
        conv_on_cpu = device.type == "cpu" and convs >= 2
        channels_last = settings.channels_last is True or (settings.channels_last == "auto" and (cuda or conv_on_cpu))
        on_device = settings.data_on_device is True or (settings.data_on_device == "auto" and cuda)
        spare_core = (os.cpu_count() or 1) > torch.get_num_threads() * distributed.world_size()
        read_ahead = settings.read_ahead is True or (settings.read_ahead == "auto" and (cuda or spare_core))
        flush = settings.flush_denormal is True or (settings.flush_denormal == "auto" and device.type == "cpu")
        return cls(
            device=device,
            autocast_dtype=torch.bfloat16 if bf16 else None,
            memory_format=torch.channels_last if channels_last else torch.contiguous_format,
            data_on_device=on_device and device.type != "cpu",
            read_ahead=read_ahead,
            flush_denormal=flush,
        )

    def autocast(self) -> torch.autocast:
        return torch.autocast(
            self.device.type, dtype=self.autocast_dtype or torch.bfloat16, enabled=self.autocast_dtype is not None
        )

    def describe(self) -> dict[str, Any]:
        """What ran, for metrics records: precision, memory format, data placement, processes."""
        return {
            "precision": "bf16" if self.autocast_dtype is not None else "fp32",
            "channels_last": self.memory_format is torch.channels_last,
            "data_on_device": self.data_on_device,
            "world_size": distributed.world_size(),
        }


@dataclass
class FitResult:
    """What :func:`fit` returns: per-epoch history and the final epoch's record."""

    history: list[dict[str, Any]] = field(default_factory=list)
    # The last epoch's evaluation on the full test set, when this call ran that epoch (not when a
    # finished run was read back on resume): pipelines reuse it instead of evaluating again.
    final_evaluation: Evaluation | None = None

    @property
    def final(self) -> dict[str, Any]:
        return self.history[-1] if self.history else {}

    def final_test(
        self, model: torch.nn.Module, test: ImageDataset, normalizer: Normalizer, device: torch.device
    ) -> Evaluation:
        """``model`` on the full ``test`` set: the last epoch's evaluation when fit made one, else a new one."""
        if self.final_evaluation is not None and len(self.final_evaluation.predictions) == len(test.labels):
            return self.final_evaluation
        return evaluate(model, test.images, test.labels, normalizer, device)


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


def check_fit(method: Method, train: TrainingSet, settings: TrainSettings) -> torch.device:
    """Everything :func:`fit` would refuse, checked without training; returns the device.

    Pipelines call this for every stage before they write anything (docs/reliability.md).
    """
    check_targets(method, train)
    if settings.compile and not method.supports_compile():
        raise ConfigError(
            f"method {type(method).__name__} as configured cannot be compiled (torch.compile has no double "
            "backward, which its derivative loss needs); set compile: false"
        )
    return distributed.resolve_rank_device(settings.device)


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
    description: ModelDescription | None = None,
) -> FitResult:
    """Train ``method`` (and so ``method.student``) on ``train`` for ``settings.epochs``.

    With ``run_dir``, writes ``metrics.jsonl``, ``checkpoint.pt`` (see ``checkpoint_every``
    and ``checkpoint_seconds``; always after the last epoch) and the student's final
    ``weights.safetensors`` there; ``resume=True`` continues from the checkpoint found in
    ``run_dir`` (a finished run returns its history at once). With ``test``, epochs that
    :meth:`TrainSettings.evaluates_at` get ``test_loss`` / ``test_accuracy`` (and
    ``test_rows``: the rows evaluated, fewer than the test set on ``eval_subset`` curve points).
    ``description`` says what the student is (how ``create_model`` built it); it goes,
    with ``normalizer`` and the method, into the weights' metadata so that the file loads
    on its own (:func:`deepmimic.models.bundle.load_trained`). Without it the weights
    record only the normaliser and method.
    """
    device = check_fit(method, train, settings)
    _check_description(description, train, normalizer, label)
    plan = SpeedPlan.resolve(settings, device, method.student)
    method.to_device(device)
    if plan.memory_format is torch.channels_last:
        method.to(memory_format=torch.channels_last)  # 4-D weights only; others are left as they are
    if plan.data_on_device:
        train = train.to(device)  # uint8 images + targets live on the GPU: no host loader in the loop
    writes = run_dir is not None and distributed.is_main()
    distributed.barrier()  # every rank sees the same checkpoint state before deciding to resume
    resuming = resume and run_dir is not None and (run_dir / CHECKPOINT_NAME).exists()
    torch.manual_seed(epoch_seed(settings.seed, 0))  # modules a setup stage creates get seeded weights
    method.setup(train, normalizer, device, settings.batch_size, pretrain=not resuming)
    optimizer = build_optimizer(method.optimized_parameters(), settings)
    scheduler = build_scheduler(optimizer, settings)
    result = FitResult()
    start_epoch = 0
    if run_dir is not None:
        if writes:
            run_dir.mkdir(parents=True, exist_ok=True)
        if resuming:
            start_epoch = _restore(run_dir, method, optimizer, scheduler, settings, result)
        if writes:
            _rewrite_metrics(run_dir, result.history)
    runner = _parallel_runner(method, device)
    method.compile_for_speed(student=settings.compile, teacher=settings.compile_teacher)
    full_test = curve_test = None
    if test is not None:
        full_test = _EvalSet.of(test, plan)
        subset = stratified_subset(test, settings.eval_subset, EVAL_SUBSET_SEED) if settings.eval_subset else test
        curve_test = full_test if subset is test else _EvalSet.of(subset, plan)
    last_checkpoint = time.monotonic()

    for epoch in range(start_epoch + 1, settings.epochs + 1):
        record = _train_one_epoch(method, runner, train, normalizer, settings, plan, optimizer, epoch, label, progress)
        scheduler.step()
        distributed.broadcast_buffers(method)  # rank 0's BatchNorm statistics on every rank
        record.update(plan.describe())
        if full_test is not None and curve_test is not None and settings.evaluates_at(epoch):
            on = full_test if epoch == settings.epochs else curve_test
            ev = evaluate(
                method.student, on.images, on.labels, normalizer, device, settings.eval_batch_size, plan.memory_format
            )
            record.update(test_loss=ev.loss, test_accuracy=ev.accuracy, test_rows=len(on.labels))
            if epoch == settings.epochs:  # on the full test set (curve points may use a subset)
                result.final_evaluation = ev
        result.history.append(record)
        if distributed.is_main():
            print_epoch_line(label, epoch, settings.epochs, record)
        if writes:
            _append_metrics(run_dir, record)
            if _checkpoint_due(settings, epoch, time.monotonic() - last_checkpoint):
                save_checkpoint(
                    run_dir / CHECKPOINT_NAME,
                    {
                        "epoch": epoch,
                        "settings": settings.model_dump(),
                        "method_state": method.state_dict(),
                        "optimizer_state": optimizer.state_dict(),
                        "auxiliary_optimizer_states": {
                            k: o.state_dict() for k, o in method.auxiliary_optimizers().items()
                        },
                        "scheduler_state": scheduler.state_dict(),
                        "history": result.history,
                    },
                )
                last_checkpoint = time.monotonic()
    if writes:
        metadata = weights_metadata(description, normalizer, type(method).__name__)
        save_weights(run_dir / WEIGHTS_NAME, method.student, metadata=metadata)
    distributed.barrier()  # no rank runs ahead to read what rank 0 is still writing
    return result


@dataclass(frozen=True)
class _EvalSet:
    """Test images (on the device when the plan keeps data there) and their labels."""

    images: Images
    labels: torch.Tensor

    @classmethod
    def of(cls, data: ImageDataset, plan: SpeedPlan) -> _EvalSet:
        on_device = plan.data_on_device and not is_streamed(data.images)  # a streamed set stays on the host
        return cls(data.images.to(plan.device) if on_device else data.images, data.labels)


def _checkpoint_due(settings: TrainSettings, epoch: int, since_last_s: float) -> bool:
    """Write ``checkpoint.pt`` after ``epoch``: the last epoch, every ``checkpoint_every`` epochs,
    or once ``checkpoint_seconds`` have passed since the last write (0: every epoch)."""
    if epoch == settings.epochs:
        return True
    if settings.checkpoint_every is not None and epoch % settings.checkpoint_every == 0:
        return True
    return since_last_s >= settings.checkpoint_seconds


def _check_description(
    description: ModelDescription | None, train: TrainingSet, normalizer: Normalizer, label: str
) -> None:
    """The description must describe the images this student trains on (before any training)."""
    if description is None:
        return
    shape = tuple(train.images.shape[1:])
    if shape != description.in_shape:
        raise ConfigError(
            f"{label}: the model description says in_shape {description.in_shape}, the training images are {shape}"
        )
    if len(normalizer.mean) != description.in_shape[0]:
        raise ConfigError(
            f"{label}: the normaliser has {len(normalizer.mean)} channels, "
            f"the model description {description.in_shape[0]}"
        )


def _parallel_runner(method: Method, device: torch.device) -> torch.nn.Module:
    """The module the loop calls for losses: the method itself, or DDP around it under torchrun.

    DDP averages the gradients of every trainable submodule (student, translators) over
    ranks during ``backward``; the teacher is not a submodule and is never synchronised.
    """
    if not distributed.is_distributed():
        return method
    device_ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(
        method, device_ids=device_ids, broadcast_buffers=True, find_unused_parameters=method.has_unused_parameters()
    )


def _train_one_epoch(
    method: Method,
    runner: torch.nn.Module,
    train: TrainingSet,
    normalizer: Normalizer,
    settings: TrainSettings,
    plan: SpeedPlan,
    optimizer: torch.optim.Optimizer,
    epoch: int,
    label: str,
    progress: bool | None,
) -> dict[str, Any]:
    seed = epoch_seed(settings.seed, epoch)
    # Dropout and other uses of the global RNG: a stream of its own per rank (rank 0's is
    # the single-process one); shuffling and augmentation: one stream shared by all ranks.
    torch.manual_seed((seed + distributed.rank()) % (2**63 - 1))
    generator = torch.Generator().manual_seed(seed)
    world = distributed.world_size()
    n_batches = math.ceil(len(train) / settings.batch_size)
    bar = EpochProgress(label, n_batches, epoch, settings.epochs, enabled=progress if distributed.is_main() else False)
    method.train()
    sums: dict[str, torch.Tensor] = {}
    seen = 0
    lr = optimizer.param_groups[0]["lr"]
    started = time.perf_counter()
    batches = iterate_batches(
        train,
        settings.batch_size,
        normalizer,
        generator,
        plan.device,
        settings.augment,
        rank=distributed.rank(),
        world_size=world,
        memory_format=plan.memory_format,
        read_ahead=plan.read_ahead,
    )
    # The CPU's denormals-are-zero mode, for this epoch only (torch has no getter to restore
    # a caller's own setting; it is off by default, and off again after the epoch).
    flushing = plan.flush_denormal and torch.set_flush_denormal(True)  # False where the CPU cannot
    try:
        for step, batch in enumerate(batches):
            with plan.autocast():
                losses = runner(batch)  # Method.forward = Method.losses, through DDP when distributed
            total = torch.stack([v.float() for v in losses.values()]).sum()
            finite = bool(torch.isfinite(total)) if world == 1 else distributed.all_true(bool(torch.isfinite(total)))
            if not finite:  # on every rank at once, so no rank is left waiting in a collective
                values = ", ".join(f"{k}={v.item():.4g}" for k, v in losses.items())
                where = f" on rank {distributed.rank()}'s share" if world > 1 else ""
                raise TrainingError(
                    f"{label}: non-finite loss at epoch {epoch}, batch {step + 1}{where} ({values}); "
                    "try a lower learning rate"
                )
            b = batch.x.shape[0]
            # DDP averages gradients over ranks; weighting each rank's mean loss by its share of
            # the global batch makes that average the gradient of the global batch's mean loss.
            share = b * world / batch.global_size if world > 1 and batch.global_size else 1.0
            optimizer.zero_grad(set_to_none=True)
            (total * share).backward()
            optimizer.step()
            losses.update(method.auxiliary_step(batch))  # e.g. the imitation game's discriminator update
            seen += b
            for name, value in losses.items():
                sums[name] = sums.get(name, 0.0) + value.detach().float() * b
            sums["loss"] = sums.get("loss", 0.0) + total.detach() * b  # the student's objective only
            bar.advance()
    finally:
        batches.close()  # a streamed epoch's read-ahead thread stops even when training raises
        if flushing:
            torch.set_flush_denormal(False)
    elapsed = time.perf_counter() - started
    names = list(sums)  # the same insertion order on every rank
    if world > 1:  # logged losses are over the global batches, as one process would log them
        local = [torch.as_tensor(sums[k], dtype=torch.float64).cpu() for k in names] + [
            torch.tensor(float(seen), dtype=torch.float64)
        ]
        reduced = distributed.all_reduce_sum(torch.stack(local))  # (len(names) + 1,)
        sums = {k: reduced[i] for i, k in enumerate(names)}
        seen = int(reduced[-1].item())
    record: dict[str, Any] = {"epoch": epoch, "lr": lr}
    record.update({("train_loss" if k == "loss" else f"train_{k}"): float(sums[k]) / max(seen, 1) for k in names})
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
    changed = sorted(k for k, v in settings.model_dump().items() if k not in RESUMABLE_CHANGES and saved.get(k) != v)
    if changed:
        raise TrainingError(
            f"{run_dir / CHECKPOINT_NAME}: cannot resume with different settings ({', '.join(changed)}); "
            "use a new run directory"
        )
    done = int(state["epoch"])
    if done > settings.epochs:
        raise TrainingError(
            f"{run_dir / CHECKPOINT_NAME}: cannot resume with epochs={settings.epochs}: {done} epochs are already "
            "trained; ask for at least as many, or use a new run directory"
        )
    try:
        method.load_state_dict(state["method_state"])
        optimizer.load_state_dict(state["optimizer_state"])
        for name, aux in method.auxiliary_optimizers().items():
            aux.load_state_dict(state["auxiliary_optimizer_states"][name])
        scheduler.load_state_dict(state["scheduler_state"])
    except (KeyError, RuntimeError, ValueError) as exc:
        raise TrainingError(
            f"{run_dir / CHECKPOINT_NAME}: checkpoint does not fit this model ({_first_line(exc)})"
        ) from exc
    saved_epochs = int(saved.get("epochs", settings.epochs))
    if saved_epochs != settings.epochs:
        _extend_schedule(optimizer, scheduler, settings, done, saved_epochs, str(run_dir))
    result.history.extend(state.get("history", []))
    return done


def _first_line(exc: BaseException) -> str:
    """The first line of an exception's message (load_state_dict lists every key on its own line)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = lines[0] if lines else type(exc).__name__
    return text + (f" ... ({len(lines) - 1} more lines)" if len(lines) > 1 else "")


def _extend_schedule(
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    settings: TrainSettings,
    done: int,
    saved_epochs: int,
    where: str,
) -> None:
    """Re-plan the learning-rate schedule for a resumed run whose length changed.

    The restored scheduler was planned for ``saved_epochs`` (a cosine schedule of that
    length ends at lr 0). The remaining epochs ``done+1..settings.epochs`` take exactly the
    learning rates a run planned for ``settings.epochs`` from the start would use there:
    the scheduler is rebuilt for the new length and advanced ``done`` epochs. The finished
    epochs keep what they computed; for cosine the lr jumps back up at the resume point.
    """
    for group in optimizer.param_groups:
        group["lr"] = group.get("initial_lr", settings.lr)
        group.pop("initial_lr", None)
    fresh = build_scheduler(optimizer, settings)
    with warnings.catch_warnings():  # stepping without optimizer.step() is the point here
        warnings.simplefilter("ignore", UserWarning)
        for _ in range(done):
            fresh.step()
    scheduler.load_state_dict(fresh.state_dict())
    lr = optimizer.param_groups[0]["lr"]
    if distributed.is_main():
        print(
            f"[resume] {where}: epochs {saved_epochs} -> {settings.epochs}: the {settings.schedule} schedule is "
            f"re-planned for {settings.epochs} epochs; epoch {done + 1} starts at lr {lr:.4g}",
            flush=True,
        )


def _rewrite_metrics(run_dir: Path, history: list[dict[str, Any]]) -> None:
    """Make metrics.jsonl hold exactly the checkpointed epochs (drops lines of a killed epoch)."""
    with atomic_open(run_dir / METRICS_NAME) as handle:
        for record in history:
            handle.write(json.dumps(record) + "\n")


def _append_metrics(run_dir: Path, record: dict[str, Any]) -> None:
    with open(run_dir / METRICS_NAME, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")
