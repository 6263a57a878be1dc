"""``load_dataset(name, root, **options)``: one entry point for every reader."""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from typing import Any

from deepmimic.data.dataset import ImageDataset, TrainTest
from deepmimic.data.sources.cifar import load_cifar10, load_cifar100
from deepmimic.data.sources.idx import load_idx_dataset
from deepmimic.data.sources.image_folder import load_image_folder
from deepmimic.data.sources.mnist5k import load_mnist5k
from deepmimic.data.sources.npz import load_npz
from deepmimic.data.sources.npz import read_image_pool as _read_pool
from deepmimic.data.sources.tiny_imagenet import load_tiny_imagenet
from deepmimic.data.store_read import read_store
from deepmimic.errors import DataError

_READERS: dict[str, Callable[..., TrainTest]] = {
    "mnist-5k": lambda: load_mnist5k(),
    "mnist": lambda root: load_idx_dataset(root, fashion=False),
    "fashion-mnist": lambda root: load_idx_dataset(root, fashion=True),
    "cifar10": load_cifar10,
    "cifar100": load_cifar100,
    "tiny-imagenet": load_tiny_imagenet,
    "npz": load_npz,
    "image-folder": load_image_folder,
    "store": read_store,  # a packed, memory-mapped store (deepmimic pack)
}
DATASET_NAMES: tuple[str, ...] = tuple(_READERS)


def load_dataset(name: str, root: str | os.PathLike[str] | None = None, **options: Any) -> TrainTest:
    """Read dataset ``name`` from ``root`` (a directory, or a file for ``npz``).

    ``mnist-5k`` is built in and takes no root. Options are reader-specific
    (``test_fraction``/``seed`` for npz and image folders, ``channels``/``size`` for image folders).
    """
    if name not in _READERS:
        raise DataError(f"unknown dataset '{name}'; known datasets: {', '.join(DATASET_NAMES)}")
    reader = _READERS[name]
    params = inspect.signature(reader).parameters
    accepted = [p for p in params if p != "root"]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise DataError(
            f"dataset '{name}' has no option(s) {', '.join(unknown)}; it accepts: {', '.join(accepted) or 'none'}"
        )
    if "root" not in params:
        if root is not None:
            raise DataError(f"dataset '{name}' is built in and takes no root (got {root})")
        return reader(**options)
    if root is None:
        raise DataError(f"dataset '{name}' needs a root: the directory (or file) holding it")
    return reader(root, **options)


def read_image_pool(path: str | os.PathLike[str]) -> ImageDataset:
    """All images of an npz file as one dataset (out-of-domain pools, section 4.3)."""
    return _read_pool(path)
