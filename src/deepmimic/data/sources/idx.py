"""MNIST and Fashion-MNIST from the original idx files (gzipped or not).

idx format: a big-endian header (magic 0x00000803 = 2051 for images with dims N, rows,
cols; 0x00000801 = 2049 for labels with N), then the uint8 payload.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import torch

from deepmimic.data.dataset import ImageDataset, TrainTest
from deepmimic.data.sources._common import find_first, read_maybe_gzipped, require_dir
from deepmimic.errors import DataError

IMAGES_MAGIC, LABELS_MAGIC = 2051, 2049
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
MNIST_CLASSES = tuple(str(d) for d in range(10))


def _candidates(stem: str) -> list[str]:
    return [f"{stem}-ubyte.gz", f"{stem}-ubyte"]


def read_idx(path: Path, expected_magic: int) -> np.ndarray:
    """The payload of an idx file as uint8, shaped by its header; errors name the file."""
    data = read_maybe_gzipped(path)
    if len(data) < 8:
        raise DataError(f"{path}: truncated idx file ({len(data)} bytes)")
    magic = struct.unpack(">I", data[:4])[0]
    if magic != expected_magic:
        raise DataError(f"{path}: wrong idx magic number {magic} (expected {expected_magic})")
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{path}: truncated idx header")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    expected = header + int(np.prod(dims))
    if len(data) != expected:
        raise DataError(f"{path}: truncated or oversized idx file ({len(data)} bytes, header says {expected})")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


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
