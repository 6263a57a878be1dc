"""Helpers shared by the readers: path checks, bounded decompression, .npy headers, splits.

Limits that keep a malformed or hostile file from allocating without bound (both are
module constants; assign another value, e.g. ``_common.MAX_DECOMPRESSED_BYTES = 8 << 30``,
to lift them for an unusual dataset):

* :data:`MAX_DECOMPRESSED_BYTES` (4 GiB): the most bytes a gzip file (or a compressed
  member of an ``.npz``) may inflate to. Streams are inflated in chunks and refused as
  soon as they pass it, so a small "gzip bomb" is never held in memory whole.
* :data:`MAX_CLASSES` (100,000): the most classes a dataset may have. Readers that number
  classes by label (``.npz`` without ``class_names``) would otherwise build a name per
  possible label, so one label of 10^9 would mean 10^9 strings.
"""

from __future__ import annotations

import gzip
import math
import numbers
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import numpy.lib.format as npy_format
import torch

from deepmimic.data.dataset import ImageDataset, TrainTest
from deepmimic.errors import DataError

GZIP_MAGIC = b"\x1f\x8b"
MAX_DECOMPRESSED_BYTES = 4 << 30  # 4 GiB: hard ceiling on what any gzip stream may inflate to
MAX_CLASSES = 100_000  # ceiling on the number of classes (so on the largest label + 1)
_CHUNK = 1 << 16  # inflate 64 KiB at a time, so overshooting a limit costs at most this much


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


def read_bounded(stream: BinaryIO, limit: int) -> bytearray:
    """At most ``limit + 1`` bytes of ``stream``, read in chunks (a bytearray: no final copy).

    Getting ``limit + 1`` bytes back tells the caller the stream holds more than ``limit``
    without ever reading (or inflating) more than one byte past it.
    """
    out = bytearray()
    while len(out) <= limit:
        chunk = stream.read(min(_CHUNK, limit + 1 - len(out)))
        if not chunk:
            break
        out += chunk
    return out


def is_gzipped(path: Path) -> bool:
    """Whether the file starts with the gzip magic (whatever its name); DataError if unreadable."""
    try:
        with open(path, "rb") as handle:
            return handle.read(2) == GZIP_MAGIC
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({one_line(exc)})") from exc


def read_maybe_gzipped(path: Path) -> bytes | bytearray:
    """File bytes, gunzipped when the file starts with the gzip magic (whatever its name).

    The gunzipped stream is inflated in chunks and refused (DataError) once it passes
    :data:`MAX_DECOMPRESSED_BYTES`, so a gzip bomb costs at most that much memory.
    """
    limit = MAX_DECOMPRESSED_BYTES  # read at call time so the limit can be changed
    try:
        if not is_gzipped(path):
            return path.read_bytes()
        with gzip.open(path, "rb") as stream:
            data = read_bounded(stream, limit)
    except (OSError, EOFError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError
        raise DataError(f"{path}: cannot read ({one_line(exc)})") from exc
    if len(data) > limit:
        raise DataError(
            f"{path}: inflates past {limit} bytes, the limit for gzip files (_common.MAX_DECOMPRESSED_BYTES)"
        )
    return data


def check_class_count(count: int, source: str, what: str) -> None:
    """DataError unless ``count`` classes (``what`` says where the count comes from) fit :data:`MAX_CLASSES`."""
    if count > MAX_CLASSES:
        raise DataError(
            f"{source}: {what} means {count} classes, above the limit of {MAX_CLASSES} (_common.MAX_CLASSES)"
        )


class NpyProblem(ValueError):
    """A ``.npy`` stream is unusable; ``objects`` is True when the only problem is an object dtype."""

    def __init__(self, reason: str, objects: bool = False) -> None:
        super().__init__(reason)
        self.objects = objects


@dataclass(frozen=True)
class NpyHeader:
    """What a ``.npy`` header declares, checked against the bytes that follow it."""

    shape: tuple[int, ...]
    dtype: np.dtype
    fortran_order: bool
    data_offset: int  # bytes of magic + header before the array data

    @property
    def nbytes(self) -> int:
        """Bytes of array data the header declares (Python ints: no overflow for absurd shapes)."""
        return math.prod(self.shape) * self.dtype.itemsize


def read_npy_header(stream: BinaryIO, total_bytes: int) -> NpyHeader:
    """Parse the header of the ``.npy`` stream (positioned at its start) of ``total_bytes`` bytes.

    Raises :class:`NpyProblem` with a short reason when the magic or header is malformed,
    when the dtype holds Python objects (``objects=True``: loading would need pickle), or
    when the declared shape does not match the data size, so nothing is allocated from a
    header that lies. ``np.load`` itself would report a garbage file as "pickled data"
    (it falls back to unpickling), hence this check first.
    """
    prefix = npy_format.MAGIC_PREFIX
    head = stream.read(len(prefix) + 2)  # b"\x93NUMPY" + major + minor
    if len(head) < len(prefix) + 2 or not head.startswith(prefix):
        raise NpyProblem("bad header: no NumPy magic")
    version = (head[-2], head[-1])
    readers = {(1, 0): npy_format.read_array_header_1_0, (2, 0): npy_format.read_array_header_2_0}
    if version not in readers:
        raise NpyProblem(f"bad header: unsupported .npy version {version[0]}.{version[1]}")
    try:
        shape, fortran_order, dtype = readers[version](stream)
    except Exception as exc:  # ValueError/SyntaxError/TypeError/EOFError on malformed header text
        raise NpyProblem(f"bad header: {one_line(exc)}") from exc
    if dtype.hasobject:
        raise NpyProblem(f"dtype {dtype} holds Python objects", objects=True)
    header = NpyHeader(tuple(int(n) for n in shape), dtype, bool(fortran_order), stream.tell())
    if any(n < 0 for n in header.shape):
        raise NpyProblem(f"bad header: negative shape {header.shape}")
    available = total_bytes - header.data_offset
    if header.nbytes != available:
        raise NpyProblem(
            f"header declares shape {header.shape} of {dtype} ({header.nbytes} bytes) "
            f"but {max(available, 0)} bytes follow it"
        )
    return header


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
    if images.ndim not in (3, 4):
        raise DataError(f"{source}: images must have 3 or 4 dimensions, got shape {images.shape}")
    if images.shape[0] == 0:
        raise DataError(f"{source}: holds no images (shape {images.shape})")
    if 0 in images.shape[1:]:  # (N, 0, W) etc.: images without pixels
        raise DataError(f"{source}: images have an empty dimension (shape {images.shape})")
    if images.ndim == 3:
        images = images[:, None, :, :]
    elif images.shape[-1] in (1, 3, 4) and images.shape[1] not in (1, 3):
        images = images.transpose(0, 3, 1, 2)
    if images.size and (images.min() < 0 or images.max() > 255):
        raise DataError(f"{source}: pixel values must lie in 0..255")
    return torch.from_numpy(np.ascontiguousarray(images.astype(np.uint8, copy=False)))


def to_labels(labels: object, count: int, source: str) -> torch.Tensor:
    """Integer (N,) labels as int64, checked against the image count and :data:`MAX_CLASSES`.

    A list (from a pickle) must be ``count`` plain integers before it becomes an array:
    ``np.asarray`` of nested lists shared by reference could be far larger than the file.
    """
    if isinstance(labels, (list, tuple)):
        if len(labels) != count:
            raise DataError(f"{source}: {count} images but {len(labels)} labels")
        if not all(isinstance(v, (int, np.integer)) for v in labels):
            raise DataError(f"{source}: labels must be a flat list of integers")
    try:
        labels = np.asarray(labels)
    except (ValueError, TypeError) as exc:  # ragged nested lists
        raise DataError(f"{source}: labels are not an array of integers ({one_line(exc)})") from exc
    if labels.dtype == object or not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"{source}: labels must be integers, got dtype {labels.dtype}")
    labels = labels.reshape(-1)
    if labels.shape[0] != count:
        raise DataError(f"{source}: {count} images but {labels.shape[0]} labels")
    if labels.size and labels.min() < 0:
        raise DataError(f"{source}: labels must be non-negative")
    if labels.size:  # before the int64 cast, which would wrap a uint64 label above 2^63 to a negative one
        check_class_count(int(labels.max()) + 1, source, f"label {int(labels.max())}")
    return torch.from_numpy(labels.astype(np.int64))
