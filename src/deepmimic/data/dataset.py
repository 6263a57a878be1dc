"""Labelled image datasets.

Every reader returns an :class:`ImageDataset`: uint8 images shaped (N, C, H, W),
int64 labels shaped (N,), and the class names. Keeping the raw uint8 tensors in
memory (MNIST train is 47 MB, CIFAR-10 150 MB) lets the engine slice batches
without per-sample Python and convert to float only per batch. A packed store too
large for memory is read as a :class:`~deepmimic.data.rows.RowTable` instead: the
same surface, rows read from disk when a batch gathers them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from deepmimic.data.rows import Images, take_rows
from deepmimic.errors import DataError


@dataclass(frozen=True)
class ImageDataset:
    """A labelled image set.

    Attributes:
        images: uint8 tensor (N, C, H, W), or a :class:`~deepmimic.data.rows.RowTable` of
            those rows (streamed from a store).
        labels: int64 tensor (N,), values in [0, num_classes).
        class_names: one name per class; ``len(class_names)`` is the number of classes.
        name: a short description used in logs and reports (e.g. ``"mnist/train"``).
    """

    images: Images
    labels: torch.Tensor
    class_names: tuple[str, ...]
    name: str = "dataset"
    meta: dict[str, object] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise DataError(
                f"{self.name}: images must be a uint8 tensor (N, C, H, W), "
                f"got {self.images.dtype} with shape {tuple(self.images.shape)}"
            )
        if self.labels.dtype != torch.int64 or self.labels.dim() != 1:
            raise DataError(
                f"{self.name}: labels must be an int64 tensor (N,), got {self.labels.dtype} {tuple(self.labels.shape)}"
            )
        if self.images.shape[0] != self.labels.shape[0]:
            raise DataError(f"{self.name}: {self.images.shape[0]} images but {self.labels.shape[0]} labels")
        if len(self.class_names) == 0:
            raise DataError(f"{self.name}: no class names")
        if self.labels.numel() and (int(self.labels.min()) < 0 or int(self.labels.max()) >= len(self.class_names)):
            raise DataError(
                f"{self.name}: labels must lie in [0, {len(self.class_names)}), "
                f"found range [{int(self.labels.min())}, {int(self.labels.max())}]"
            )

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def in_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one image."""
        _, c, h, w = self.images.shape
        return int(c), int(h), int(w)

    def subset(self, indices: torch.Tensor, name: str | None = None) -> ImageDataset:
        """Rows ``indices`` (int64 tensor) as a new dataset sharing class names (a streamed set stays streamed)."""
        return ImageDataset(
            images=take_rows(self.images, indices),
            labels=self.labels[indices],
            class_names=self.class_names,
            name=name or self.name,
            meta=dict(self.meta),
        )


@dataclass(frozen=True)
class TrainTest:
    """A dataset's train and test parts, as returned by :func:`deepmimic.data.load_dataset`."""

    train: ImageDataset
    test: ImageDataset

    def __post_init__(self) -> None:
        if self.train.in_shape != self.test.in_shape:
            raise DataError(f"train images are {self.train.in_shape} but test images are {self.test.in_shape}")
        if self.train.class_names != self.test.class_names:
            raise DataError("train and test parts have different class names")
