"""NumPy ``.npz`` files: arrays ``images`` and ``labels`` (+ optional test arrays, class names).

``images`` may be (N, H, W), (N, H, W, C) or (N, C, H, W) integers in 0..255. Without
``test_images``/``test_labels`` a stratified ``test_fraction`` is split off. Loaded with
``allow_pickle=False``: object arrays are refused.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import torch

from deepmimic.data.dataset import ImageDataset, TrainTest
from deepmimic.data.sources._common import one_line, require_file, split_train_test, to_labels, to_nchw_uint8
from deepmimic.errors import DataError


def _open(path: Path) -> dict[str, np.ndarray]:
    if not zipfile.is_zipfile(path):
        raise DataError(f"{path}: not a readable .npz file (not a zip archive)")
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {key: archive[key] for key in archive.files}
    except ValueError as exc:
        if "allow_pickle" in str(exc):  # object arrays need pickle
            raise DataError(f"{path}: contains object arrays, which are refused (save plain numeric/string arrays)") from exc
        raise DataError(f"{path}: not a readable .npz file ({one_line(exc)})") from exc
    except Exception as exc:  # zipfile/zlib/OSError/EOFError on damaged archives
        raise DataError(f"{path}: not a readable .npz file ({one_line(exc)})") from exc


def _part(arrays: dict[str, np.ndarray], images_key: str, labels_key: str, path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """(images uint8 (N, C, H, W), labels int64 (N,)) from two arrays of the archive."""
    for key in (images_key, labels_key):
        if key not in arrays:
            raise DataError(f"{path}: missing array '{key}' (has: {', '.join(sorted(arrays))})")
    images = to_nchw_uint8(arrays[images_key], f"{path}:{images_key}")
    labels = to_labels(arrays[labels_key], images.shape[0], f"{path}:{labels_key}")
    return images, labels


def _classes(arrays: dict[str, np.ndarray], labels: list[torch.Tensor], path: Path) -> tuple[str, ...]:
    """``class_names`` (str or bytes) if present, else "0".."K-1" with K = max label + 1."""
    top = max((int(lab.max()) for lab in labels if lab.numel()), default=0)
    if "class_names" not in arrays:
        return tuple(str(i) for i in range(top + 1))
    names = np.asarray(arrays["class_names"]).reshape(-1)
    if names.dtype.kind not in "US":
        raise DataError(f"{path}: class_names must be strings, got dtype {names.dtype}")
    classes = tuple(n.decode("utf-8", errors="replace") if isinstance(n, bytes) else str(n) for n in names.tolist())
    if top >= len(classes):
        raise DataError(f"{path}: label {top} out of range for {len(classes)} class_names")
    return classes


def read_image_pool(path: str | Path) -> ImageDataset:
    """Every row of an npz as one dataset (e.g. the out-of-domain pool ood-tinyimagenet-32.npz)."""
    p = require_file(path)
    arrays = _open(p)
    images, labels = _part(arrays, "images", "labels", p)
    return ImageDataset(images, labels, _classes(arrays, [labels], p), p.stem)


def load_npz(root: str | Path, test_fraction: float = 0.2, seed: int = 0) -> TrainTest:
    """Train/test parts from an npz: its own ``test_images``/``test_labels``, or a stratified split."""
    p = require_file(root)
    arrays = _open(p)
    images, labels = _part(arrays, "images", "labels", p)
    if "test_images" in arrays or "test_labels" in arrays:
        test_images, test_labels = _part(arrays, "test_images", "test_labels", p)
        classes = _classes(arrays, [labels, test_labels], p)
        return TrainTest(
            ImageDataset(images, labels, classes, f"{p.stem}/train"),
            ImageDataset(test_images, test_labels, classes, f"{p.stem}/test"),
        )
    full = ImageDataset(images, labels, _classes(arrays, [labels], p), p.stem)
    return split_train_test(full, test_fraction, seed, p.stem)
