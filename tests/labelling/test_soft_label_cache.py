"""The soft-label cache key: every mentor weight and buffer, the images and the normaliser."""

from __future__ import annotations

import torch
from torch import nn

from deepmimic.data.batches import Normalizer
from deepmimic.labelling.soft_label_cache import soft_label_key


def test_key_covers_batchnorm_buffers_and_changes_with_any_input() -> None:
    mentor = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten(), nn.LazyLinear(3))
    images = torch.randint(0, 256, (4, 1, 6, 6), dtype=torch.uint8)
    mentor(images.float())  # materialise the lazy layer; BatchNorm's num_batches_tracked is a 0-dim buffer
    normalizer = Normalizer.fit(images)
    key = soft_label_key(mentor, images, normalizer)
    assert key == soft_label_key(mentor, images.clone(), normalizer)
    mentor[1].num_batches_tracked += 1
    assert soft_label_key(mentor, images, normalizer) != key
    assert soft_label_key(mentor, images.flip(0), normalizer) != soft_label_key(mentor, images, normalizer)
