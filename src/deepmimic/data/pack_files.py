"""Streaming packs of image files (issue 17): ``image-folder:DIR`` and tar shards, never all in memory.

The images are listed in sorted order (:mod:`~deepmimic.data.sources.file_listing`,
:mod:`~deepmimic.data.sources.tar_shards`), decoded in worker processes in batches whose
results are kept in order (so the store does not depend on the number of workers), fitted to
C x H x W (:mod:`~deepmimic.data.file_decode`) and appended to the store in chunks by
:class:`~deepmimic.data.store.StoreWriter`. After every chunk the header records the files
consumed and the rows written; running the same pack again continues from there. An image
Pillow cannot decode is left out and listed in ``skipped.txt``.

Header entries besides those of :mod:`~deepmimic.data.store_format`:

    labelled        false when some image has no class (a tar member without .cls: label -1)
    names           "names.txt": the source name of every row, one a line
    skipped_report  "skipped.txt": NAME<TAB>REASON for every image left out
    skipped         how many images were left out
    files           how many images the source lists
    consumed        how many of those were packed or left out so far
    listing_sha256  fingerprint of the listing (names, labels, train/test): resuming on a changed source is refused

``train`` and ``test`` count the rows of the finished store; while a pack is unfinished they
count the files listed for each part (an upper bound) and ``progress`` holds the resume state.
Names in names.txt and skipped.txt escape backslash, tab, newline and carriage return as
``\\\\``, ``\\t``, ``\\n``, ``\\r`` so each stays on one line.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import os
from collections.abc import Callable, Iterator
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

import numpy as np

from deepmimic.data.file_decode import decode_batch, probe_batch
from deepmimic.data.parallel import ordered_map
from deepmimic.data.sources.file_listing import FileItem, FileListing, list_image_folder
from deepmimic.data.sources.image_folder import check_size
from deepmimic.data.sources.tar_shards import is_tar_source, list_tar_shards
from deepmimic.data.store import StoreWriter
from deepmimic.data.store_format import FORMAT, HEADER, read_header
from deepmimic.errors import DataError

NAMES, SKIPPED = "names.txt", "skipped.txt"
CHUNK_FILES = 1024  # files per header update (fewer when rows are large: see _chunk_files)
CHUNK_BYTES = 64 << 20  # at most this many bytes of decoded rows held before they are written
BATCH_FILES = 32  # files per worker task


def default_workers() -> int:
    """``min(4, CPU count)``: the ``--workers`` default."""
    return min(4, os.cpu_count() or 1)


def file_source(spec: str) -> FileListing | None:
    """The listing of a file source, or None when ``spec`` names another kind of data.

    File sources: ``image-folder:DIR``, ``tar:PATH`` and a bare PATH that is a ``.tar`` file,
    a glob ending in ``.tar`` or a folder holding ``*.tar`` shards.
    """
    kind, sep, root = spec.strip().partition(":")
    if sep and kind in ("image-folder", "tar"):
        if not root:
            raise DataError(f"data spec '{spec}': empty path after '{kind}:'")
        return list_image_folder(root) if kind == "image-folder" else list_tar_shards(root)
    return list_tar_shards(spec) if is_tar_source(spec) else None


def pack_files(
    listing: FileListing,
    out: str | Path,
    *,
    source: str,
    size: tuple[int, int] | None = None,
    channels: int | None = None,
    workers: int = 1,
    chunk_files: int = CHUNK_FILES,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Decode the listed images into the store ``out`` (training images, then test images); returns its header.

    ``size`` = (H, W): every image is resized to cover it and centre-cropped; without it the
    images must share one size. ``channels``: 1 (grey) or 3 (RGB); default 3 if any image is
    colour, else 1. Both defaults read the image headers first (a quick extra pass), unless
    an unfinished store of this listing already fixed them. ``progress(done, total)`` counts
    files after every chunk.
    """
    if channels not in (None, 1, 3):
        raise DataError(f"channels must be 1 or 3, got {channels!r}")
    if workers < 1:
        raise DataError(f"workers must be at least 1, got {workers}")
    size = check_size(size)  # positive, and within Pillow's pixel limit per image
    items, total = listing.items, len(listing.items)
    identity = {  # must match to resume; format and shape join them below
        "class_names": list(listing.class_names),
        "source": source,
        "labelled": listing.labelled,
        "files": total,
        "listing_sha256": listing.fingerprint(),
    }
    shape = _store_shape(listing, Path(out), identity, size, channels, workers, source)
    planned = {"train": listing.n_train, "test": total - listing.n_train, "names": NAMES, "skipped_report": SKIPPED}
    identity = {"format": FORMAT, "shape": list(shape), **identity}
    writer = StoreWriter(out, identity, planned={**planned, "consumed": 0, "skipped": 0}, sides=(NAMES, SKIPPED))
    if writer.finished is not None:
        return writer.finished
    done = int(writer.header["consumed"])
    chunk = _Chunk(writer, listing.n_train, max(1, min(chunk_files, CHUNK_BYTES // writer.row_bytes)))
    if progress is not None:
        progress(done, total)  # the starting point (files a previous pack consumed)
    decode = functools.partial(decode_batch, mode="RGB" if shape[0] == 3 else "L", size=shape[1:])
    with _results(decode, items, done, workers) as results:
        for index, (item, result) in enumerate(zip(itertools.islice(items, done, None), results), start=done):
            if chunk.add(index, item, result) and progress is not None:
                progress(index + 1, total)
    if chunk.flush(total) and progress is not None:
        progress(total, total)
    if writer.rows == 0:  # forget the progress (a rerun after fixing the files starts over); keep the report
        (Path(out) / HEADER).unlink(missing_ok=True)
        raise DataError(f"{source}: no readable images ({total:,} left out; see {Path(out) / SKIPPED})")
    return writer.finish(train=writer.progress["train_rows"], test=writer.rows - writer.progress["train_rows"])


class _Chunk:
    """Decoded rows gathered until ``size`` files are consumed, then appended with the resume state."""

    def __init__(self, writer: StoreWriter, n_train: int, size: int) -> None:
        self.writer, self.n_train, self.size = writer, n_train, size
        self.consumed = int(writer.header["consumed"])
        self.skipped = int(writer.header["skipped"])
        self.train_rows = int(writer.progress.get("train_rows", 0))
        self.rows: list[np.ndarray] = []  # uint8 (C, H, W) each
        self.labels: list[int] = []
        self.names: list[str] = []
        self.reasons: list[str] = []  # skipped.txt lines

    def add(self, index: int, item: FileItem, result: np.ndarray | str) -> bool:
        """Take item ``index``'s decoded row (or its reason to skip); True when this wrote a chunk."""
        if isinstance(result, str):
            self.reasons.append(f"{_escape(item.name)}\t{result}\n")
            self.skipped += 1
        else:
            self.rows.append(result)
            self.labels.append(item.label)
            self.names.append(f"{_escape(item.name)}\n")
            self.train_rows += index < self.n_train
        self.consumed = index + 1
        return self.consumed % self.size == 0 and self.flush(self.consumed)

    def flush(self, consumed: int) -> bool:
        """Append what was gathered (if anything) and record ``consumed`` files; True when written."""
        if consumed != self.consumed or self.writer.header["consumed"] == consumed:
            return False  # nothing new since the last write
        shape = tuple(self.writer.header["shape"])
        self.writer.append(
            np.stack(self.rows) if self.rows else np.empty((0, *shape), dtype=np.uint8),  # (B, C, H, W)
            np.asarray(self.labels, dtype=np.int64),
            text={NAMES: "".join(self.names), SKIPPED: "".join(self.reasons)},
            progress={"train_rows": self.train_rows},
            consumed=consumed,
            skipped=self.skipped,
        )
        self.rows, self.labels, self.names, self.reasons = [], [], [], []
        return True


@contextlib.contextmanager
def _results(
    decode: Callable[[list[FileItem]], list[Any]], items: list[FileItem], start: int, workers: int
) -> Iterator[Any]:
    """Per-item results of ``decode`` from item ``start`` on, in order; the pool stops on leaving."""
    batches = (items[i : i + BATCH_FILES] for i in range(start, len(items), BATCH_FILES))
    with contextlib.closing(ordered_map(decode, batches, workers)) as results:
        try:
            yield itertools.chain.from_iterable(results)
        except BrokenProcessPool as exc:  # a worker was killed (out of memory?) or crashed in a decoder
            raise DataError(f"a decoding worker process died ({exc}); run the pack again to continue") from exc


def _store_shape(
    listing: FileListing,
    out: Path,
    identity: dict[str, Any],
    size: tuple[int, int] | None,
    channels: int | None,
    workers: int,
    source: str,
) -> tuple[int, int, int]:
    """(C, H, W) of the store: the arguments, else a previous pack of this listing, else the image headers."""
    if (size is None or channels is None) and (out / HEADER).is_file():
        header = read_header(out)
        if all(header.get(k) == v for k, v in identity.items()):  # the same listing: keep its shape
            channels, size = channels or header["shape"][0], size or tuple(header["shape"][1:])
    if size is None or channels is None:
        colour, found = _probe(listing, workers, need_size=size is None, source=source)
        channels, size = channels or (3 if colour else 1), size or found
    return int(channels), int(size[0]), int(size[1])


def _probe(listing: FileListing, workers: int, *, need_size: bool, source: str) -> tuple[bool, tuple[int, int]]:
    """(any colour image, the common (H, W)) from the image headers; stops early when the size is not needed."""
    colour, first = False, None  # first: (name, (H, W)) of the first readable image
    with _results(probe_batch, listing.items, 0, workers) as results:
        for item, found in zip(listing.items, results):
            if found is None:
                continue
            colour = colour or found[0]
            if first is None:
                first = (item.name, found[1])
            elif need_size and found[1] != first[1]:
                (h, w), (fh, fw) = found[1], first[1]
                raise DataError(
                    f"{item.name}: image is {h}x{w} (HxW), {first[0]} is {fh}x{fw}; "
                    "pass --size HxW to resize and centre-crop every image"
                )
            if colour and not need_size:
                break
    if first is None:
        raise DataError(f"{source}: no readable images among {len(listing.items):,} files")
    return colour, first[1]


def _escape(name: str) -> str:
    """``name`` on one line: backslash, tab, newline, carriage return escaped; undecodable bytes as \\udcXX."""
    for raw, escaped in (("\\", "\\\\"), ("\t", "\\t"), ("\n", "\\n"), ("\r", "\\r")):
        name = name.replace(raw, escaped)
    return name.encode("utf-8", "backslashreplace").decode("utf-8")
