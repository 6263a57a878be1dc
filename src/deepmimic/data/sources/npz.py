"""NumPy ``.npz`` files: arrays ``images`` and ``labels`` (+ optional test arrays, class names).

``images`` may be (N, H, W), (N, H, W, C) or (N, C, H, W) integers in 0..255. Without
``test_images``/``test_labels`` a stratified ``test_fraction`` is split off. Object arrays
are refused (they would need pickle).

Hostile archives are refused before anything large is allocated: only the arrays named
above are read (other members are ignored); each one's ``.npy`` header must declare
exactly the bytes its zip entry holds; compressed entries together may inflate to at most
:data:`~deepmimic.data.sources._common.MAX_DECOMPRESSED_BYTES`; stored entries may not
claim more bytes than the archive has. Labels number the classes: without
``class_names`` the names are "0".."K-1" with K = largest label + 1, and K (like the
length of ``class_names``) may not exceed :data:`~deepmimic.data.sources._common.MAX_CLASSES`
(100,000), so one label of 10^9 is an error rather than 10^9 class names. An empty
``images`` or ``test_images`` is refused.
"""

from __future__ import annotations

import zipfile
import zlib
from pathlib import Path

import numpy as np
import numpy.lib.format as npy_format
import torch

from deepmimic.data.dataset import ImageDataset, TrainTest
from deepmimic.data.sources import _common
from deepmimic.data.sources._common import (
    NpyProblem,
    check_class_count,
    one_line,
    read_npy_header,
    require_file,
    split_train_test,
    to_labels,
    to_nchw_uint8,
)
from deepmimic.errors import DataError

KEYS = ("images", "labels", "test_images", "test_labels", "class_names")  # the only arrays read


def _open(path: Path) -> dict[str, np.ndarray]:
    """The arrays of :data:`KEYS` the archive holds, each validated before it is allocated."""
    if not zipfile.is_zipfile(path):
        raise DataError(f"{path}: not a readable .npz file (not a zip archive)")
    try:
        archive_size = path.stat().st_size
        with zipfile.ZipFile(path) as archive:
            # np.savez names entries "<key>.npy"; np.load also answers a bare "<key>".
            entries = {info.filename.removesuffix(".npy"): info for info in archive.infolist()}
            arrays: dict[str, np.ndarray] = {}
            inflated = 0  # bytes that compressed entries inflate to, summed
            for key in KEYS:
                info = entries.get(key)
                if info is None:
                    continue
                where = f"{path}: array '{key}'"
                if info.compress_type == zipfile.ZIP_STORED:
                    if info.file_size > archive_size:  # a stored entry's bytes must be in the file
                        raise DataError(
                            f"{where} claims {info.file_size} bytes, more than the archive's {archive_size}"
                        )
                else:
                    inflated += info.file_size
                    if inflated > _common.MAX_DECOMPRESSED_BYTES:
                        raise DataError(
                            f"{where} inflates past {_common.MAX_DECOMPRESSED_BYTES} bytes, "
                            "the limit for compressed data (_common.MAX_DECOMPRESSED_BYTES)"
                        )
                with archive.open(info) as member:  # yields exactly info.file_size bytes, or raises
                    try:
                        read_npy_header(member, info.file_size)
                    except NpyProblem as exc:
                        if exc.objects:
                            raise DataError(
                                f"{path}: contains object arrays, which are refused (save plain numeric/string arrays)"
                            ) from exc
                        raise DataError(f"{path}: not a readable .npz file (array '{key}': {exc})") from exc
                with archive.open(info) as member:  # header checked: the allocation matches the entry
                    arrays[key] = npy_format.read_array(member, allow_pickle=False)
            return arrays
    except DataError:
        raise
    except (OSError, EOFError, ValueError, zlib.error, zipfile.BadZipFile, NotImplementedError, RuntimeError) as exc:
        # damaged entries: CRC mismatch, short data, unsupported compression or encryption
        raise DataError(f"{path}: not a readable .npz file ({one_line(exc)})") from exc


def _part(
    arrays: dict[str, np.ndarray], images_key: str, labels_key: str, path: Path
) -> tuple[torch.Tensor, torch.Tensor]:
    """(images uint8 (N, C, H, W), labels int64 (N,)) from two arrays of the archive."""
    for key in (images_key, labels_key):
        if key not in arrays:
            raise DataError(f"{path}: missing array '{key}' (has: {', '.join(sorted(arrays))})")
    images = to_nchw_uint8(arrays[images_key], f"{path}:{images_key}")
    labels = to_labels(arrays[labels_key], images.shape[0], f"{path}:{labels_key}")
    return images, labels


def _classes(arrays: dict[str, np.ndarray], labels: list[torch.Tensor], path: Path) -> tuple[str, ...]:
    """``class_names`` (str or bytes) if present, else "0".."K-1" with K = max label + 1.

    K was bounded by ``to_labels`` (:data:`MAX_CLASSES`); so is the number of ``class_names``,
    checked before the names become Python strings.
    """
    top = max((int(lab.max()) for lab in labels if lab.numel()), default=0)
    if "class_names" not in arrays:
        check_class_count(top + 1, str(path), f"label {top}")
        return tuple(str(i) for i in range(top + 1))
    names = np.asarray(arrays["class_names"]).reshape(-1)
    if names.dtype.kind not in "US":
        raise DataError(f"{path}: class_names must be strings, got dtype {names.dtype}")
    check_class_count(names.size, str(path), f"class_names with {names.size} entries")
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
