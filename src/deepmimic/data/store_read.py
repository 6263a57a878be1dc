"""Reading a packed store without loading it (issue 17): format in :mod:`deepmimic.data.store_format`.

Two ways, chosen by ``stream`` (default: by size, :data:`STREAM_ABOVE_BYTES`):

* mapped (small stores): ``images.u8`` is memory-mapped copy-on-write and the rows are
  tensors sharing that mapping (pages are read when used, nothing is written back);
* streamed (large stores): the rows are a :class:`~deepmimic.data.rows.RowTable` over the
  file, gathered per batch from a memory map whose pages are given back as it goes, so
  neither memory nor the process's resident size grows with the store. Splits and subsets
  compose index arrays.

A store packed with no test rows (a flat folder or tar shards) gets a stratified test
part of ``test_fraction`` of its rows, as an index array.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from deepmimic.data.dataset import ImageDataset, TrainTest
from deepmimic.data.rows import FileRows, Images, RowTable, TensorRows
from deepmimic.data.sources._common import stratified_split
from deepmimic.data.store_format import IMAGES, LABELS, read_header, sha256_file
from deepmimic.errors import DataError

STREAM_ABOVE_BYTES = 2 << 30  # stores above 2 GiB are streamed unless told otherwise


def read_store(
    root: str | Path,
    verify: bool = False,
    stream: bool | None = None,
    test_fraction: float = 0.2,
    seed: int = 0,
) -> TrainTest:
    """The store at ``root`` as a :class:`TrainTest` (mapped or streamed, see the module).

    ``verify`` checks the images' SHA-256 against the header (reads the whole file once);
    ``test_fraction`` and ``seed`` apply only to a store without test rows.
    """
    for name, value in (("verify", verify), ("stream", stream)):
        if value is not None and not isinstance(value, bool):
            raise DataError(f"store option {name} must be true or false, got {value!r}")
    store = Path(root)
    header, images, labels = _open(store, verify, stream)
    if int(labels.min(initial=0)) < 0:
        raise DataError(
            f"{store}: packed without labels (a tar with no .cls files); it can be labelled "
            "(deepmimic label --data store:PATH) but not trained or tested on"
        )
    names = tuple(str(n) for n in header["class_names"])
    n_train, n_test = int(header["train"]), int(header["test"])
    all_labels = torch.from_numpy(labels)
    if n_test:
        train_rows, test_rows = torch.arange(n_train), torch.arange(n_train, n_train + n_test)
    else:  # no test part packed: a stratified one, as image folders get
        train_rows, test_rows = stratified_split(all_labels, test_fraction, seed)
    return TrainTest(
        train=_part(images, all_labels, train_rows, names, f"{store.name}/train"),
        test=_part(images, all_labels, test_rows, names, f"{store.name}/test"),
    )


def read_store_images(root: str | Path, part: str = "train", stream: bool | None = None) -> ImageDataset:
    """The ``part`` rows of a store, in store order, for labelling by a teacher (``deepmimic label``).

    ``train`` is every row packed as training (for a store packed without a test part, that is
    every row, so row i of the labels is line i of ``names.txt``); ``test`` the test rows, a
    one-line error when none were packed. Works on stores packed without labels too: their
    rows get the placeholder class ``"unknown"`` (label 0, ``meta["labels_known"]`` False);
    labels are never sent to a teacher.
    """
    store = Path(root)
    header, images, labels = _open(store, False, stream)
    n_train, n_test = int(header["train"]), int(header["test"])
    if part == "test" and n_test == 0:
        raise DataError(f"{store}: no test rows were packed (a folder or tar without a test part); use --split train")
    rows = torch.arange(n_train) if part == "train" else torch.arange(n_train, n_train + n_test)
    known = int(labels.min(initial=0)) >= 0
    names = tuple(str(n) for n in header["class_names"]) if known else ("unknown",)
    values = torch.from_numpy(labels) if known else torch.zeros(len(labels), dtype=torch.int64)
    dataset = _part(images, values, rows, names, f"{store.name}/{part}")
    dataset.meta["labels_known"] = known
    return dataset


def _open(store: Path, verify: bool, stream: bool | None) -> tuple[dict, Images, np.ndarray]:
    """(header, all images mapped or streamed, int64 labels (N,)) after the checks."""
    header = read_header(store)
    if not header.get("sha256"):
        raise DataError(
            f"{store}: an unfinished pack ({header.get('packed', 0):,} of {header['train'] + header['test']:,} rows); "
            "run deepmimic pack again to finish it"
        )
    if verify and sha256_file(store / IMAGES) != header["sha256"]:
        raise DataError(f"{store}/{IMAGES}: checksum differs from the header (changed or corrupt)")
    total = int(header["train"]) + int(header["test"])
    shape = tuple(int(v) for v in header["shape"])
    expected = total * int(np.prod(shape))
    size = (store / IMAGES).stat().st_size
    if size != expected:
        raise DataError(f"{store}/{IMAGES}: {size:,} bytes, expected {expected:,}")
    try:
        labels = np.load(store / LABELS, allow_pickle=False).astype(np.int64)
    except (OSError, ValueError) as exc:
        raise DataError(f"{store}/{LABELS}: unreadable ({exc})") from exc
    if labels.shape != (total,):
        raise DataError(f"{store}/{LABELS}: {len(labels):,} labels for {total:,} images")
    if stream if stream is not None else size > STREAM_ABOVE_BYTES:
        images: Images = RowTable.of(FileRows(store / IMAGES, total, shape), total)  # type: ignore[arg-type]
    else:
        mapped = np.memmap(store / IMAGES, dtype=np.uint8, mode="c", shape=(total, *shape))
        images = torch.from_numpy(mapped)  # shares the mapping: rows are read when used
    return header, images, labels


def _part(images: Images, labels: torch.Tensor, rows: torch.Tensor, names: tuple[str, ...], name: str) -> ImageDataset:
    """Rows ``rows`` as a dataset, nothing read: a slice of the mapping when contiguous, else an index view."""
    contiguous = len(rows) > 0 and int(rows[-1]) - int(rows[0]) + 1 == len(rows)
    if contiguous and not isinstance(images, RowTable):
        picked: Images = images[int(rows[0]) : int(rows[-1]) + 1]  # a view: still inside the mapping
    elif isinstance(images, RowTable):
        picked = images.take(rows)
    else:  # scattered rows of the mapping (a drawn test part): a table over it, not a copy
        picked = RowTable.of(TensorRows(images), len(images)).take(rows)
    return ImageDataset(picked, labels[rows], names, name=name)
