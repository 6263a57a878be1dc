"""``ordered_map``: a function over batches in worker processes, results in input order, bounded in flight."""

from __future__ import annotations

import itertools
import multiprocessing
import signal
import sys
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def _ignore_sigint() -> None:
    """Ctrl-C is the parent's to handle (it stops the pool); workers would only print tracebacks."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def ordered_map(func: Callable[[T], R], batches: Iterable[T], workers: int) -> Iterator[R]:
    """``func(batch)`` for every batch, yielded in input order.

    ``workers`` <= 1 runs here; otherwise ``func`` (a module-level function or a partial of
    one, so it pickles) runs in that many processes with at most ``2 * workers`` batches in
    flight, so results never pile up beyond that. Close the iterator (``contextlib.closing``)
    to stop the pool early; it waits for running batches and cancels the rest.
    """
    if workers <= 1:
        yield from map(func, batches)
        return
    # fork on Linux: workers start at once, without importing the package again (spawn would)
    context = multiprocessing.get_context("fork") if sys.platform == "linux" else None
    executor = ProcessPoolExecutor(workers, mp_context=context, initializer=_ignore_sigint)
    try:
        pending: deque[Future[R]] = deque()
        todo = iter(batches)
        for batch in itertools.islice(todo, 2 * workers):
            pending.append(executor.submit(func, batch))
        while pending:
            result = pending.popleft().result()
            for batch in itertools.islice(todo, 1):
                pending.append(executor.submit(func, batch))
            yield result
    finally:
        executor.shutdown(wait=True, cancel_futures=True)
