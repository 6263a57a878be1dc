"""Batches from in-memory tensors, normalisation and tensor augmentation."""

from __future__ import annotations

import pytest
import torch

from deepmimic.data.batches import Normalizer, TrainingSet, iterate_batches, random_crop_flip
from deepmimic.errors import DataError


def test_normalizer_statistics_and_application() -> None:
    images = torch.tensor([[[[0, 255]]], [[[0, 255]]]], dtype=torch.uint8)  # (2,1,1,2): half 0, half 1
    norm = Normalizer.fit(images)
    assert norm.mean == pytest.approx((0.5,))
    assert norm.std == pytest.approx((0.5,))
    assert torch.allclose(norm(images), torch.tensor([[[[-1.0, 1.0]]]] * 2))


def test_batches_cover_every_row_once_with_aligned_targets() -> None:
    n = 37
    images = torch.arange(n, dtype=torch.uint8).view(n, 1, 1, 1).expand(n, 1, 2, 2).contiguous()
    data = TrainingSet(images, {"labels": torch.arange(n), "probs": torch.rand(n, 3)})
    norm = Normalizer((0.0,), (1 / 255,))  # x = pixel value, so rows are recognisable
    seen = []
    for batch in iterate_batches(data, 8, norm, torch.Generator().manual_seed(0), torch.device("cpu")):
        assert torch.equal(batch.x[:, 0, 0, 0].round().long(), batch.targets["labels"])
        assert torch.equal(batch.targets["probs"], data.targets["probs"][batch.index])
        seen += batch.index.tolist()
    assert sorted(seen) == list(range(n))


def test_training_set_rejects_misaligned_targets() -> None:
    with pytest.raises(DataError, match="labels"):
        TrainingSet(torch.zeros(3, 1, 2, 2, dtype=torch.uint8), {"labels": torch.zeros(2)})


def test_random_crop_flip_is_a_shifted_or_flipped_copy() -> None:
    x = torch.arange(2 * 1 * 6 * 6, dtype=torch.float32).view(2, 1, 6, 6) + 1  # no zeros inside
    out = random_crop_flip(x, padding=2, generator=torch.Generator().manual_seed(3))
    assert out.shape == x.shape
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    for i in range(2):
        found = False
        for dy in range(5):
            for dx in range(5):
                window = padded[i, :, dy : dy + 6, dx : dx + 6]
                if torch.equal(out[i], window) or torch.equal(out[i], window.flip(2)):
                    found = True
        assert found, f"image {i} is not a crop (or flipped crop) of its padded input"


def test_augmentation_is_reproducible_by_generator() -> None:
    x = torch.rand(4, 3, 8, 8)
    a = random_crop_flip(x, 4, torch.Generator().manual_seed(1))
    b = random_crop_flip(x, 4, torch.Generator().manual_seed(1))
    assert torch.equal(a, b)


def test_unknown_augmentation_is_rejected() -> None:
    data = TrainingSet(torch.zeros(2, 1, 2, 2, dtype=torch.uint8))
    with pytest.raises(DataError, match="unknown augmentation"):
        next(
            iterate_batches(
                data, 1, Normalizer((0.0,), (1.0,)), torch.Generator(), torch.device("cpu"), augment="mixup"
            )
        )
