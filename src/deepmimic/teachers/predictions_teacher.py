"""A teacher from a file of precomputed probabilities, aligned row by row with the unlabelled set.

Someone ran the black box elsewhere and handed over a ``.npy`` (float array (N, K)) or a
``.csv`` (N lines of K comma-separated numbers, an optional header line) with one row
per unlabelled image, in the set's order.
"""

from __future__ import annotations

import csv
import hashlib
import os
from pathlib import Path

import numpy as np
import numpy.lib.format as npy_format
import torch

from deepmimic.data.rows import Images, row_chunks
from deepmimic.data.sources._common import NpyProblem, read_npy_header
from deepmimic.errors import TeacherError
from deepmimic.teachers.base import validate_probs
from deepmimic.teachers.blackbox import check_image_set, check_images
from deepmimic.teachers.cached import CachedTeacher

SUFFIXES = (".npy", ".csv")


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__


def _read_npy(path: Path) -> np.ndarray:
    """The array of a ``.npy`` file, its header checked before anything is allocated.

    ``np.load`` alone would call any file without the NumPy magic "pickled data" (it falls
    back to unpickling) and would allocate whatever shape a lying header declares; so the
    header is parsed first: "holds Python objects" only when it parses and declares an
    object dtype, "not a readable .npy file" for a bad header or a size mismatch.
    """
    try:
        with open(path, "rb") as handle:
            try:
                read_npy_header(handle, os.fstat(handle.fileno()).st_size)
            except NpyProblem as exc:
                if exc.objects:
                    raise TeacherError(f"{path}: holds Python objects, which are refused (save a float array)") from exc
                raise TeacherError(f"{path}: not a readable .npy file ({exc})") from exc
            handle.seek(0)
            return npy_format.read_array(handle, allow_pickle=False)  # shape (N, K) once validated below
    except (OSError, EOFError, ValueError) as exc:
        raise TeacherError(f"{path}: not a readable .npy file ({_one_line(exc)})") from exc


def _read_csv(path: Path) -> np.ndarray:
    """Rows of numbers; a first line that is not numeric is taken as a header and skipped."""
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            lines = [
                (number, row)
                for number, row in enumerate(csv.reader(handle), start=1)
                if any(cell.strip() for cell in row)
            ]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise TeacherError(f"{path}: not a readable .csv file ({_one_line(exc)})") from exc
    values: list[list[float]] = []
    for position, (number, row) in enumerate(lines):
        try:
            values.append([float(cell) for cell in row])
        except ValueError as exc:
            if position == 0:
                continue  # header line
            raise TeacherError(f"{path}: line {number} is not all numbers ({_one_line(exc)})") from exc
        if len(values[-1]) != len(values[0]):
            raise TeacherError(
                f"{path}: line {number} has {len(values[-1])} values, expected {len(values[0])} like the first row"
            )
    if not values:
        raise TeacherError(f"{path}: no rows of predictions")
    return np.asarray(values, dtype=np.float64)


def load_predictions(path: str | os.PathLike[str], num_rows: int | None = None, atol: float = 1e-3) -> torch.Tensor:
    """Read and validate a predictions file: probabilities (N, K) float32.

    Checks, each failing with a one-line TeacherError: the file is readable, is 2-D, has
    ``num_rows`` rows (when given), holds no NaN/infinity, no negative value, and every
    row sums to 1 within ``atol``.
    """
    p = Path(path).expanduser()
    if p.suffix.lower() not in SUFFIXES:
        raise TeacherError(f"{p}: predictions must be a .npy or .csv file")
    if not p.is_file():
        raise TeacherError(f"{p}: no such predictions file")
    array = _read_npy(p) if p.suffix.lower() == ".npy" else _read_csv(p)
    if array.dtype.kind not in "fiu":
        raise TeacherError(f"{p}: predictions must be numbers, got dtype {array.dtype}")
    if array.ndim != 2:
        raise TeacherError(f"{p}: predictions must be a 2-D array (N, K), got shape {array.shape}")
    n, k = array.shape
    if n == 0:
        raise TeacherError(f"{p}: no rows of predictions (shape {array.shape})")
    if k < 1:
        raise TeacherError(f"{p}: predictions have no classes (shape {array.shape})")
    if num_rows is not None and n != num_rows:
        raise TeacherError(f"{p}: {n} rows of predictions but the unlabelled set has {num_rows} images")
    values = array.astype(np.float64)
    bad = ~np.isfinite(values).all(axis=1)
    if bad.any():
        raise TeacherError(f"{p}: predictions contain NaN or infinity (first at row {int(np.argmax(bad))})")
    negative = (values < 0).any(axis=1)
    if negative.any():
        raise TeacherError(
            f"{p}: predictions contain negative values (first at row {int(np.argmax(negative))}); "
            "expected probabilities, not logits"
        )
    off = np.abs(values.sum(axis=1) - 1.0)
    if n and off.max() > atol:
        row = int(np.argmax(off > atol))
        raise TeacherError(
            f"{p}: probability rows must sum to 1 within {atol:g} (row {row} sums to {values[row].sum():.6g}); "
            "expected probabilities, not logits"
        )
    return validate_probs(torch.from_numpy(values.astype(np.float32)), k, str(p), atol=atol)


def _digest(image: np.ndarray) -> bytes:
    return hashlib.blake2b(image.tobytes(), digest_size=16).digest()


class PredictionsTeacher:
    """Precomputed probabilities (N, K), one row per image of the unlabelled set.

    As an :class:`~deepmimic.teachers.blackbox.ImageLabeler` it answers by row
    (``label_rows``), which the labelling helpers prefer; ``label_batch`` works too when the
    unlabelled ``images`` were given, by looking each image up by its bytes.
    ``to_cached()`` gives the :class:`CachedTeacher` a student trains with.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        images: Images | None = None,
        num_rows: int | None = None,
        atol: float = 1e-3,
        rows: torch.Tensor | None = None,
    ) -> None:
        """``rows`` (int64 (M,)): the file answers for a set of ``num_rows`` images and ``images``
        are these M rows of it (a subset); the teacher then answers for the subset, row i with
        the file's row ``rows[i]``."""
        if images is not None:
            check_image_set(images, "predictions teacher")
            num_rows = int(images.shape[0]) if num_rows is None else num_rows
        self.path = Path(path).expanduser()
        self.source = self.path.name
        self.probs = load_predictions(self.path, num_rows, atol)  # (N, K) float32
        if rows is not None:
            rows = rows.to(torch.int64).reshape(-1)
            if images is not None and rows.numel() != images.shape[0]:
                raise TeacherError(f"{self.source}: {rows.numel()} rows chosen for {images.shape[0]} images")
            if rows.numel() and (int(rows.min()) < 0 or int(rows.max()) >= self.probs.shape[0]):
                raise TeacherError(f"{self.source}: a chosen row lies outside the file's {self.probs.shape[0]} rows")
            self.probs = self.probs[rows]  # (M, K): row i answers for images[i]
        self.num_classes = int(self.probs.shape[1])
        self.num_rows = int(self.probs.shape[0])
        self._images = images
        self._by_content: dict[bytes, int] | None = None

    def label_rows(self, rows: torch.Tensor) -> torch.Tensor:
        """Probabilities (B, K) of rows int64 (B,) of the unlabelled set."""
        rows = rows.to(torch.int64).reshape(-1)
        if rows.numel() and (int(rows.min()) < 0 or int(rows.max()) >= self.num_rows):
            raise TeacherError(f"{self.source}: asked for rows outside [0, {self.num_rows})")
        return self.probs[rows]

    def label_batch(self, images: torch.Tensor) -> torch.Tensor:
        """Probabilities (B, K) of uint8 ``images`` (B, C, H, W) found in the unlabelled set."""
        check_images(images, self.source)
        if self._images is None:
            raise TeacherError(
                f"{self.source}: precomputed predictions answer by row; give the unlabelled images to look images up"
            )
        if self._by_content is None:
            table: dict[bytes, int] = {}
            row = 0
            for chunk in row_chunks(self._images):  # (<= CHUNK_ROWS, C, H, W): a streamed set is read in pieces
                for image in chunk.contiguous().numpy():
                    table.setdefault(_digest(image), row)
                    row += 1
            self._by_content = table  # a 16-byte digest per row (plus dict overhead), not the images
        rows = []
        for image in images.contiguous().numpy():
            row = self._by_content.get(_digest(image))
            if row is None:
                raise TeacherError(f"{self.source}: an image is not in the unlabelled set these predictions belong to")
            rows.append(row)
        return self.label_rows(torch.tensor(rows, dtype=torch.int64))

    def to_cached(self) -> CachedTeacher:
        """The same probabilities as a :class:`CachedTeacher` (looked up by training-set row)."""
        return CachedTeacher(self.probs.clone(), source=str(self.path))
