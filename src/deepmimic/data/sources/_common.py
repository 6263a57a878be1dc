"""Helpers shared by the readers: path checks, safe decompression, stratified splits."""

from __future__ import annotations

import gzip
import numbers
import zlib
from pathlib import Path

import numpy as np
import torch

from deepmimic.data.dataset import ImageDataset, TrainTest
from deepmimic.errors import DataError

GZIP_MAGIC = b"\x1f\x8b"


def require_dir(path: str | Path) -> Path:
    """``path`` as a Path if it is a directory, else a DataError naming it."""
    p = Path(path).expanduser()
    if not p.is_dir():
        raise DataError(f"{p}: no such directory")
    return p


def require_file(path: str | Path) -> Path:
    """``path`` as a Path if it is a regular file, else a DataError naming it."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise DataError(f"{p}: no such file")
    return p


def one_line(exc: BaseException) -> str:
    """``"TypeName: message"`` of an exception with all whitespace runs folded to one space."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def read_maybe_gzipped(path: Path) -> bytes:
    """File bytes, gunzipped when the file starts with the gzip magic (whatever its name)."""
    try:
        raw = path.read_bytes()
        return gzip.decompress(raw) if raw[:2] == GZIP_MAGIC else raw
    except (OSError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise DataError(f"{path}: cannot read ({one_line(exc)})") from exc


def find_first(directory: Path, names: list[str], what: str) -> Path:
    """The first of ``names`` that exists in ``directory``; else a DataError listing them."""
    for name in names:
        if (directory / name).is_file():
            return directory / name
    raise DataError(f"{directory}: no {what} file (looked for {', '.join(names)})")


def stratified_split(labels: torch.Tensor, fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Split row indices per class: (kept, taken) with round(fraction * class size) taken.

    Both are sorted int64 tensors; reproducible by ``seed``.
    """
    if isinstance(fraction, bool) or not isinstance(fraction, numbers.Real) or not 0 < fraction < 1:
        raise DataError(f"test_fraction must lie in (0, 1), got {fraction}")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise DataError(f"seed must be an integer, got {seed!r}")
    gen = torch.Generator().manual_seed(int(seed))
    kept = [torch.zeros(0, dtype=torch.int64)]  # so an empty ``labels`` gives two empty tensors
    taken = [torch.zeros(0, dtype=torch.int64)]
    for cls in torch.unique(labels).tolist():
        members = torch.nonzero(labels == cls).flatten()
        members = members[torch.randperm(members.numel(), generator=gen)]
        n_take = int(round(fraction * members.numel()))
        taken.append(members[:n_take])
        kept.append(members[n_take:])
    return torch.sort(torch.cat(kept)).values, torch.sort(torch.cat(taken)).values


def split_train_test(full: ImageDataset, test_fraction: float, seed: int, base_name: str) -> TrainTest:
    """A TrainTest from one labelled set by a stratified ``test_fraction``."""
    train_idx, test_idx = stratified_split(full.labels, test_fraction, seed)
    return TrainTest(full.subset(train_idx, f"{base_name}/train"), full.subset(test_idx, f"{base_name}/test"))


def to_nchw_uint8(images: np.ndarray, source: str) -> torch.Tensor:
    """(N,H,W) / (N,H,W,C) / (N,C,H,W) integer array in 0..255 -> contiguous uint8 (N,C,H,W).

    HWC is assumed when the last axis has 1, 3 or 4 entries and axis 1 has neither 1 nor 3.
    """
    if images.dtype == object or not np.issubdtype(images.dtype, np.integer):
        raise DataError(f"{source}: images must be integers in 0..255, got dtype {images.dtype}")
    if images.ndim == 3:
        images = images[:, None, :, :]
    elif images.ndim == 4:
        if images.shape[-1] in (1, 3, 4) and images.shape[1] not in (1, 3):
            images = images.transpose(0, 3, 1, 2)
    else:
        raise DataError(f"{source}: images must have 3 or 4 dimensions, got shape {images.shape}")
    if images.size and (images.min() < 0 or images.max() > 255):
        raise DataError(f"{source}: pixel values must lie in 0..255")
    return torch.from_numpy(np.ascontiguousarray(images.astype(np.uint8, copy=False)))


def to_labels(labels: np.ndarray, count: int, source: str) -> torch.Tensor:
    """Integer (N,) labels as int64, checked against the image count."""
    labels = np.asarray(labels)
    if labels.dtype == object or not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"{source}: labels must be integers, got dtype {labels.dtype}")
    labels = labels.reshape(-1)
    if labels.shape[0] != count:
        raise DataError(f"{source}: {count} images but {labels.shape[0]} labels")
    if labels.size and labels.min() < 0:
        raise DataError(f"{source}: labels must be non-negative")
    return torch.from_numpy(labels.astype(np.int64))
