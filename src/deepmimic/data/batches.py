"""Batches sliced from in-memory tensors, normalisation and augmentation on tensors.

No per-sample Python runs in the hot loop: an epoch is one random permutation, each
batch is an index slice of the uint8 image tensor (and of every target tensor), and
augmentation is vectorised over the batch. Streamed images (a
:class:`~deepmimic.data.rows.RowTable` over a packed store) are gathered the same way,
by a prefetch thread one or two batches ahead (``read_ahead``), so reading overlaps training.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

import torch

from deepmimic.data.prefetch import prefetch
from deepmimic.data.rows import Images, is_streamed
from deepmimic.errors import DataError

AUGMENTATIONS = ("none", "crop-flip")


@dataclass(frozen=True)
class Normalizer:
    """uint8 images -> float32 ``(x / 255 - mean) / std`` per channel.

    The statistics are computed from training *images* (never labels), stored in every
    run's results and checkpoints, and reused for test data and inference.
    """

    mean: tuple[float, ...]
    std: tuple[float, ...]

    @classmethod
    def fit(cls, images: torch.Tensor) -> Normalizer:
        """Per-channel mean/std of uint8 ``images`` (N, C, H, W), scaled to [0, 1]."""
        # Accumulate in float64 over chunks so 50k CIFAR images need no 600 MB float copy.
        channels = images.shape[1]
        total = torch.zeros(channels, dtype=torch.float64)
        total_sq = torch.zeros(channels, dtype=torch.float64)
        for start in range(0, images.shape[0], 4096):
            chunk = images[start : start + 4096].to(torch.float64) / 255.0
            total += chunk.sum(dim=(0, 2, 3))
            total_sq += (chunk**2).sum(dim=(0, 2, 3))
        count = images.shape[0] * images.shape[2] * images.shape[3]
        mean = total / count
        std = (total_sq / count - mean**2).clamp_min(1e-12).sqrt()
        return cls(tuple(float(m) for m in mean), tuple(float(s) for s in std))

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) uint8 on any device -> float32 normalised, same device."""
        mean = torch.tensor(self.mean, device=images.device).view(1, -1, 1, 1)
        std = torch.tensor(self.std, device=images.device).view(1, -1, 1, 1)
        return (images.float().div_(255.0) - mean).div_(std)

    def to_dict(self) -> dict[str, list[float]]:
        return {"mean": list(self.mean), "std": list(self.std)}


def draw_crop_flip(
    batch: int, padding: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-image crop offsets ``oy``, ``ox`` in [0, 2 * padding] and flip flags, each (B,), on the CPU.

    Drawn for a whole global batch, so that under data parallelism every rank takes its
    rows' draws from the same numbers one process would have used.
    """
    oy = torch.randint(0, 2 * padding + 1, (batch,), generator=generator)
    ox = torch.randint(0, 2 * padding + 1, (batch,), generator=generator)
    flip = torch.rand(batch, generator=generator) < 0.5
    return oy, ox, flip


def apply_crop_flip(
    x: torch.Tensor, padding: int, oy: torch.Tensor, ox: torch.Tensor, flip: torch.Tensor
) -> torch.Tensor:
    """Crop (B, C, H, W) ``x`` zero-padded by ``padding`` at offsets (oy, ox), flipping where ``flip``."""
    b, _, h, w = x.shape
    padded = torch.nn.functional.pad(x, (padding, padding, padding, padding))
    oy, ox, flip = oy.to(x.device), ox.to(x.device), flip.to(x.device)
    rows = oy[:, None] + torch.arange(h, device=x.device)  # (B, H)
    cols = ox[:, None] + torch.arange(w, device=x.device)  # (B, W)
    cols = torch.where(flip[:, None], cols.flip(1), cols)  # flipping = reading columns backwards
    batch_idx = torch.arange(b, device=x.device)[:, None, None]
    # Advanced indexing with (B,1,1), (B,H,1), (B,1,W) on dims 0, 2, 3 -> (B, H, W, C).
    crops = padded.permute(0, 2, 3, 1)[batch_idx, rows[:, :, None], cols[:, None, :]]
    return crops.permute(0, 3, 1, 2).contiguous()


def random_crop_flip(x: torch.Tensor, padding: int, generator: torch.Generator) -> torch.Tensor:
    """Random crop with zero padding + horizontal flip, vectorised over the batch.

    x: (B, C, H, W) float. Each image gets its own offsets in [0, 2 * padding] and a
    coin flip, drawn from ``generator`` (on the CPU, so results do not depend on device).
    """
    return apply_crop_flip(x, padding, *draw_crop_flip(x.shape[0], padding, generator))


@dataclass(frozen=True)
class TrainingSet:
    """What the engine trains on: images plus aligned per-row targets.

    ``targets`` maps a name to a tensor with one row per image, e.g. ``{"labels": int64
    (N,)}`` for supervised training or ``{"probs": float32 (N, K)}`` for soft labels.
    A method names the targets it needs; the engine checks them before training.
    """

    images: Images  # uint8 (N, C, H, W): a tensor, or a RowTable read per batch
    targets: Mapping[str, torch.Tensor] = field(default_factory=dict)
    name: str = "train"

    def __post_init__(self) -> None:
        n = self.images.shape[0]
        for key, value in self.targets.items():
            if value.shape[0] != n:
                raise DataError(f"{self.name}: target '{key}' has {value.shape[0]} rows, images have {n}")

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def to(self, device: torch.device) -> TrainingSet:
        """The same rows with images and targets on ``device`` (GPU-resident data: no host copies per batch).

        Streamed images stay on the host (a set larger than memory is larger than the GPU's too).
        """
        if is_streamed(self.images):
            return self
        return TrainingSet(self.images.to(device), {k: v.to(device) for k, v in self.targets.items()}, self.name)


@dataclass
class Batch:
    """One training batch: normalised inputs, the aligned targets and row indices."""

    x: torch.Tensor  # (B, C, H, W) float32
    targets: dict[str, torch.Tensor]
    index: torch.Tensor  # (B,) int64 rows of the TrainingSet
    global_size: int = 0  # rows of the global batch this one is a share of (0: the same as B)


def iterate_batches(
    data: TrainingSet,
    batch_size: int,
    normalizer: Normalizer,
    generator: torch.Generator,
    device: torch.device,
    augment: str = "none",
    drop_last: bool = False,
    *,
    rank: int = 0,
    world_size: int = 1,
    memory_format: torch.memory_format = torch.contiguous_format,
    read_ahead: bool = True,
) -> Iterator[Batch]:
    """Yield shuffled batches for one epoch (order and augmentation from ``generator``).

    With ``world_size > 1`` (data parallelism) every rank draws the same permutation and
    augmentation numbers and keeps rows ``rank::world_size`` of each global batch of
    ``batch_size``; ``Batch.global_size`` tells the engine how to weight its share. A
    final global batch of fewer than ``2 * world_size`` rows is skipped on every rank (a
    rank would get no row, or a single one, which BatchNorm cannot train on).

    ``read_ahead``: streamed images are gathered by a thread one or two batches ahead
    (worth it when a core is free for it; the batches are the same either way).
    """
    if augment not in AUGMENTATIONS:
        raise DataError(f"unknown augmentation '{augment}', expected one of {', '.join(AUGMENTATIONS)}")
    plans = _batch_plans(len(data), batch_size, generator, augment, drop_last, rank, world_size)
    gathered = ((idx, draws, global_size, *_gather(data, idx)) for idx, draws, global_size in plans)
    if read_ahead and is_streamed(data.images):  # rows come from disk: read the next batch while this one trains
        gathered = prefetch(gathered, depth=2)
    for idx, draws, global_size, images, targets in gathered:
        x = normalizer(images.to(device, non_blocking=True))
        if draws is not None:
            x = apply_crop_flip(x, 4, *draws)
        if memory_format is not torch.contiguous_format:
            x = x.contiguous(memory_format=memory_format)
        targets = {k: v.to(device, non_blocking=True) for k, v in targets.items()}
        yield Batch(x=x, targets=targets, index=idx, global_size=global_size)


def _batch_plans(
    n: int, batch_size: int, generator: torch.Generator, augment: str, drop_last: bool, rank: int, world_size: int
) -> Iterator[tuple[torch.Tensor, tuple[torch.Tensor, ...] | None, int]]:
    """(rows of this rank's share, crop/flip draws, global batch size) per batch, drawn from ``generator``.

    The generator serves only this epoch's batches, so drawing in a prefetch thread takes
    the same numbers in the same order as drawing inline.
    """
    order = torch.randperm(n, generator=generator)
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        idx = order[start : start + batch_size]  # (B,) the global batch
        draws = draw_crop_flip(idx.numel(), 4, generator) if augment == "crop-flip" else None
        if world_size > 1:
            if idx.numel() < 2 * world_size:
                continue
            idx = idx[rank::world_size]  # this rank reads only its share of the rows
            draws = tuple(d[rank::world_size] for d in draws) if draws is not None else None
        yield idx, draws, int(min(batch_size, n - start))


def _gather(data: TrainingSet, idx: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The uint8 rows ``idx`` (B, C, H, W) and their targets, where the data lives (host or device)."""
    rows = idx.to(data.images.device)
    return data.images[rows], {k: v[rows.to(v.device)] for k, v in data.targets.items()}


def iterate_eval_batches(
    images: torch.Tensor,
    batch_size: int,
    normalizer: Normalizer,
    device: torch.device,
    memory_format: torch.memory_format = torch.contiguous_format,
) -> Iterator[tuple[slice, torch.Tensor]]:
    """Yield (row slice, normalised batch) in order, for evaluation and labelling.

    ``memory_format``: the layout the model's weights use (channels_last when the trainer's
    speed plan picked it), so a conv net gets its input in that layout without converting.
    """
    for start in range(0, images.shape[0], batch_size):
        rows = slice(start, start + batch_size)
        x = normalizer(images[rows].to(device, non_blocking=True))
        if memory_format is not torch.contiguous_format and x.dim() == 4:
            x = x.contiguous(memory_format=memory_format)
        yield rows, x
