"""NumPy ``.npz`` files: arrays ``images`` and ``labels`` (+ optional test arrays, class names).

``images`` may be (N, H, W), (N, H, W, C) or (N, C, H, W) integers in 0..255. Without
``test_images``/``test_labels`` a stratified ``test_fraction`` is split off. Loaded with
``allow_pickle=False``: object arrays are refused.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from deepmimic.data.dataset import ImageDataset, TrainTest
from deepmimic.data.sources._common import require_file, split_train_test, to_labels, to_nchw_uint8
from deepmimic.errors import DataError


def _open(path: Path) -> dict[str, np.ndarray]:
    if not zipfile.is_zipfile(path):
        raise DataError(f"{path}: not a readable .npz file (not a zip archive)")
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {key: archive[key] for key in archive.files}
    except ValueError as exc:  # object arrays need pickle
        raise DataError(f"{path}: contains object arrays, which are refused (save plain numeric/string arrays)") from exc
    except (OSError, zipfile.BadZipFile, EOFError) as exc:
        raise DataError(f"{path}: not a readable .npz file ({type(exc).__name__})") from exc


def _part(arrays: dict[str, np.ndarray], images_key: str, labels_key: str, classes: tuple[str, ...] | None, name: str, path: Path) -> ImageDataset:
    for key in (images_key, labels_key):
        if key not in arrays:
            raise DataError(f"{path}: missing array '{key}' (has: {', '.join(sorted(arrays))})")
    images = to_nchw_uint8(arrays[images_key], f"{path}:{images_key}")
    labels = to_labels(arrays[labels_key], images.shape[0], f"{path}:{labels_key}")
    if classes is None:
        classes = tuple(str(i) for i in range(int(labels.max()) + 1 if labels.numel() else 1))
    return ImageDataset(images, labels, classes, name)


def _classes(arrays: dict[str, np.ndarray]) -> tuple[str, ...] | None:
    if "class_names" not in arrays:
        return None
    return tuple(str(n) for n in np.asarray(arrays["class_names"]).reshape(-1))


def read_image_pool(path: str | Path) -> ImageDataset:
    """Every row of an npz as one dataset (e.g. the out-of-domain pool ood-tinyimagenet-32.npz)."""
    p = require_file(path)
    arrays = _open(p)
    return _part(arrays, "images", "labels", _classes(arrays), p.stem, p)


def load_npz(root: str | Path, test_fraction: float = 0.2, seed: int = 0) -> TrainTest:
    """Train/test parts from an npz (its own test arrays, or a stratified split)."""
    p = require_file(root)
    arrays = _open(p)
    classes = _classes(arrays)
    train = _part(arrays, "images", "labels", classes, f"{p.stem}/train", p)
    if "test_images" in arrays or "test_labels" in arrays:
        test = _part(arrays, "test_images", "test_labels", train.class_names, f"{p.stem}/test", p)
        return TrainTest(train, test)
    return split_train_test(train, test_fraction, seed, p.stem)
