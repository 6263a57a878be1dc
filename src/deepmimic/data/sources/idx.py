"""MNIST and Fashion-MNIST from the original idx files (gzipped or not).

idx format: a big-endian header (magic 0x00000803 = 2051 for images with dims N, rows,
cols; 0x00000801 = 2049 for labels with N), then the uint8 payload.

The header declares the payload size (the product of the dims), so the file is read as a
stream: the header first, then at most one byte more than it declares. A gzipped file
that inflates past its declared size is refused as soon as it does, and a declared size
above :data:`~deepmimic.data.sources._common.MAX_DECOMPRESSED_BYTES` (gzip) or the file's
own size (plain) is refused before anything is read. An empty set (N = 0) is refused.
"""

from __future__ import annotations

import gzip
import math
import struct
import zlib
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch

from deepmimic.data.dataset import ImageDataset, TrainTest
from deepmimic.data.sources import _common
from deepmimic.data.sources._common import find_first, is_gzipped, one_line, read_bounded, require_dir
from deepmimic.errors import DataError

IMAGES_MAGIC, LABELS_MAGIC = 2051, 2049
FASHION_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
MNIST_CLASSES = tuple(str(d) for d in range(10))


def _candidates(stem: str) -> list[str]:
    return [f"{stem}-ubyte.gz", f"{stem}-ubyte"]


def read_idx(path: Path, expected_magic: int) -> np.ndarray:
    """The payload of an idx file as uint8, shaped by its header; errors name the file."""
    gzipped = is_gzipped(path)
    try:
        with gzip.open(path, "rb") if gzipped else open(path, "rb") as stream:
            # Bytes there are to read: the file's own size when plain (so a lying header is
            # caught before any read); for gzip only the hard ceiling is known in advance.
            available = _common.MAX_DECOMPRESSED_BYTES if gzipped else path.stat().st_size
            return _parse_idx(stream, path, expected_magic, gzipped, available)
    except (OSError, EOFError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError
        raise DataError(f"{path}: cannot read ({one_line(exc)})") from exc


def _parse_idx(stream: BinaryIO, path: Path, expected_magic: int, gzipped: bool, available: int) -> np.ndarray:
    """Header then payload of an open idx stream; ``available`` bounds what may be read."""
    head = read_bounded(stream, 3)  # the 4-byte magic
    if len(head) < 4:
        raise DataError(f"{path}: truncated idx file ({len(head)} bytes)")
    magic = struct.unpack(">I", head)[0]
    if magic != expected_magic:
        raise DataError(f"{path}: wrong idx magic number {magic} (expected {expected_magic})")
    ndim = magic & 0xFF  # 3 for images (N, rows, cols), 1 for labels (N,)
    raw_dims = read_bounded(stream, 4 * ndim - 1)
    if len(raw_dims) < 4 * ndim:
        raise DataError(f"{path}: truncated idx header")
    dims = struct.unpack(f">{ndim}I", raw_dims)
    what = "images" if ndim == 3 else "labels"
    if dims[0] == 0:
        raise DataError(f"{path}: holds no {what} (header says N=0)")
    if 0 in dims:
        raise DataError(f"{path}: header declares an empty image size {dims[1:]}")
    header = 4 + 4 * ndim
    payload = math.prod(dims)  # Python ints: (2^31, 2^31, 4) must not wrap to 0 as np.prod would
    expected = header + payload
    if expected > available:
        if gzipped:
            raise DataError(
                f"{path}: header declares {expected} bytes, above the {available}-byte limit for gzip files "
                "(_common.MAX_DECOMPRESSED_BYTES)"
            )
        raise DataError(f"{path}: truncated idx file ({available} bytes, header says {expected})")
    body = read_bounded(stream, payload)  # at most payload + 1 bytes, even from a gzip bomb
    if len(body) < payload:
        raise DataError(f"{path}: truncated idx file ({header + len(body)} bytes, header says {expected})")
    if len(body) > payload:
        if gzipped:  # stopped one byte past the declared size; the rest is never inflated
            raise DataError(f"{path}: oversized idx file (header says {expected} bytes, it inflates past that)")
        raise DataError(f"{path}: oversized idx file ({available} bytes, header says {expected})")
    return np.frombuffer(body, dtype=np.uint8).reshape(dims)


def _read_part(root: Path, prefix: str, classes: tuple[str, ...], name: str) -> ImageDataset:
    images_path = find_first(root, _candidates(f"{prefix}-images-idx3"), f"{prefix} images")
    labels_path = find_first(root, _candidates(f"{prefix}-labels-idx1"), f"{prefix} labels")
    images = read_idx(images_path, IMAGES_MAGIC)
    labels = read_idx(labels_path, LABELS_MAGIC)
    if images.shape[0] != labels.shape[0]:
        raise DataError(f"{images_path}: {images.shape[0]} images but {labels_path.name} has {labels.shape[0]} labels")
    if labels.size and labels.max() >= len(classes):
        raise DataError(f"{labels_path}: label {int(labels.max())} out of range for {len(classes)} classes")
    return ImageDataset(
        torch.from_numpy(images.copy()).unsqueeze(1),  # (N, 1, 28, 28)
        torch.from_numpy(labels.astype(np.int64)),
        classes,
        name=name,
    )


def load_idx_dataset(root: str | Path, fashion: bool = False) -> TrainTest:
    """Train (train-*) and test (t10k-*) parts from a directory of idx files."""
    directory = require_dir(root)
    classes = FASHION_CLASSES if fashion else MNIST_CLASSES
    base = "fashion-mnist" if fashion else "mnist"
    return TrainTest(
        _read_part(directory, "train", classes, f"{base}/train"),
        _read_part(directory, "t10k", classes, f"{base}/test"),
    )
