"""Packed image stores: one memory-mapped uint8 array on disk, read without loading it (issue 17, first part).

A store is a folder (``NAME.dmstore``)::

    header.json   {"format", "shape": [C, H, W], "train": N_train, "test": N_test, "class_names",
                   "source", "packed": rows written so far, "sha256": of images.u8 once complete}
    images.u8     (N_train + N_test, C, H, W) uint8 in C order: the training rows, then the test rows
    labels.npy    int64 (N_train + N_test,)

:func:`pack_dataset` writes one in chunks and records the rows written in the header after
every chunk (written atomically), so an interrupted pack continues where it stopped.
:func:`read_store` maps ``images.u8`` (copy-on-write: nothing is read until a row is used,
and nothing is ever written back) and returns the training and test rows as tensors that
share that mapping. Batches then read only the rows they gather. What is not built yet:
decoding image files in worker processes, tar shards, and splits that stay index arrays
(the labelled/unlabelled split still copies its rows into memory).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from deepmimic.data.dataset import ImageDataset, TrainTest
from deepmimic.errors import DataError
from deepmimic.io_utils import make_output_dir, write_json

FORMAT = "dmstore-1"
HEADER, IMAGES, LABELS = "header.json", "images.u8", "labels.npy"
CHUNK_ROWS = 4096


def _read_header(store: Path) -> dict[str, Any]:
    if not store.exists():
        raise DataError(f"{store}: no such directory")
    try:
        header = json.loads((store / HEADER).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{store}: not a deepmimic store (no {HEADER}; make one with deepmimic pack)") from None
    except (OSError, ValueError) as exc:
        raise DataError(f"{store}/{HEADER}: unreadable ({exc})") from exc
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise DataError(f"{store}/{HEADER}: not a {FORMAT} header")
    return header


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def pack_dataset(
    data: TrainTest,
    out: str | Path,
    *,
    source: str,
    transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    shape: tuple[int, int, int] | None = None,
    chunk_rows: int = CHUNK_ROWS,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Write ``data`` (training rows, then test rows) into the store ``out``; returns its header.

    ``transform`` maps a uint8 chunk (B, C, H, W) to (B, *shape) (a resize); ``progress(done,
    total)`` is called after every chunk. A store that a pack of the same source and shape
    left unfinished is continued; a finished one is left as it is.
    """
    out = Path(out)
    shape = tuple(shape or data.train.in_shape)  # type: ignore[assignment]
    total = len(data.train) + len(data.test)
    wanted = {
        "format": FORMAT,
        "shape": list(shape),
        "train": len(data.train),
        "test": len(data.test),
        "class_names": list(data.train.class_names),
        "source": source,
    }
    done = 0
    if (out / HEADER).exists():
        header = _read_header(out)
        if {k: header.get(k) for k in wanted} != wanted:
            raise DataError(f"{out}: holds a store of another source or shape; use a new output path")
        if header.get("sha256"):
            return header
        done = int(header.get("packed", 0))
    else:
        make_output_dir(out, "store folder")  # a file in the way is a one-line error
        np.save(out / LABELS, np.concatenate([data.train.labels.numpy(), data.test.labels.numpy()]).astype(np.int64))
        with open(out / IMAGES, "wb") as handle:  # sized once; chunks fill it
            handle.truncate(total * int(np.prod(shape)))
        write_json(out / HEADER, {**wanted, "packed": 0, "sha256": None})
    images = np.memmap(out / IMAGES, dtype=np.uint8, mode="r+", shape=(total, *shape))
    sources = [data.train.images, data.test.images]
    if progress is not None:
        progress(done, total)  # the starting point (rows a previous pack wrote)
    while done < total:
        stop = min(done + chunk_rows, total)
        part = _rows(sources, done, stop)  # uint8 (B, C, H, W) of the source
        if transform is not None:
            part = transform(part)
        if tuple(part.shape[1:]) != shape:
            raise DataError(f"{source}: rows {done}..{stop} have shape {tuple(part.shape[1:])}, the store {shape}")
        images[done:stop] = part.numpy()
        images.flush()
        done = stop
        write_json(out / HEADER, {**wanted, "packed": done, "sha256": None})  # atomic: resumable from here
        if progress is not None:
            progress(done, total)
    del images
    header = {**wanted, "packed": total, "sha256": _sha256(out / IMAGES)}
    write_json(out / HEADER, header)
    return header


def _rows(sources: list[torch.Tensor], start: int, stop: int) -> torch.Tensor:
    """Rows ``start:stop`` of the concatenation of ``sources`` (without concatenating them)."""
    parts, offset = [], 0
    for tensor in sources:
        lo, hi = max(start - offset, 0), min(stop - offset, len(tensor))
        if lo < hi:
            parts.append(tensor[lo:hi])
        offset += len(tensor)
    return torch.cat(parts)


def read_store(root: str | Path, verify: bool = False) -> TrainTest:
    """The store at ``root`` as a :class:`TrainTest` whose images are views of the memory map.

    ``verify`` checks the images' SHA-256 against the header (reads the whole file once).
    """
    store = Path(root)
    header = _read_header(store)
    if not header.get("sha256"):
        raise DataError(
            f"{store}: an unfinished pack ({header.get('packed', 0):,} of {header['train'] + header['test']:,} rows); "
            "run deepmimic pack again to finish it"
        )
    if verify and _sha256(store / IMAGES) != header["sha256"]:
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


def describe_progress(started: float) -> Callable[[int, int], None]:
    """A ``progress`` callback printing rows, images/s and an ETA (for ``deepmimic pack``)."""

    first: list[int] = []  # rows already packed when this process started

    def report(done: int, total: int) -> None:
        if not first:
            first.append(done)
            if done:
                print(f"[pack] continuing after {done:,} of {total:,} images", flush=True)
            return
        elapsed = max(time.perf_counter() - started, 1e-9)
        rate = (done - first[0]) / elapsed
        eta = (total - done) / rate if rate > 0 else 0.0
        print(f"[pack] {done:,}/{total:,} images ({rate:,.0f} images/s, ETA {eta:.0f} s)", flush=True)

    return report
