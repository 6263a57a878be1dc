"""An append-only on-disk log of a black-box teacher's answers, keyed by row index.

Labelling an unlabelled set through a paid or rate-limited service can take hours, and a
crash must neither lose an answer nor send a row twice. Every answered batch is appended
to the log as one record and the file is flushed and ``os.fsync``'ed before the next
batch is accepted; a restarted run reads the log back, skips the rows in it and counts
them against the query budget.

File layout (little-endian)::

    b"DMQLOG1\\n"                        8-byte magic
    uint32 L, uint32 crc32(header)       then L bytes of UTF-8 JSON:
                                         {"source", "num_classes", "num_rows", "fingerprint"}
    records, each:
      uint32 B, uint32 crc32(payload)
      payload = int64 rows[B] + float32 probs[B * K]   (C order: row-major (B, K))

The header is written to a temporary file and renamed into place, so it is never torn.
A crash while appending can leave only the last record torn (short, or failing its
checksum at the end of the file): it is ignored when reading, and cut off when the log
is opened for writing again. A bad record followed by more data is corruption and
raises :class:`~deepmimic.errors.TeacherError`.
"""

from __future__ import annotations

import json
import mmap
import os
import struct
import tempfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from deepmimic.data.fingerprint import fingerprint
from deepmimic.data.rows import Images
from deepmimic.errors import TeacherError
from deepmimic.io_utils import atomic_path

MAGIC = b"DMQLOG1\n"
_U32x2 = struct.Struct("<II")
HEADER_KEYS = ("source", "num_classes", "num_rows", "fingerprint")
FILE_BACKED_BYTES = 256 * 2**20  # answers (N x K float32) of at least this size live in a scratch file

try:  # advisory lock: two processes appending to one log would interleave records
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


def fingerprint_images(images: Images) -> str:
    """sha256 of the shape and bytes of uint8 ``images`` (N, C, H, W): which set a log belongs to.

    ``images`` may be a tensor or a streamed :class:`~deepmimic.data.rows.RowTable`: the bytes
    are hashed a slice of rows at a time, and the digest is the same for both.
    """
    return fingerprint(images)


Record = tuple[np.ndarray, np.ndarray]  # rows int64 (B,), probs float32 (B, K)
Buffer = bytes | mmap.mmap  # a log's bytes, read or memory-mapped


def _parse_header(path: Path, data: Buffer) -> tuple[dict[str, Any], int]:
    """(header, offset of the first record)."""
    if len(data) < len(MAGIC) + _U32x2.size or data[: len(MAGIC)] != MAGIC:
        raise TeacherError(f"{path}: not a deepmimic query log (bad magic); move it aside to start over")
    length, crc = _U32x2.unpack_from(data, len(MAGIC))
    start = len(MAGIC) + _U32x2.size
    raw = data[start : start + length]
    if len(raw) != length or zlib.crc32(raw) != crc:
        raise TeacherError(f"{path}: query log header is damaged; move it aside to start over")
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise TeacherError(f"{path}: query log header is not JSON ({exc})") from exc
    if not isinstance(header, dict) or any(key not in header for key in HEADER_KEYS):
        raise TeacherError(f"{path}: query log header lacks {', '.join(HEADER_KEYS)}")
    return header, start + length


def _each_record(
    path: Path, data: Buffer, header: dict[str, Any], offset: int, on_record: Callable[[np.ndarray, np.ndarray], None]
) -> tuple[int, int]:
    """Hand every valid record, in order, to ``on_record``; returns (records, offset where they end).

    One record at a time, so a memory-mapped log of any size is never held whole.
    """
    k, n = int(header["num_classes"]), int(header["num_rows"])
    parsed = 0
    while offset < len(data):
        if len(data) - offset < _U32x2.size:
            break  # torn: not even a record header
        count, crc = _U32x2.unpack_from(data, offset)
        size = count * (8 + 4 * k)
        end = offset + _U32x2.size + size
        if count == 0 or end > len(data):
            break  # torn last record (or zeros a crash left after the end)
        payload = data[offset + _U32x2.size : end]
        if zlib.crc32(payload) != crc:
            if end == len(data):
                break  # torn last record
            raise TeacherError(
                f"{path}: query log is corrupt at byte {offset} (record {parsed + 1}); move it aside to start over"
            )
        rows = np.frombuffer(payload, dtype="<i8", count=count)
        probs = np.frombuffer(payload, dtype="<f4", offset=8 * count).reshape(count, k)
        if rows.min() < 0 or rows.max() >= n:
            raise TeacherError(f"{path}: query log record {parsed + 1} has rows outside [0, {n})")
        on_record(rows, probs)
        parsed += 1
        offset = end
    return parsed, offset


def _parse(path: Path, data: Buffer) -> tuple[dict[str, Any], list[Record], int]:
    """(header, [(rows (B,), probs (B, K))...], offset where the valid records end)."""
    header, start = _parse_header(path, data)
    records: list[Record] = []
    _, end = _each_record(path, data, header, start, lambda rows, probs: records.append((rows, probs)))
    return header, records, end


def _answer_table(num_rows: int, num_classes: int, folder: Path) -> torch.Tensor:
    """Zeros (N, K) float32 for a log's answers: in memory, or above :data:`FILE_BACKED_BYTES` in a
    scratch file beside the log (unlinked at once; the OS keeps it while mapped), so the answers
    of ten million images are paged to disk instead of held in memory."""
    nbytes = num_rows * num_classes * 4
    if nbytes < FILE_BACKED_BYTES or nbytes == 0:
        return torch.zeros(num_rows, num_classes, dtype=torch.float32)
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryFile(dir=folder, prefix=".answers-") as scratch:  # removed when the map is gone
        table = np.memmap(scratch, dtype=np.float32, mode="w+", shape=(num_rows, num_classes))  # zeros
    return torch.from_numpy(table)


def read_query_log(path: str | os.PathLike[str]) -> tuple[dict[str, Any], torch.Tensor, torch.Tensor]:
    """Read a log without changing it: (header, rows int64 (M,), probs float32 (M, K)).

    Records come in the order they were appended; a torn last record is left out.
    """
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise TeacherError(f"{p}: cannot read the query log ({exc.strerror or exc})") from exc
    header, records, _ = _parse(p, data)
    k = int(header["num_classes"])
    if not records:
        return header, torch.empty(0, dtype=torch.int64), torch.empty(0, k, dtype=torch.float32)
    rows = torch.from_numpy(np.concatenate([r for r, _ in records]).astype(np.int64))
    probs = torch.from_numpy(np.concatenate([q for _, q in records]).astype(np.float32))
    return header, rows, probs


class QueryLog:
    """An open query log for one teacher and one unlabelled set (see the module docstring).

    Opening an existing log checks that it was written for the same ``source``,
    ``num_classes``, ``num_rows`` and image ``fingerprint``, loads its answers and cuts
    off a torn last record. ``answered`` (N,) bool marks the rows with an answer and
    ``probs`` (N, K) float32 holds them (zeros elsewhere).
    """

    def __init__(
        self, path: str | os.PathLike[str], *, source: str, num_classes: int, num_rows: int, fingerprint: str = ""
    ) -> None:
        self.path = Path(path)
        self.header = {
            "source": source,
            "num_classes": int(num_classes),
            "num_rows": int(num_rows),
            "fingerprint": fingerprint,
        }
        self.num_classes = int(num_classes)
        self.answered = torch.zeros(num_rows, dtype=torch.bool)  # (N,)
        self.probs = _answer_table(num_rows, self.num_classes, self.path.parent)  # (N, K), zeros
        self.records = 0
        self.torn_bytes = 0  # bytes of a torn last record cut off when opening
        # A log this job made is removed on close if no answer came (nothing to resume). It is
        # created exclusively, so two jobs starting at once cannot both believe they made it.
        self._created = not self.path.exists() and self._create(exclusive=True)
        try:
            self._file = open(self.path, "r+b")  # noqa: SIM115 - kept open for appends, closed in close()
        except OSError as exc:
            raise TeacherError(f"{self.path}: cannot open the query log ({exc.strerror or exc})") from exc
        self._inode = os.fstat(self._file.fileno()).st_ino  # the file this job opened (checked before removing it)
        try:
            self._lock()
            self._load()
        except BaseException:
            self._file.close()
            raise

    # -- opening ------------------------------------------------------------------------

    def _create(self, exclusive: bool = False) -> bool:
        """Write a header-only log, atomically (temporary file, fsync, then rename or link).

        ``exclusive``: only if no log exists yet; returns False when another job made one first
        (``os.link`` refuses an existing name, where a rename would replace it).
        """
        raw = json.dumps(self.header, sort_keys=True).encode("utf-8")
        header = MAGIC + _U32x2.pack(len(raw), zlib.crc32(raw)) + raw
        try:
            if not exclusive:
                with atomic_path(self.path, every_rank=True) as tmp:  # one log per process
                    _write_synced(tmp, header)
                made = True
            else:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                fd, name = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
                os.close(fd)
                tmp = Path(name)
                try:
                    _write_synced(tmp, header)
                    os.chmod(tmp, 0o644)
                    try:
                        os.link(tmp, self.path)
                        made = True
                    except FileExistsError:
                        made = False
                finally:
                    tmp.unlink(missing_ok=True)
        except OSError as exc:
            raise TeacherError(f"{self.path}: cannot create the query log ({exc.strerror or exc})") from exc
        _fsync_dir(self.path.parent)
        return made

    def _lock(self) -> None:
        if fcntl is None:  # pragma: no cover
            return
        try:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            raise TeacherError(f"{self.path}: query log is in use by another labelling process") from exc

    def _load(self) -> None:
        size = os.fstat(self._file.fileno()).st_size
        # Memory-mapped, not read, and applied a record at a time: a log is never held whole.
        data: Buffer = mmap.mmap(self._file.fileno(), size, access=mmap.ACCESS_READ) if size else b""
        try:
            header, start = _parse_header(self.path, data)
            mismatched = [key for key in HEADER_KEYS if header.get(key) != self.header[key]]
            if mismatched:
                answered = _each_record(self.path, data, header, start, lambda rows, probs: None)[0]
            else:
                self.records, end = _each_record(self.path, data, header, start, self._apply)
        finally:
            if isinstance(data, mmap.mmap):
                data.close()  # before the file is replaced or truncated below
        if mismatched and not answered:  # nothing answered yet (a run that failed at once): start afresh
            self._create()  # atomically replaces the old header
            self._file.close()
            self._file = open(self.path, "r+b")  # noqa: SIM115
            self._lock()
            self._file.seek(0, os.SEEK_END)
            return
        if mismatched:
            found = ", ".join(f"{key}={header.get(key)!r}" for key in mismatched)
            wanted = ", ".join(f"{key}={self.header[key]!r}" for key in mismatched)
            raise TeacherError(
                f"{self.path}: query log belongs to another labelling job ({found}; this job has {wanted}); "
                "use another log path or delete it to start over"
            )
        if end < size:  # a torn last record from a crash: cut it off before appending
            self.torn_bytes = size - end
            self._file.truncate(end)
            self._file.flush()
            os.fsync(self._file.fileno())
        self._file.seek(end)

    def _apply(self, rows: np.ndarray, probs: np.ndarray) -> None:
        """Put one record's answers in place: rows int64 (B,), probs float32 (B, K)."""
        index = torch.from_numpy(rows.astype(np.int64))
        self.answered[index] = True
        self.probs[index] = torch.from_numpy(probs.astype(np.float32))

    # -- use -----------------------------------------------------------------------------

    @property
    def count(self) -> int:
        """Rows with an answer in the log."""
        return int(self.answered.sum())

    def append(self, rows: torch.Tensor, probs: torch.Tensor) -> None:
        """Record answers: rows int64 (B,), probs float32 (B, K); durable (fsync) on return."""
        rows_np = np.ascontiguousarray(rows.detach().cpu().numpy().astype("<i8").reshape(-1))
        probs_np = np.ascontiguousarray(probs.detach().cpu().numpy().astype("<f4"))
        if rows_np.size == 0:
            return
        if probs_np.shape != (rows_np.size, self.num_classes):
            raise TeacherError(
                f"{self.path}: cannot log probabilities of shape {probs_np.shape} for {rows_np.size} rows"
            )
        if rows_np.min() < 0 or rows_np.max() >= self.answered.numel():
            raise TeacherError(f"{self.path}: cannot log rows outside [0, {self.answered.numel()})")
        payload = rows_np.tobytes() + probs_np.tobytes()
        self._file.write(_U32x2.pack(rows_np.size, zlib.crc32(payload)) + payload)
        self._file.flush()
        os.fsync(self._file.fileno())
        index = torch.from_numpy(rows_np.astype(np.int64))
        self.answered[index] = True
        self.probs[index] = torch.from_numpy(probs_np.astype(np.float32))
        self.records += 1

    def close(self) -> None:
        """Close (releasing the lock); a log this job created that holds no answer is removed.

        A job whose teacher failed before its first answer so leaves nothing behind: there
        is nothing to resume.
        """
        if self._file.closed:
            return
        if self._created and self.records == 0:
            try:  # still under the lock, and only the very file this job made
                if os.stat(self.path).st_ino == self._inode:
                    self.path.unlink()
            except OSError:
                pass
        self._file.close()  # closing releases the flock

    def __enter__(self) -> QueryLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable (best effort; not possible on every OS)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
