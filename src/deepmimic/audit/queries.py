"""The images an audit's attacker sends: the data set's own unlabelled images, or another image set.

An attacker without in-domain data queries with whatever images they have (the DeepMimic
paper's out-of-domain student sets, section 4.3). Such a set rarely has the teacher's
input shape, so it is converted the way an attacker would: colour to grey (ITU-R BT.601
luma) or grey to three equal channels, and an antialiased bilinear resize to (H, W).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from deepmimic.data.registry import load_dataset, read_image_pool
from deepmimic.data.spec import parse_data_spec
from deepmimic.errors import DataError

LUMA = (0.299, 0.587, 0.114)


def to_shape(images: torch.Tensor, shape: tuple[int, int, int]) -> torch.Tensor:
    """uint8 (N, C, H, W) -> uint8 (N, *shape): channels 3 -> 1 by luma, 1 -> 3 by repeat, then resize."""
    channels, height, width = shape
    x = images.to(torch.float32)  # (N, C, H, W) in 0..255
    if x.shape[1] != channels:
        if x.shape[1] == 3 and channels == 1:
            x = (x * torch.tensor(LUMA).view(1, 3, 1, 1)).sum(dim=1, keepdim=True)
        elif x.shape[1] == 1 and channels == 3:
            x = x.expand(-1, 3, -1, -1)
        else:
            raise DataError(f"cannot turn {x.shape[1]}-channel query images into {channels}-channel ones")
    if tuple(x.shape[2:]) != (height, width):
        x = F.interpolate(x, size=(height, width), mode="bilinear", align_corners=False, antialias=True)
    return x.round().clamp(0, 255).to(torch.uint8)


def read_query_images(spec: str, shape: tuple[int, int, int]) -> tuple[torch.Tensor, str]:
    """(uint8 (N, *shape) images, a line saying what was read) for a ``--query-data`` spec.

    An ``.npz`` path is read as an image pool (every image in it); any other spec is a data
    set (``NAME:ROOT``) whose training and test images are all used. Labels are never read.
    """
    if spec.endswith(".npz") and ":" not in spec:
        pool = read_image_pool(spec)
        images, name = pool.images, Path(spec).name
    else:
        name, root = parse_data_spec(spec)
        data = load_dataset(name, root)
        images = torch.cat([data.train.images, data.test.images])
    source = tuple(images.shape[1:])
    note = f"{len(images):,} query images from {name}"
    if source != shape:
        images = to_shape(images, shape)
        note += f", converted from {'x'.join(map(str, source))} to {'x'.join(map(str, shape))}"
    return images, note
