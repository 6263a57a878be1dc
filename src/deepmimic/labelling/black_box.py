"""Ask a black-box teacher about many images, in batches: concurrency, validation, progress.

:func:`run_labeler` is what every black-box labelling goes through (the resumable job in
:mod:`deepmimic.labelling.black_box_job`, ``deepmimic label``, ``deepmimic mimic``). It
honours the :class:`~deepmimic.teachers.blackbox.ImageLabeler` extensions ``label_rows``
(answer by row) and ``concurrency`` (batches in flight at once), and validates every answer
with :func:`deepmimic.teachers.base.validate_probs`, so a teacher returning garbage raises a
:class:`~deepmimic.errors.TeacherError` naming it.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import TextIO

import torch
from tqdm import tqdm

from deepmimic.data.rows import Images
from deepmimic.errors import TeacherError
from deepmimic.teachers.base import validate_probs
from deepmimic.teachers.blackbox import ImageLabeler, check_image_set, labeler_concurrency


class LabelProgress:
    """Progress of a labelling run: a tqdm bar on a terminal, plain periodic lines otherwise.

    ``enabled``: None picks the bar when ``stream`` is a TTY; True forces the bar; False
    forces plain lines (one per 10 % of the rows, or every ``interval_s`` seconds).
    """

    def __init__(
        self,
        total: int,
        label: str,
        enabled: bool | None = None,
        stream: TextIO | None = None,
        interval_s: float = 30.0,
    ) -> None:
        self.stream = stream or sys.stderr
        self.total = total
        self.label = label
        self.done = 0
        self.interval_s = interval_s
        self.start = time.monotonic()
        self._last_line = self.start
        self._next_fraction = 0.1
        use_bar = _isatty(self.stream) if enabled is None else enabled
        self.bar = (
            tqdm(total=total, desc=label, unit="img", file=self.stream, leave=False, dynamic_ncols=True)
            if use_bar
            else None
        )

    def advance(self, count: int) -> None:
        self.done += count
        if self.bar is not None:
            self.bar.update(count)
            return
        now = time.monotonic()
        fraction = self.done / self.total if self.total else 1.0
        if fraction >= self._next_fraction or now - self._last_line >= self.interval_s:
            while self._next_fraction <= fraction:
                self._next_fraction += 0.1
            self._last_line = now
            self._line(f"{self.done}/{self.total} images ({100 * fraction:.0f}%, {now - self.start:.1f} s)")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()

    def _line(self, text: str) -> None:
        print(f"[{self.label}] {text}", file=self.stream, flush=True)


def _isatty(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def _answer(labeler: ImageLabeler, images: Images, rows: torch.Tensor) -> torch.Tensor:
    """One batch: rows int64 (B,), the images of those rows uint8 (B, C, H, W) -> probs (B, K)."""
    label_rows = getattr(labeler, "label_rows", None)
    return label_rows(rows) if callable(label_rows) else labeler.label_batch(images[rows])


def _checked(labeler: ImageLabeler, rows: torch.Tensor, probs: object) -> torch.Tensor:
    if not isinstance(probs, torch.Tensor):
        raise TeacherError(f"{labeler.source}: answered with {type(probs).__name__}, not a tensor of probabilities")
    if probs.dim() == 2 and probs.shape[0] != rows.numel():
        raise TeacherError(f"{labeler.source}: answered {probs.shape[0]} rows for a batch of {rows.numel()} images")
    return validate_probs(probs.detach().cpu(), labeler.num_classes, labeler.source)


def run_labeler(
    labeler: ImageLabeler,
    images: Images,
    rows: torch.Tensor | None = None,
    batch_size: int = 256,
    on_batch: Callable[[torch.Tensor, torch.Tensor], None] | None = None,
    progress: bool | None = None,
    stream: TextIO | None = None,
) -> int:
    """Ask ``labeler`` about ``rows`` of ``images`` in batches; returns how many rows were answered.

    images: uint8 (N, C, H, W), a tensor or a streamed RowTable (each batch is read when it is sent);
    rows: int64 (M,) row indices (default: all N, in order).
    Each answered batch is validated (shape (B, K), finite, non-negative, rows sum to 1)
    and handed to ``on_batch(rows (B,), probs (B, K) float32)`` on the calling thread, in
    completion order (not necessarily row order when the labeler has ``concurrency`` > 1).

    If a batch fails, no new batch is started, the batches already in flight are waited
    for and handed to ``on_batch`` (nothing answered is lost), and the first error is raised.
    """
    check_image_set(images, labeler.source)
    if batch_size < 1:
        raise TeacherError(f"batch size must be at least 1, got {batch_size}")
    rows = torch.arange(images.shape[0]) if rows is None else rows.to(torch.int64).reshape(-1)
    batches = list(torch.split(rows, batch_size))  # each int64 (B,)
    bar = LabelProgress(rows.numel(), labeler.source, progress, stream)
    answered = 0

    def deliver(batch_rows: torch.Tensor, probs: object) -> None:
        nonlocal answered
        checked = _checked(labeler, batch_rows, probs)
        if on_batch is not None:
            on_batch(batch_rows, checked)
        answered += batch_rows.numel()
        bar.advance(batch_rows.numel())

    try:
        workers = labeler_concurrency(labeler)
        if workers == 1:
            for batch_rows in batches:
                deliver(batch_rows, _answer(labeler, images, batch_rows))
            return answered
        error: BaseException | None = None
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="deepmimic-label")
        try:
            pending: dict[Future[torch.Tensor], torch.Tensor] = {}
            queue = iter(batches)
            while True:
                while error is None and len(pending) < workers:
                    batch_rows = next(queue, None)
                    if batch_rows is None:
                        break
                    pending[pool.submit(_answer, labeler, images, batch_rows)] = batch_rows
                if not pending:
                    break
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    batch_rows = pending.pop(future)
                    try:
                        deliver(batch_rows, future.result())
                    except Exception as exc:  # keep draining: in-flight answers are kept
                        if error is None:
                            error = exc
        finally:
            # On KeyboardInterrupt the threads in flight finish on their own; nothing new starts.
            pool.shutdown(wait=error is not None, cancel_futures=True)
        if error is not None:
            raise error
        return answered
    finally:
        bar.close()
