"""CIFAR-10 (binary and python versions) and CIFAR-100 (python version).

Binary version: each record is 1 label byte + 3,072 pixel bytes (1,024 R, 1,024 G,
1,024 B, each a row-major 32x32 plane), in data_batch_1..5.bin and test_batch.bin.
Python version: pickled dicts with b"data" (N, 3072) uint8 in the same plane order and
b"labels" (CIFAR-10) or b"fine_labels" (CIFAR-100).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from deepmimic.data.dataset import ImageDataset, TrainTest
from deepmimic.data.sources._common import one_line, require_dir, to_labels
from deepmimic.data.sources.safe_pickle import safe_unpickle
from deepmimic.errors import DataError

RECORD = 1 + 3 * 32 * 32
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def _locate(root: Path, marker: str, subdir: str) -> Path:
    """``root`` itself or ``root/subdir``, whichever holds ``marker``."""
    for candidate in (root, root / subdir):
        if (candidate / marker).is_file():
            return candidate
    raise DataError(f"{root}: no {marker} here or in {subdir}/")


def _images_from_rows(rows: np.ndarray, source: Path) -> torch.Tensor:
    """(N, 3072) rows of R, G, B 32x32 planes -> contiguous uint8 (N, 3, 32, 32)."""
    if rows.ndim != 2 or rows.shape[1] != 3072:
        raise DataError(f"{source}: expected image rows of 3072 bytes, got shape {rows.shape}")
    if rows.shape[0] == 0:
        raise DataError(f"{source}: holds no images")
    if rows.dtype != np.uint8 and (
        not np.issubdtype(rows.dtype, np.integer) or (rows.size and (rows.min() < 0 or rows.max() > 255))
    ):
        raise DataError(f"{source}: image rows must be integers in 0..255, got dtype {rows.dtype}")
    return torch.from_numpy(np.ascontiguousarray(rows.astype(np.uint8, copy=False).reshape(-1, 3, 32, 32)))


def read_cifar_bin(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """(images uint8 (N,3,32,32), labels int64 (N,)) from one binary batch file."""
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    try:
        raw = np.fromfile(path, dtype=np.uint8)  # (N * 3073,)
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({one_line(exc)})") from exc
    if raw.size == 0:
        raise DataError(f"{path}: empty CIFAR binary file")
    if raw.size % RECORD:
        raise DataError(f"{path}: truncated CIFAR binary file ({raw.size} bytes is not a multiple of {RECORD})")
    records = raw.reshape(-1, RECORD)
    labels = records[:, 0].astype(np.int64)
    if labels.max() >= 10:
        raise DataError(f"{path}: label {int(labels.max())} out of range for CIFAR-10")
    return _images_from_rows(records[:, 1:], path), torch.from_numpy(labels)


def _class_names_txt(path: Path) -> tuple[str, ...]:
    """Class names from batches.meta.txt (one a line), or the standard ones if it is absent."""
    if not path.is_file():
        return CIFAR10_CLASSES
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({one_line(exc)})") from exc
    names = tuple(line.strip() for line in text.splitlines() if line.strip())
    if len(names) != 10:
        raise DataError(f"{path}: expected 10 class names, found {len(names)}")
    return names


def _load_cifar10_bin(directory: Path) -> TrainTest:
    parts = [read_cifar_bin(directory / f"data_batch_{i}.bin") for i in range(1, 6)]
    classes = _class_names_txt(directory / "batches.meta.txt")
    train = ImageDataset(torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts]), classes, "cifar10/train")
    test_images, test_labels = read_cifar_bin(directory / "test_batch.bin")
    return TrainTest(train, ImageDataset(test_images, test_labels, classes, "cifar10/test"))


def _decode(name: object, path: Path) -> str:
    """One class name: bytes (decoded as UTF-8) or str; a number is accepted as its digits.

    Anything else is refused: ``str()`` of a nested list whose items the pickle shares by
    reference could be far larger than the file.
    """
    if isinstance(name, bytes):
        return name.decode("utf-8", errors="replace")
    if isinstance(name, (str, int, np.integer)) and not isinstance(name, bool):
        return str(name)
    raise DataError(f"{path}: class names must be strings, got {type(name).__name__}")


def _rows(data: object, path: Path) -> np.ndarray:
    """b"data" as an array of image rows, without letting shared references expand it.

    A pickle may repeat one object by reference (2 bytes per repeat), so ``[row] * 10**6``
    is a small file that ``np.asarray`` would turn into gigabytes. An array is as big as
    its bytes in the file; a list may hold at most as many pixels as the file has bytes
    (an honest pickle spends at least one byte per pixel), each row a flat sequence of
    3,072 integers.
    """
    if isinstance(data, np.ndarray):
        return data
    if not isinstance(data, (list, tuple)):
        raise DataError(f"{path}: b'data' must be an array of image rows, got {type(data).__name__}")
    budget = path.stat().st_size
    if len(data) * 3072 > budget:
        raise DataError(f"{path}: b'data' lists {len(data)} rows of 3072 pixels, more than its {budget} bytes can hold")
    for row in data:
        if isinstance(row, np.ndarray):
            flat = row.ndim == 1
        else:
            flat = isinstance(row, (list, tuple, bytes)) and all(isinstance(v, (int, np.integer)) for v in row)
        if not flat or len(row) != 3072:
            raise DataError(f"{path}: every b'data' row must be 3072 integers")
    try:
        return np.asarray(data)  # (N, 3072): bounded by the checks above
    except (ValueError, TypeError, OverflowError) as exc:
        raise DataError(f"{path}: b'data' is not an array ({one_line(exc)})") from exc


def _pickle_part(path: Path, label_key: bytes) -> tuple[torch.Tensor, torch.Tensor]:
    """(images (N, 3, 32, 32), labels (N,)) from one python-version pickle."""
    batch: Any = safe_unpickle(path)
    if not isinstance(batch, dict) or b"data" not in batch or label_key not in batch:
        raise DataError(f"{path}: expected a dict with b'data' and {label_key!r}")
    images = _images_from_rows(_rows(batch[b"data"], path), path)
    return images, to_labels(batch[label_key], images.shape[0], str(path))  # to_labels refuses ragged or nested lists


def _pickle_names(path: Path, key: bytes, expected: int) -> tuple[str, ...]:
    meta: Any = safe_unpickle(path)
    if not isinstance(meta, dict) or key not in meta:
        raise DataError(f"{path}: expected a dict with {key!r}")
    if not isinstance(meta[key], (list, tuple, np.ndarray)) or (
        isinstance(meta[key], np.ndarray) and meta[key].ndim != 1
    ):
        raise DataError(f"{path}: {key!r} must be a list of names")  # a 0-d array cannot even be iterated
    if len(meta[key]) != expected:  # counted before decoding, however long the list is
        raise DataError(f"{path}: expected {expected} class names, found {len(meta[key])}")
    return tuple(_decode(n, path) for n in meta[key])


def _checked(
    images: torch.Tensor, labels: torch.Tensor, classes: tuple[str, ...], name: str, source: Path
) -> ImageDataset:
    if labels.numel() and int(labels.max()) >= len(classes):
        raise DataError(f"{source}: label {int(labels.max())} out of range for {len(classes)} classes")
    return ImageDataset(images, labels, classes, name)


def _load_cifar10_pickle(directory: Path) -> TrainTest:
    classes = _pickle_names(directory / "batches.meta", b"label_names", 10)
    parts = [_pickle_part(directory / f"data_batch_{i}", b"labels") for i in range(1, 6)]
    train = _checked(
        torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts]), classes, "cifar10/train", directory
    )
    test_images, test_labels = _pickle_part(directory / "test_batch", b"labels")
    return TrainTest(train, _checked(test_images, test_labels, classes, "cifar10/test", directory / "test_batch"))


def load_cifar10(root: str | Path) -> TrainTest:
    """CIFAR-10 from the binary version (preferred when present) or the python version."""
    base = require_dir(root)
    for candidate in (base, base / "cifar-10-batches-bin"):
        if (candidate / "data_batch_1.bin").exists():
            return _load_cifar10_bin(candidate)
    for candidate in (base, base / "cifar-10-batches-py"):
        if (candidate / "data_batch_1").exists():
            return _load_cifar10_pickle(candidate)
    raise DataError(
        f"{base}: no CIFAR-10 batches (data_batch_1.bin or data_batch_1) here or in "
        "cifar-10-batches-bin/ or cifar-10-batches-py/"
    )


def load_cifar100(root: str | Path) -> TrainTest:
    """CIFAR-100 (python version) with its 100 fine labels."""
    directory = _locate(require_dir(root), "train", "cifar-100-python")
    classes = _pickle_names(directory / "meta", b"fine_label_names", 100)
    train_images, train_labels = _pickle_part(directory / "train", b"fine_labels")
    test_images, test_labels = _pickle_part(directory / "test", b"fine_labels")
    return TrainTest(
        _checked(train_images, train_labels, classes, "cifar100/train", directory / "train"),
        _checked(test_images, test_labels, classes, "cifar100/test", directory / "test"),
    )
