"""Convert uint8 images to another (C, H, W): colour to grey (ITU-R BT.601 luma) or grey to
three equal channels, then an antialiased bilinear resize (no crop: the aspect ratio follows
the target). Used for out-of-domain query images (``deepmimic audit``) and ``deepmimic pack --size``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

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
            raise DataError(f"cannot turn {x.shape[1]}-channel images into {channels}-channel ones")
    if tuple(x.shape[2:]) != (height, width):
        x = F.interpolate(x, size=(height, width), mode="bilinear", align_corners=False, antialias=True)
    return x.round().clamp(0, 255).to(torch.uint8)
