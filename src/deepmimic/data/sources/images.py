"""Decode image files with Pillow into uint8 arrays, with clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from deepmimic.data.sources._common import one_line
from deepmimic.errors import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")


def read_image(path: Path, mode: str, size: tuple[int, int] | None = None) -> np.ndarray:
    """(H, W, C) uint8 in ``mode`` ("L" or "RGB"), resized (bilinear) to ``size`` = (H, W) if given."""
    try:
        with Image.open(path) as img:
            img = img.convert(mode)
            if size is not None and img.size != (size[1], size[0]):
                img = img.resize((size[1], size[0]), Image.Resampling.BILINEAR)
            array = np.asarray(img, dtype=np.uint8)
    except Exception as exc:  # Pillow raises OSError, SyntaxError, ValueError, DecompressionBombError, ...
        raise DataError(f"{path}: unreadable image ({one_line(exc)})") from exc
    return array[:, :, None] if array.ndim == 2 else array


def stack_images(paths: list[Path], mode: str, size: tuple[int, int] | None = None, hint: str = "") -> np.ndarray:
    """(N, C, H, W) uint8 from image files that must share one size (unless ``size`` is given).

    ``hint`` is appended to the size-mismatch error (e.g. how the caller can resize).
    """
    first = read_image(paths[0], mode, size)
    out = np.empty((len(paths), first.shape[2], first.shape[0], first.shape[1]), dtype=np.uint8)
    out[0] = first.transpose(2, 0, 1)
    for i, path in enumerate(paths[1:], start=1):
        array = read_image(path, mode, size)
        if array.shape != first.shape:
            raise DataError(
                f"{path}: image is {array.shape[1]}x{array.shape[0]}, "
                f"expected {first.shape[1]}x{first.shape[0]} like {paths[0].name}{hint}"
            )
        out[i] = array.transpose(2, 0, 1)
    return out
