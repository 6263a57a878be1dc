"""Writing packed image stores (issue 17): format in :mod:`deepmimic.data.store_format`, reading in
:mod:`deepmimic.data.store_read`.

:func:`pack_dataset` writes one in chunks and records the rows written in the header after
every chunk (written atomically), so an interrupted pack continues where it stopped.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from deepmimic.data.dataset import TrainTest
from deepmimic.data.store_format import FORMAT, HEADER, IMAGES, LABELS, read_header, sha256_file
from deepmimic.errors import DataError
from deepmimic.io_utils import make_output_dir, write_json

CHUNK_ROWS = 4096


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
        header = read_header(out)
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
    header = {**wanted, "packed": total, "sha256": sha256_file(out / IMAGES)}
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
