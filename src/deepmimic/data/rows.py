"""Images whose rows stay on disk until a batch gathers them (issue 17: data larger than memory).

A :class:`RowTable` stands in for a uint8 image tensor (N, C, H, W) everywhere the package
reads images: it has ``shape``, ``dtype``, ``dim()`` and ``len()``, and indexing it
(``table[3:9]``, ``table[index_tensor]``) returns a real uint8 tensor of just those rows,
read from their sources at that moment. Splits, removal and out-of-domain additions do
not copy rows: :func:`take_rows` and :func:`cat_rows` compose index arrays, so a student
set of ten million images costs 10 bytes a row in memory (int64 row + int16 source).

Sources: :class:`FileRows` (a raw uint8 file such as a store's ``images.u8``, gathered
from a read-only memory map whose pages are given back every :data:`RELEASE_ROWS` rows, so
reading an epoch does not grow the process's resident memory by the file's size) and
:class:`TensorRows` (an in-memory tensor, e.g. an out-of-domain pool added to a streamed
student set).

Code that handles images as a whole uses :func:`row_chunks` (hashing, statistics,
labelling) and never ``images.numpy()``.
"""

from __future__ import annotations

import mmap
import os
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from deepmimic.errors import DataError

CHUNK_ROWS = 4096  # rows per chunk for whole-set passes: 12 MB at 3x32x32
_MAP_LOCK = threading.Lock()  # the first map of a FileRows in a process is made once
RELEASE_ROWS = 256  # give mapped pages back after this many rows gathered (bounds resident memory)


class RowSource(Protocol):
    """Something that returns uint8 rows (len(rows), C, H, W) for an int64 array of row numbers."""

    row_shape: tuple[int, int, int]

    def read(self, rows: np.ndarray) -> np.ndarray: ...


@dataclass(eq=False)
class FileRows:
    """Rows of a raw C-order uint8 file of ``n_rows`` x ``row_shape``, gathered from a read-only memory map.

    Gathering a batch is one numpy take from the map. Pages a process touches through a map
    count toward its resident memory, and the kernel maps a whole page-cache folio (up to
    megabytes) per fault, so 256 scattered rows can map hundreds of MB. After every
    :data:`RELEASE_ROWS` rows gathered the map's pages are therefore given back
    (``madvise(MADV_DONTNEED)``): they stay in the OS page cache, and the next read maps
    them again without disk I/O. Measured on a 3 GB store in the page cache, random rows of
    3 KB: 480k rows/s this way, 310k rows/s with a per-row ``os.pread`` loop, 1.4M rows/s
    with a plain map whose resident size grew to the whole file (docs/scaling.md). The map
    is made lazily and per process (a forked worker or a torchrun rank maps its own).
    """

    path: Path
    n_rows: int
    row_shape: tuple[int, int, int]
    _map: mmap.mmap | None = field(default=None, repr=False)
    _array: np.ndarray | None = field(default=None, repr=False)  # (n_rows, row_bytes) over _map
    _pid: int = field(default=-1, repr=False)
    _since_release: int = field(default=0, repr=False)  # rows gathered since the pages were given back

    @property
    def row_bytes(self) -> int:
        return int(np.prod(self.row_shape))

    def _rows(self) -> np.ndarray:
        """The file as a read-only (n_rows, row_bytes) array over this process's map."""
        if self._array is not None and self._pid == os.getpid():
            return self._array
        with _MAP_LOCK:  # a prefetch thread and the main thread may both make the first read
            if self._array is None or self._pid != os.getpid():
                self._open_map()
            return self._array  # type: ignore[return-value]

    def _open_map(self) -> None:
        expected = self.n_rows * self.row_bytes
        try:
            with open(self.path, "rb") as handle:
                size = os.fstat(handle.fileno()).st_size
                if size < expected:  # reading past the end of a map would kill the process (SIGBUS)
                    raise DataError(f"{self.path}: {size:,} bytes, expected {expected:,} (file truncated?)")
                self._map = mmap.mmap(handle.fileno(), expected, access=mmap.ACCESS_READ) if expected else None
        except OSError as exc:
            raise DataError(f"{self.path}: cannot open ({exc.strerror})") from exc
        buffer = self._map if self._map is not None else b""
        self._array = np.frombuffer(buffer, dtype=np.uint8).reshape(self.n_rows, self.row_bytes)
        self._pid = os.getpid()

    def read(self, rows: np.ndarray) -> np.ndarray:
        """(len(rows), C, H, W) uint8 (a copy), in the order of ``rows``."""
        if len(rows) and (int(rows.min()) < 0 or int(rows.max()) >= self.n_rows):
            raise DataError(f"{self.path}: row index out of range [0, {self.n_rows})")
        out = np.take(self._rows(), rows, axis=0)  # (len(rows), row_bytes)
        self._since_release += len(rows)
        if self._since_release >= RELEASE_ROWS and self._map is not None:
            self._map.madvise(mmap.MADV_DONTNEED)  # drop this process's mapped pages, not the page cache
            self._since_release = 0
        return out.reshape(len(rows), *self.row_shape)

    def __getstate__(self) -> dict[str, object]:  # pickled into worker processes: no map travels
        return {"path": self.path, "n_rows": self.n_rows, "row_shape": self.row_shape}

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__init__(**state)  # type: ignore[misc]


@dataclass(eq=False)
class TensorRows:
    """Rows of an in-memory uint8 tensor (N, C, H, W)."""

    tensor: torch.Tensor

    @property
    def row_shape(self) -> tuple[int, int, int]:
        return tuple(int(v) for v in self.tensor.shape[1:])  # type: ignore[return-value]

    def read(self, rows: np.ndarray) -> np.ndarray:
        return self.tensor[torch.from_numpy(rows)].numpy()


Index = int | slice | torch.Tensor | np.ndarray | Sequence[int]


@dataclass(frozen=True, eq=False)
class RowTable:
    """uint8 images (N, C, H, W) whose rows are read from their sources when indexed.

    Attributes:
        sources: where rows come from.
        which: int16 (N,) the source of each row.
        rows: int64 (N,) the row number within that source.
    """

    sources: tuple[RowSource, ...]
    which: np.ndarray
    rows: np.ndarray

    def __post_init__(self) -> None:
        if self.which.shape != self.rows.shape or self.rows.ndim != 1:
            raise DataError(f"row table: {self.which.shape} sources for {self.rows.shape} rows")
        shapes = {tuple(s.row_shape) for s in self.sources}
        if len(shapes) > 1:
            raise DataError(f"row table: sources with different image shapes {sorted(shapes)}")

    @classmethod
    def of(cls, source: RowSource, n_rows: int) -> RowTable:
        """All ``n_rows`` rows of one source, in order."""
        return cls((source,), np.zeros(n_rows, dtype=np.int16), np.arange(n_rows, dtype=np.int64))

    # --- the tensor-like surface the package uses -------------------------------------
    dtype = torch.uint8
    device = torch.device("cpu")
    ndim = 4

    @property
    def shape(self) -> torch.Size:
        return torch.Size((len(self.rows), *self.sources[0].row_shape))

    def dim(self) -> int:
        return 4

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, key: Index) -> torch.Tensor:
        """The rows ``key`` selects, read now, as a uint8 tensor (a copy)."""
        single = isinstance(key, (int, np.integer))
        positions = self._positions(key)
        out = np.empty((len(positions), *self.sources[0].row_shape), dtype=np.uint8)
        which, rows = self.which[positions], self.rows[positions]
        for s, source in enumerate(self.sources):
            mask = which == s
            if mask.all():
                out = source.read(rows)
                break
            if mask.any():
                out[mask] = source.read(rows[mask])
        tensor = torch.from_numpy(out)
        return tensor[0] if single else tensor

    def _positions(self, key: Index) -> np.ndarray:
        n = len(self.rows)
        if isinstance(key, slice):
            return np.arange(n, dtype=np.int64)[key]
        if isinstance(key, (int, np.integer)):
            index = int(key) + (n if int(key) < 0 else 0)
            if not 0 <= index < n:
                raise IndexError(f"row {key} out of range for {n} rows")
            return np.array([index], dtype=np.int64)
        array = key.cpu().numpy() if isinstance(key, torch.Tensor) else np.asarray(key)
        if array.dtype == np.bool_:
            return np.flatnonzero(array)
        return np.asarray(array, dtype=np.int64).reshape(-1)

    def take(self, key: Index) -> RowTable:
        """Rows ``key`` as a new table: index arrays only, no image is read."""
        positions = self._positions(key)
        return RowTable(self.sources, self.which[positions], self.rows[positions])

    def to(self, device: torch.device | str) -> RowTable:
        """A streamed table stays on the host: batches move to ``device`` when gathered."""
        if torch.device(device).type != "cpu":
            raise DataError("streamed images (a store read without loading) cannot be moved to a device whole")
        return self


Images = torch.Tensor | RowTable


def is_streamed(images: Images) -> bool:
    """Whether ``images`` are read from disk per batch (a :class:`RowTable`), not held in memory."""
    return isinstance(images, RowTable)


def take_rows(images: Images, index: torch.Tensor | slice) -> Images:
    """Rows ``index`` of ``images``: a view (slice) or copy for a tensor, an index-array view for a
    :class:`RowTable` (nothing read)."""
    return images.take(index) if isinstance(images, RowTable) else images[index]


def cat_rows(parts: Sequence[Images]) -> Images:
    """The rows of ``parts`` one after another; tensors stay tensors, anything streamed gives a table."""
    if all(isinstance(p, torch.Tensor) for p in parts):
        return torch.cat(list(parts))  # type: ignore[arg-type]
    sources: list[RowSource] = []
    which: list[np.ndarray] = []
    rows: list[np.ndarray] = []
    for part in parts:
        table = part if isinstance(part, RowTable) else RowTable.of(TensorRows(part), len(part))
        ids = []
        for source in table.sources:  # the same source object keeps one id
            found = next((i for i, s in enumerate(sources) if s is source), None)
            if found is None:
                sources.append(source)
                found = len(sources) - 1
            ids.append(found)
        which.append(np.asarray(ids, dtype=np.int16)[table.which])
        rows.append(table.rows)
    if len(sources) > np.iinfo(np.int16).max:
        raise DataError(f"row table: {len(sources)} sources, at most {np.iinfo(np.int16).max}")
    return RowTable(tuple(sources), np.concatenate(which), np.concatenate(rows))


def row_chunks(images: Images, chunk_rows: int = CHUNK_ROWS) -> Iterator[torch.Tensor]:
    """Consecutive uint8 chunks (<= ``chunk_rows``, C, H, W) covering ``images`` in order."""
    for start in range(0, len(images), chunk_rows):
        yield images[start : start + chunk_rows]
