"""Decoding listed image files for streaming packs (run in worker processes by :mod:`deepmimic.data.pack_files`).

Each image is converted to ``mode`` ("RGB" or "L"), then resized with one bilinear resample
so that it covers H x W (the side that is shorter relative to the target becomes equal to it)
and centre-cropped to H x W: Pillow's ``ImageOps.fit``. Failures are returned as one-line
reasons, never raised, so one bad file cannot stop a pack.
"""

from __future__ import annotations

import io
import re

import numpy as np
from PIL import Image, ImageOps

from deepmimic.data.sources._common import one_line
from deepmimic.data.sources.file_listing import FileItem
from deepmimic.data.sources.image_folder import _GREY_MODES  # the grey/colour rule of image-folder data

Decoded = np.ndarray | str  # uint8 (C, H, W), or why the image was left out
Probed = tuple[bool, tuple[int, int]] | None  # (is colour, (H, W)) from the header; None: unreadable


def open_item(item: FileItem) -> Image.Image:
    """The item as a (lazily decoded) Pillow image; a tar member's bytes are read by offset."""
    if item.size < 0:
        return Image.open(item.path)
    with open(item.path, "rb") as handle:
        handle.seek(item.offset)
        data = handle.read(item.size)
    if len(data) != item.size:
        raise OSError(f"{item.path}: {len(data)} of {item.size} bytes at offset {item.offset} (truncated)")
    return Image.open(io.BytesIO(data))


_IN_MEMORY_FILE = re.compile(r"<_io\.BytesIO object at 0x[0-9a-fA-F]+>")


def fit_image(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """``image`` resized to cover ``size`` = (H, W) and centre-cropped to it (one bilinear resample)."""
    return ImageOps.fit(image, (size[1], size[0]), Image.Resampling.BILINEAR)


def decode_batch(items: list[FileItem], mode: str, size: tuple[int, int]) -> list[Decoded]:
    """Each item as uint8 (C, H, W) in ``mode`` fitted to ``size`` = (H, W), or the reason it is unreadable."""
    out: list[Decoded] = []
    for item in items:
        try:
            with open_item(item) as image:
                array = np.asarray(fit_image(image.convert(mode), size), dtype=np.uint8)  # (H, W) or (H, W, 3)
        except Exception as exc:  # Pillow raises OSError, SyntaxError, ValueError, DecompressionBombError, ...
            out.append(_IN_MEMORY_FILE.sub("the file", one_line(exc)))  # no object address in the report
            continue
        out.append(np.ascontiguousarray(array.reshape(*array.shape[:2], -1).transpose(2, 0, 1)))
    return out


def probe_batch(items: list[FileItem]) -> list[Probed]:
    """Each item's colour and (H, W) from its header (pixels are not decoded); None when unreadable."""
    out: list[Probed] = []
    for item in items:
        try:
            with open_item(item) as image:
                out.append((image.mode not in _GREY_MODES, (image.height, image.width)))
        except Exception:  # left for decode_batch to report as skipped
            out.append(None)
    return out
