"""Resumable, budgeted labelling of an unlabelled image set by a black-box teacher.

``label_dataset`` asks the teacher only about rows that its query log does not hold yet,
appends every answered batch to the log (fsync'ed) and, once every row has an answer,
writes the probabilities (N, K) float32 to a ``.npy`` atomically. Killed at any point and
run again with the same arguments, it resumes: no answered row is sent again and none is
lost. The query budget counts the rows in the log from earlier sessions too; when it runs
out, labelling stops cleanly, the log keeps what was answered and the summary says so.
Rows are asked in row order, or in a given ``order`` (a permutation, e.g. a seeded random
one): a budget then buys the first rows of that order, and a rerun with the same order
asks for exactly the rows the first session did not get to.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import torch

from deepmimic import distributed
from deepmimic.data.rows import Images, take_rows
from deepmimic.errors import TeacherError
from deepmimic.io_utils import atomic_path
from deepmimic.labelling.black_box import run_labeler
from deepmimic.labelling.query_log import QueryLog, fingerprint_images, read_query_log
from deepmimic.teachers.blackbox import BudgetExhaustedError, ImageLabeler, check_image_set

DEFAULT_BATCH_SIZE = 256


def default_log_path(out_path: str | os.PathLike[str]) -> Path:
    """Where the query log of ``out_path`` lives by default: ``probs.npy`` -> ``probs.npy.querylog``."""
    return Path(f"{out_path}.querylog")


WRITE_CHUNK_BYTES = 1 << 24  # probabilities are copied into the output 16 MB at a time


def write_probs(path: str | os.PathLike[str], probs: torch.Tensor | np.ndarray, *, every_rank: bool = False) -> None:
    """Save probabilities (N, K) as a float32 ``.npy``, atomically (temp name, fsync, rename).

    ``every_rank``: write on every rank of a distributed job (each rank's own shard file).
    The file is the one ``np.save`` writes; see :func:`write_probs_parts`.
    """
    write_probs_parts(path, [probs], every_rank=every_rank)


def write_probs_parts(
    path: str | os.PathLike[str], parts: Sequence[torch.Tensor | np.ndarray], *, every_rank: bool = False
) -> None:
    """Save the rows of ``parts`` (each (N_i, K)), one after another, as one float32 ``.npy``.

    The output is a ``np.lib.format.open_memmap`` at a temporary name, filled about
    :data:`WRITE_CHUNK_BYTES` at a time (so no float32 copy of the whole set is made, and
    ``parts`` may be memory maps of shard files), flushed, fsync'ed and renamed into place:
    a failure leaves neither a half-written output nor the temporary file. The bytes are
    those of ``np.save`` of the concatenation.
    """
    arrays = [p.detach().cpu().numpy() if isinstance(p, torch.Tensor) else np.asanyarray(p) for p in parts]
    if not arrays or any(a.ndim != 2 for a in arrays) or len({a.shape[1] for a in arrays}) != 1:
        raise TeacherError(f"{path}: cannot write probabilities of shapes {[a.shape for a in arrays]}")
    n, k = sum(a.shape[0] for a in arrays), arrays[0].shape[1]
    try:
        with atomic_path(path, every_rank=every_rank) as tmp:
            if n * k == 0:  # nothing to map: an empty array, as np.save writes it
                with open(tmp, "wb") as handle:
                    np.save(handle, np.zeros((n, k), dtype=np.float32))
            else:
                _copy_into_npy(tmp, arrays, n, k)
            with open(tmp, "rb+") as handle:
                os.fsync(handle.fileno())
    except OSError as exc:  # the temporary file is gone (atomic_path); the answers stay in the query log
        raise TeacherError(f"{path}: cannot write the probabilities ({exc.strerror or exc})") from exc


def _copy_into_npy(tmp: Path, arrays: list[np.ndarray], n: int, k: int) -> None:
    """Create a float32 (n, k) ``.npy`` at ``tmp`` and copy the rows of ``arrays`` into it in chunks."""
    out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(n, k))
    try:
        step = max(1, WRITE_CHUNK_BYTES // (4 * k))  # rows per chunk
        row = 0
        for array in arrays:
            for start in range(0, array.shape[0], step):
                chunk = array[start : start + step]  # (<= step, K), cast to float32 as it is copied
                out[row : row + chunk.shape[0]] = chunk
                row += chunk.shape[0]
        out.flush()
    finally:
        del out  # close the map before the rename


def label_dataset(
    teacher: ImageLabeler,
    images: Images,
    out_path: str | os.PathLike[str],
    log_path: str | os.PathLike[str] | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: bool | None = None,
    budget: int | None = None,
    stream: TextIO | None = None,
    every_rank: bool = False,
    order: torch.Tensor | None = None,
) -> dict[str, Any]:
    """Label uint8 ``images`` (N, C, H, W) with ``teacher``; write probabilities (N, K) to ``out_path``.

    Args:
        teacher: any :class:`~deepmimic.teachers.blackbox.ImageLabeler`.
        images: the unlabelled set, uint8 (N, C, H, W), in the order rows are numbered: a tensor
            or a streamed :class:`~deepmimic.data.rows.RowTable` (batches are read as they are sent).
        out_path: the ``.npy`` written once every row is labelled (float32 (N, K)).
        log_path: the query log (default ``<out_path>.querylog``); reused when it exists.
        batch_size: images per teacher call.
        progress: None = a bar on a terminal, plain lines otherwise; True = bar; False = lines.
        budget: the most rows the teacher may be asked about, counting rows in the log from
            earlier sessions (default: the teacher's ``budget`` attribute, if any; None = no limit).
        stream: where progress goes (default stderr).
        every_rank: write ``out_path`` on every rank (a shard of :func:`label_dataset_sharded`).
        order: int64 (N,), a permutation of the rows: the order they are asked in (default row
            order); with a budget, the rows answered are the first ones of this order.

    Returns a summary: ``rows`` (N), ``labeled`` (rows with an answer now), ``from_log``
    (answered in earlier sessions), ``queried`` (answered in this one), ``budget``,
    ``budget_exhausted``, ``complete`` (every row labelled and ``out`` written), ``out``
    (the path, or None when incomplete), ``log``, ``source``, ``num_classes``, ``seconds``.
    """
    start = time.monotonic()
    check_image_set(images, teacher.source)
    n, k = int(images.shape[0]), int(teacher.num_classes)
    rows_known = getattr(teacher, "num_rows", None)
    if isinstance(rows_known, int) and rows_known != n:
        raise TeacherError(f"{teacher.source}: answers for {rows_known} rows but the unlabelled set has {n} images")
    if budget is None:
        budget = getattr(teacher, "budget", None)
    if budget is not None and budget < 0:
        raise TeacherError(f"the query budget must be non-negative, got {budget}")
    if order is not None:
        order = order.to(torch.int64).reshape(-1)
        if order.numel() != n or not torch.equal(order.sort().values, torch.arange(n)):
            raise TeacherError(f"the query order must be a permutation of the {n} rows")
    out = Path(out_path)
    log_file = Path(log_path) if log_path is not None else default_log_path(out)
    if log_file.resolve() == out.resolve():
        raise TeacherError(f"{out}: the query log cannot be the output file")

    identity = str(getattr(teacher, "identity", teacher.source))  # what the log must have been written by
    with QueryLog(log_file, source=identity, num_classes=k, num_rows=n, fingerprint=fingerprint_images(images)) as log:
        from_log = log.count
        if order is None:
            todo = torch.nonzero(~log.answered).reshape(-1)  # (M,) rows without an answer, in order
        else:
            todo = order[~log.answered[order]]  # (M,) rows without an answer, in the given order
            if budget is not None and from_log < budget and bool(log.answered[order[budget:]].any()):
                raise TeacherError(
                    f"{log_file}: the query log holds answers for rows outside the first {budget} of this query "
                    "order (asked in another order: another seed or budget order?); resume with the same ones, "
                    "or start in a new output folder"
                )
        allowed = todo.numel() if budget is None else max(0, min(todo.numel(), budget - from_log))
        stopped_by_teacher = False
        if allowed:
            try:
                run_labeler(
                    teacher, images, todo[:allowed], batch_size, on_batch=log.append, progress=progress, stream=stream
                )
            except BudgetExhaustedError:
                stopped_by_teacher = True  # the teacher's own cap; what it answered is in the log
            except TeacherError as exc:
                if log.count == 0:
                    raise
                raise TeacherError(
                    f"{exc} ({log.count} of {n} rows answered so far are kept in {log_file}; run again to resume)"
                ) from exc
        labeled = log.count
        complete = labeled == n
        if complete:
            write_probs(out, log.probs, every_rank=every_rank)
    return {
        "rows": n,
        "labeled": labeled,
        "from_log": from_log,
        "queried": labeled - from_log,
        "budget": getattr(teacher, "budget", budget) if stopped_by_teacher else budget,
        "budget_exhausted": not complete and (stopped_by_teacher or allowed < todo.numel()),
        "complete": complete,
        "out": str(out) if complete else None,
        "log": str(log_file),
        "source": teacher.source,
        "num_classes": k,
        "seconds": round(time.monotonic() - start, 3),
    }


def shard_path(path: str | os.PathLike[str], rank: int, world: int) -> Path:
    """``probs.npy`` -> ``probs.npy.rank0-of-2``: where one rank's share of a sharded job goes."""
    return Path(f"{path}.rank{rank}-of-{world}")


def label_dataset_sharded(
    teacher: ImageLabeler,
    images: Images,
    out_path: str | os.PathLike[str],
    log_path: str | os.PathLike[str] | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: bool | None = None,
    budget: int | None = None,
    order: torch.Tensor | None = None,
) -> dict[str, Any]:
    """:func:`label_dataset` split across the ranks of a torchrun job, merged into one file.

    Rank r labels its contiguous block of rows (:func:`deepmimic.distributed.shard_range`)
    with its own query log (``<log>.rank{r}-of-{W}``) and shard (``<out>.rank{r}-of-{W}``),
    and gets its block's share of the budget. Once every shard is complete, rank 0
    concatenates them in row order into ``out_path`` (atomically) and removes the shards;
    the logs stay, so a rerun with the same number of processes resumes each block.
    ``order`` (a permutation of all rows) is followed within each block. Without torchrun
    this is :func:`label_dataset`.
    """
    r, w, n = distributed.rank(), distributed.world_size(), int(images.shape[0])
    log = Path(log_path) if log_path is not None else default_log_path(out_path)
    _refuse_other_layouts(log, w)
    if w == 1:
        return label_dataset(teacher, images, out_path, log, batch_size, progress, budget, order=order)
    quiet = None if distributed.is_main() else open(os.devnull, "w")  # noqa: SIM115 - closed below
    try:
        if isinstance(getattr(teacher, "num_rows", None), int):
            # A predictions file answers by row and costs no queries: every rank reads it
            # whole (its own log); rank 0 writes the output.
            summary = label_dataset(
                teacher,
                images,
                out_path,
                shard_path(log, r, w),
                batch_size,
                progress,
                budget,
                stream=quiet,
                order=order,
            )
            distributed.barrier()
            return summary
        if budget is None:
            budget = getattr(teacher, "budget", None)  # the teacher's own cap is for the whole job
        share = None
        if budget is not None:
            b_start, b_stop = distributed.shard_range(budget)
            share = b_stop - b_start
            if hasattr(teacher, "budget"):
                teacher.budget = share  # type: ignore[union-attr]  # each process may send only its share
        start, stop = distributed.shard_range(n)
        local_order = None
        if order is not None:  # this block's rows, in the order they come in ``order``
            order = order.to(torch.int64).reshape(-1)
            local_order = order[(order >= start) & (order < stop)] - start
        summary = label_dataset(
            teacher,
            take_rows(images, slice(start, stop)),
            shard_path(out_path, r, w),
            shard_path(log, r, w),
            batch_size,
            progress,
            share,
            stream=quiet,
            every_rank=True,
            order=local_order,
        )
    finally:
        if quiet is not None:
            quiet.close()
    counts = distributed.all_reduce_sum(
        torch.tensor(
            [
                summary["labeled"],
                summary["from_log"],
                summary["queried"],
                int(summary["complete"]),
                int(summary["budget_exhausted"]),
            ],
            dtype=torch.int64,
        )
    )
    labeled, from_log, queried, complete_shards, exhausted = (int(v) for v in counts.tolist())
    complete = complete_shards == w
    if complete and distributed.is_main():
        # Memory maps of the shards, streamed into the output: no (N, K) array in memory.
        parts = [np.load(shard_path(out_path, q, w), mmap_mode="r") for q in range(w)]
        write_probs_parts(out_path, parts)
        del parts
        for q in range(w):
            shard_path(out_path, q, w).unlink(missing_ok=True)
    distributed.barrier()
    return {
        **summary,
        "rows": n,
        "labeled": labeled,
        "from_log": from_log,
        "queried": queried,
        "budget": budget,
        "budget_exhausted": exhausted > 0,
        "complete": complete,
        "out": str(out_path) if complete else None,
        "log": f"{shard_path(log, 0, w)} .. {shard_path(log, w - 1, w)}",
        "shard_logs": [str(shard_path(log, q, w)) for q in range(w)],
    }


def _refuse_other_layouts(log: Path, world: int) -> None:
    """A job's query logs are per process count; refuse to start afresh beside another layout's
    answers (they would be asked again and the budget spent twice)."""
    found = sorted(p.name for p in log.parent.glob(f"{log.name}.rank*-of-*") if not p.name.endswith(f"-of-{world}"))
    if world > 1 and log.exists():  # the single-process log
        found.insert(0, log.name)
    if found:
        raise TeacherError(
            f"{log.parent}: query logs of a run with another number of processes exist ({', '.join(found[:3])}); "
            f"run again with that number of processes to resume, or move them away to start over"
        )


def read_answers(summary: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
    """(rows (M,) in increasing order, probs (M, K)) answered so far, from the query log(s) of a
    :func:`label_dataset` or :func:`label_dataset_sharded` summary (whose shard rows are local)."""
    logs = summary.get("shard_logs") or [summary["log"]]
    all_rows, all_probs = [], []
    for q, path in enumerate(logs):
        if not Path(path).exists():  # a log that got no answer is removed when it closes: nothing answered there
            continue
        _, rows, probs = read_query_log(path)
        start, _ = distributed.shard_range(int(summary["rows"]), q, len(logs))
        all_rows.append(rows + start)
        all_probs.append(probs)
    if not all_rows:
        return torch.zeros(0, dtype=torch.int64), torch.zeros(0, int(summary["num_classes"]), dtype=torch.float32)
    rows, probs = torch.cat(all_rows), torch.cat(all_probs)
    order = rows.argsort()
    return rows[order], probs[order]
