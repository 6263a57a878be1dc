"""Writing packed image stores (issue 17): format in :mod:`deepmimic.data.store_format`, reading in
:mod:`deepmimic.data.store_read`.

:class:`StoreWriter` appends rows chunk by chunk and records the rows written in the header
after every chunk (written atomically), so an interrupted pack continues where it stopped.
:func:`pack_dataset` packs a data set held in memory with it; :mod:`deepmimic.data.pack_files`
streams image files and tar shards through it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from deepmimic.data.dataset import TrainTest
from deepmimic.data.store_format import FORMAT, HEADER, IMAGES, LABELS, read_header, sha256_file
from deepmimic.errors import DataError
from deepmimic.io_utils import atomic_open, make_output_dir, write_json

CHUNK_ROWS = 4096
PARTIAL_LABELS = "labels.part"  # int64 rows appended while packing; becomes labels.npy when finished


class StoreWriter:
    """Appends rows to the store folder ``out``, resumably.

    ``identity`` (format, shape, source, ...) must match the header of a store already there,
    else a one-line DataError; ``planned`` fields go into a new header without being compared
    (they may change when the pack finishes). ``sides`` are text files appended beside the
    images (e.g. one name per row). After every :meth:`append` the data files are flushed
    first and the header second, so the header never counts rows that are not on disk; a
    writer opened on an unfinished store truncates every file back to what its header counts.
    """

    def __init__(
        self,
        out: str | Path,
        identity: Mapping[str, Any],
        *,
        planned: Mapping[str, Any] | None = None,
        sides: tuple[str, ...] = (),
    ) -> None:
        self.out = Path(out)
        self.row_bytes = int(np.prod(identity["shape"]))  # bytes of one (C, H, W) uint8 row
        self.finished: dict[str, Any] | None = None  # the header, when the store is already complete
        if (self.out / HEADER).exists():
            header = read_header(self.out)
            if {k: header.get(k) for k in identity} != dict(identity):
                raise DataError(f"{self.out}: holds a store of another source or shape; use a new output path")
            self.header = header
            if header.get("sha256"):
                self.finished = header
            else:
                self._cut_back()
            return
        make_output_dir(self.out, "store folder")  # a file in the way is a one-line error
        self.header = {**identity, **(planned or {}), "packed": 0, "sha256": None}
        self.header["progress"] = {"sides": {name: 0 for name in sides}}
        for name in (IMAGES, PARTIAL_LABELS, *sides):
            (self.out / name).write_bytes(b"")
        write_json(self.out / HEADER, self.header)

    @property
    def rows(self) -> int:
        """Rows written so far."""
        return int(self.header["packed"])

    @property
    def progress(self) -> dict[str, Any]:
        """The ``progress`` entry of the header (the caller's resume state besides the rows)."""
        return self.header["progress"]

    def _cut_back(self) -> None:
        """Truncate every file to what the header counts (a crash may have left more)."""
        progress = self.header.setdefault("progress", {"sides": {}})
        if not (self.out / PARTIAL_LABELS).exists():  # a pack from before append mode: start again
            self.header["packed"] = 0
            progress["sides"] = {name: 0 for name in progress.get("sides", {})}
        sizes = {IMAGES: self.rows * self.row_bytes, PARTIAL_LABELS: self.rows * 8, **progress["sides"]}
        for name, size in sizes.items():
            path = self.out / name
            have = path.stat().st_size if path.exists() else 0
            if have < size:
                raise DataError(f"{path}: {have:,} bytes, the header counts {size:,}; use a new output path")
            with open(path, "r+b" if path.exists() else "wb") as handle:
                handle.truncate(size)

    def append(
        self,
        images: np.ndarray,
        labels: np.ndarray,
        *,
        text: Mapping[str, str] | None = None,
        progress: Mapping[str, Any] | None = None,
        **fields: Any,
    ) -> None:
        """Append uint8 ``images`` (B, C, H, W) and ``labels`` (B,), ``text`` to side files; then the header.

        ``progress`` updates the header's resume state, ``fields`` its top-level entries.
        """
        if images.dtype != np.uint8 or int(np.prod(images.shape[1:])) != self.row_bytes:  # a caller's bug
            raise ValueError(f"rows of {images.shape[1:]} {images.dtype}; the store's rows are {self.row_bytes} bytes")
        _append_bytes(self.out / IMAGES, np.ascontiguousarray(images))
        _append_bytes(self.out / PARTIAL_LABELS, np.ascontiguousarray(labels, dtype=np.int64))
        sides = self.progress["sides"]
        for name, chunk in (text or {}).items():
            data = chunk.encode("utf-8")
            _append_bytes(self.out / name, data)
            sides[name] += len(data)
        self.header["packed"] = self.rows + len(images)
        self.progress.update(progress or {})
        self.header.update(fields)
        write_json(self.out / HEADER, self.header)  # atomic: resumable from here

    def finish(self, **fields: Any) -> dict[str, Any]:
        """Write labels.npy and the checksum, drop the resume state; returns the final header."""
        labels = np.fromfile(self.out / PARTIAL_LABELS, dtype=np.int64)  # (rows,): 8 bytes a row
        with atomic_open(self.out / LABELS, "wb") as handle:
            np.save(handle, labels)
        header = {k: v for k, v in self.header.items() if k != "progress"}
        header.update(fields, packed=self.rows, sha256=sha256_file(self.out / IMAGES))
        write_json(self.out / HEADER, header)
        (self.out / PARTIAL_LABELS).unlink(missing_ok=True)
        self.header = self.finished = header
        return header


def _append_bytes(path: Path, data: bytes | np.ndarray) -> None:
    """Append ``data`` to ``path`` and make it durable before the header that counts it."""
    try:
        with open(path, "ab") as handle:
            handle.write(data)  # type: ignore[arg-type]  # ndarray: its C-order buffer
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as exc:  # disk full, permissions: the header still counts only what is on disk
        raise DataError(f"{path}: cannot write ({exc.strerror}); run the pack again to continue") from exc


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
    shape = tuple(shape or data.train.in_shape)  # type: ignore[assignment]
    total = len(data.train) + len(data.test)
    identity = {
        "format": FORMAT,
        "shape": list(shape),
        "train": len(data.train),
        "test": len(data.test),
        "class_names": list(data.train.class_names),
        "source": source,
    }
    writer = StoreWriter(out, identity)
    if writer.finished is not None:
        return writer.finished
    done = writer.rows
    sources, labels = [data.train.images, data.test.images], [data.train.labels, data.test.labels]
    if progress is not None:
        progress(done, total)  # the starting point (rows a previous pack wrote)
    while done < total:
        stop = min(done + chunk_rows, total)
        part = _rows(sources, done, stop)  # uint8 (B, C, H, W) of the source
        if transform is not None:
            part = transform(part)
        if tuple(part.shape[1:]) != shape:
            raise DataError(f"{source}: rows {done}..{stop} have shape {tuple(part.shape[1:])}, the store {shape}")
        writer.append(part.numpy(), _rows(labels, done, stop).numpy())
        done = stop
        if progress is not None:
            progress(done, total)
    return writer.finish()


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
