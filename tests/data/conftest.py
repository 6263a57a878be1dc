"""Fixtures shared by the dataset-reader tests (the real-data ``shared_data`` fixture is in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ImageWriter = Callable[..., Path]


@pytest.fixture
def write_image() -> ImageWriter:
    """``write_image(path, colour=True, size=8, value=100)``: a flat image file, parents created.

    ``size`` is an int (square) or (H, W); the format follows the suffix.
    """

    def write(path: Path, colour: bool = True, size: int | tuple[int, int] = 8, value: int = 100) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        h, w = (size, size) if isinstance(size, int) else size
        shape = (h, w, 3) if colour else (h, w)
        pixels = np.full(shape, value, dtype=np.uint8)
        if colour:
            pixels[..., 1] = 255 - value  # make the channels differ so colour survives the encoder
        Image.fromarray(pixels).save(path)
        return path

    return write
