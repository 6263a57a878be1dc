"""Tiny generated image datasets that a small CNN learns in seconds (shared by tests)."""

from __future__ import annotations

import torch

from deepmimic.data.dataset import ImageDataset


def make_blobs_dataset(
    n_per_class: int = 40,
    num_classes: int = 4,
    shape: tuple[int, int, int] = (1, 8, 8),
    seed: int = 0,
    name: str = "blobs",
) -> ImageDataset:
    """Images whose class is a bright square in one of ``num_classes`` positions, plus noise.

    Learnable by a tiny CNN in a few epochs, so pipeline tests can check real learning.
    """
    gen = torch.Generator().manual_seed(seed)
    c, h, w = shape
    labels = torch.arange(num_classes).repeat_interleave(n_per_class)
    images = torch.randint(0, 60, (labels.numel(), c, h, w), generator=gen, dtype=torch.int64)
    half_h, half_w = h // 2, w // 2
    for cls in range(num_classes):
        rows = labels == cls
        top = (cls // 2) % 2 * half_h
        left = cls % 2 * half_w
        images[rows, :, top : top + half_h, left : left + half_w] += 150 + 40 * (cls // 4)
    perm = torch.randperm(labels.numel(), generator=gen)
    return ImageDataset(
        images=images.clamp(0, 255).to(torch.uint8)[perm].contiguous(),
        labels=labels[perm].contiguous(),
        class_names=tuple(f"class{i}" for i in range(num_classes)),
        name=name,
    )
