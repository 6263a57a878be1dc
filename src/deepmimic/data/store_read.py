"""Reading a packed store without loading it (issue 17): see :mod:`deepmimic.data.store_format`.

:func:`read_store` maps ``images.u8`` (copy-on-write: nothing is read until a row is used,
and nothing is ever written back) and returns the training and test rows as tensors that
share that mapping. Batches then read only the rows they gather.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from deepmimic.data.dataset import ImageDataset, TrainTest
from deepmimic.data.store_format import IMAGES, LABELS, read_header, sha256_file
from deepmimic.errors import DataError


def read_store(root: str | Path, verify: bool = False) -> TrainTest:
    """The store at ``root`` as a :class:`TrainTest` whose images are views of the memory map.

    ``verify`` checks the images' SHA-256 against the header (reads the whole file once).
    """
    store = Path(root)
    header = read_header(store)
    if not header.get("sha256"):
        raise DataError(
            f"{store}: an unfinished pack ({header.get('packed', 0):,} of {header['train'] + header['test']:,} rows); "
            "run deepmimic pack again to finish it"
        )
    if verify and sha256_file(store / IMAGES) != header["sha256"]:
        raise DataError(f"{store}/{IMAGES}: checksum differs from the header (changed or corrupt)")
    n_train, n_test = int(header["train"]), int(header["test"])
    shape = tuple(int(v) for v in header["shape"])
    expected = (n_train + n_test) * int(np.prod(shape))
    if (store / IMAGES).stat().st_size != expected:
        raise DataError(f"{store}/{IMAGES}: {(store / IMAGES).stat().st_size:,} bytes, expected {expected:,}")
    mapped = np.memmap(store / IMAGES, dtype=np.uint8, mode="c", shape=(n_train + n_test, *shape))
    images = torch.from_numpy(mapped)  # shares the mapping: rows are read when used
    labels = torch.from_numpy(np.load(store / LABELS, allow_pickle=False).astype(np.int64))
    if len(labels) != n_train + n_test:
        raise DataError(f"{store}/{LABELS}: {len(labels):,} labels for {n_train + n_test:,} images")
    names = tuple(str(n) for n in header["class_names"])
    return TrainTest(
        train=ImageDataset(images[:n_train], labels[:n_train], names, name=f"{store.name}/train"),
        test=ImageDataset(images[n_train:], labels[n_train:], names, name=f"{store.name}/test"),
    )
