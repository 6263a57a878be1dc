"""Data-parallel training with PyTorch's own engine: torch.distributed under torchrun.

``torchrun --nproc-per-node N -m deepmimic run CONFIG`` starts N processes with the
environment variables ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and
``MASTER_PORT``; :func:`init_from_environment` reads them and joins the process group
(NCCL on CUDA, gloo on CPU). Without them everything here is a no-op for one process, so
the rest of the library calls these helpers unconditionally and never branches on them.

The conventions (see docs/scaling.md):
- every rank holds the whole in-memory data set and draws the same epoch permutation;
  each global batch of ``batch_size`` rows is split across ranks (``rows[rank::world]``),
  so N processes with the same ``batch_size`` train on the same global batches as one;
- gradients are averaged by :class:`torch.nn.parallel.DistributedDataParallel`;
- only rank 0 writes files (enforced in :mod:`deepmimic.io_utils`) and prints progress.
"""

from __future__ import annotations

import contextlib
import datetime
import gc
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import torch
import torch.distributed as dist

from deepmimic.errors import ConfigError


@dataclass(frozen=True)
class ProcessGroupInfo:
    """Where this process stands: its rank, how many there are, its local device index."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str = "none"


_INFO = ProcessGroupInfo()


def rank() -> int:
    return _INFO.rank


def world_size() -> int:
    return _INFO.world_size


def is_distributed() -> bool:
    return _INFO.world_size > 1


def is_main() -> bool:
    """True on the one process that writes files and prints (rank 0)."""
    return _INFO.rank == 0


def launched_by_torchrun() -> bool:
    """Whether torchrun (or another launcher) set ``WORLD_SIZE`` for several processes."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_from_environment(device: str = "auto") -> ProcessGroupInfo:
    """Join the process group that torchrun describes in the environment; idempotent.

    ``device``: "auto" picks NCCL with one GPU per local rank when CUDA is present, else
    gloo on the CPU; "cpu" forces gloo. With ``WORLD_SIZE`` unset or 1, returns rank 0 of 1.
    """
    global _INFO
    if _INFO.world_size > 1 or not launched_by_torchrun():
        return _INFO
    try:
        world = int(os.environ["WORLD_SIZE"])
        rank_ = int(os.environ["RANK"])
        local = int(os.environ.get("LOCAL_RANK", "0"))
    except (KeyError, ValueError) as exc:
        raise ConfigError(
            f"distributed launch: RANK/WORLD_SIZE/LOCAL_RANK are missing or not integers ({exc})"
        ) from exc
    use_cuda = device != "cpu" and torch.cuda.is_available()
    # NCCL for CUDA tensors, gloo for CPU ones (soft-label gathers, counters, CPU stages).
    backend = "cpu:gloo,cuda:nccl" if use_cuda else "gloo"
    if use_cuda:
        torch.cuda.set_device(local % torch.cuda.device_count())
    # Ranks meet after labelling blocks of rows that may take very different times (a
    # resumed query log, a slow endpoint): the default 10-30 minute timeout is too short.
    timeout = datetime.timedelta(seconds=float(os.environ.get("DEEPMIMIC_DIST_TIMEOUT_S", 6 * 3600)))
    # torchrun sets OMP_NUM_THREADS=1 for every process when it starts several: on a CPU,
    # N processes then use N cores (docs/scaling.md); set OMP_NUM_THREADS to change that.
    dist.init_process_group(backend=backend, timeout=timeout)
    _INFO = ProcessGroupInfo(rank=rank_, world_size=world, local_rank=local, backend=backend)
    return _INFO


@contextlib.contextmanager
def process_group(device: str = "auto") -> Iterator[ProcessGroupInfo]:
    """Join torchrun's process group for the body and leave it after; silence other ranks' stdout.

    A no-op (rank 0 of 1) when the process was not started by a distributed launcher.
    """
    joined = init_from_environment(device)
    if joined.world_size == 1:
        yield joined
        return
    try:
        with contextlib.ExitStack() as stack:
            if joined.rank != 0:
                stack.enter_context(contextlib.redirect_stdout(stack.enter_context(open(os.devnull, "w"))))
            yield joined
    finally:
        shutdown()


def shutdown() -> None:
    """Leave the process group (end of a torchrun job)."""
    global _INFO
    if dist.is_available() and dist.is_initialized():
        # Free what still holds the group's work (a DDP wrapper in a reference cycle) while the
        # group lives, and leave together: a rank that tears its gloo connections down while the
        # other still has work in flight can abort the other at exit ("terminate called without
        # an active exception", seen in CI on a loaded machine).
        gc.collect()
        with contextlib.suppress(RuntimeError):  # a peer that already failed: leave anyway
            dist.barrier()
        dist.destroy_process_group()
    _INFO = ProcessGroupInfo()


def parse_device(name: str) -> torch.device:
    """A device this machine has, from its name (``cpu``, ``cuda``, ``cuda:1``, ``mps``); else a
    one-line ConfigError."""
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError, TypeError):
        raise ConfigError(f"device '{name}': not a device name (use auto, cpu, cuda, cuda:N or mps)") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(
                f"device '{name}': CUDA is not available on this machine (torch {torch.__version__}); use auto or cpu"
            )
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(f"device '{name}': this machine has {torch.cuda.device_count()} CUDA device(s)")
    elif device.type == "mps":
        if not torch.backends.mps.is_available():
            raise ConfigError(f"device '{name}': MPS is not available on this machine; use auto or cpu")
    elif device.type != "cpu":
        raise ConfigError(
            f"device '{name}': unsupported device type '{device.type}' (use auto, cpu, cuda, cuda:N or mps)"
        )
    return device


def resolve_rank_device(name: str) -> torch.device:
    """The training device of this rank: under torchrun, "auto"/"cuda" mean ``cuda:LOCAL_RANK``."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if is_distributed() and name.startswith("cuda:"):
        raise ConfigError(
            f"device '{name}': under torchrun each process trains on its own GPU (cuda:LOCAL_RANK); "
            "set device: auto or cuda, and choose GPUs with CUDA_VISIBLE_DEVICES"
        )
    device = parse_device(name)
    if device.type == "cuda" and is_distributed():
        return torch.device("cuda", _INFO.local_rank % torch.cuda.device_count())
    return device


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """The element-wise sum of ``tensor`` over ranks (a copy; the input is left as it was)."""
    if not is_distributed():
        return tensor.clone()
    work = tensor.detach().clone()  # CPU tensors go through gloo, CUDA ones through NCCL
    dist.all_reduce(work, op=dist.ReduceOp.SUM)
    return work


def average_gradients(parameters: Iterable[torch.nn.Parameter]) -> None:
    """Average ``.grad`` over ranks in place, for a player stepped outside DDP (a discriminator)."""
    if not is_distributed():
        return
    world = float(_INFO.world_size)
    for p in parameters:
        if p.grad is not None:
            dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
            p.grad.div_(world)


def shard_range(n: int, rank_: int | None = None, world: int | None = None) -> tuple[int, int]:
    """Rows ``[start, stop)`` of ``n`` owned by a rank: contiguous blocks, sizes differing by at most one."""
    r = _INFO.rank if rank_ is None else rank_
    w = _INFO.world_size if world is None else world
    base, extra = divmod(n, w)
    start = r * base + min(r, extra)
    return start, start + base + (1 if r < extra else 0)


def all_gather_rows(local: torch.Tensor, total_rows: int) -> torch.Tensor:
    """Concatenate every rank's block of rows (from :func:`shard_range`) into the full (N, ...) tensor.

    Blocks may differ in size by one row: each is padded to the largest before the
    collective (``all_gather`` needs equal shapes) and the padding is dropped after.
    """
    if not is_distributed():
        return local
    w = _INFO.world_size
    sizes = [shard_range(total_rows, r, w) for r in range(w)]
    longest = max(stop - start for start, stop in sizes)
    padded = torch.zeros((longest, *local.shape[1:]), dtype=local.dtype, device=local.device)
    padded[: local.shape[0]] = local
    gathered = [torch.empty_like(padded) for _ in range(w)]
    dist.all_gather(gathered, padded)
    return torch.cat([g[: stop - start] for g, (start, stop) in zip(gathered, sizes)])


def broadcast_buffers(module: torch.nn.Module) -> None:
    """Copy rank 0's buffers (BatchNorm running statistics) to every rank, in place.

    DDP broadcasts buffers at the start of each forward pass, so after the last training
    step every rank still holds the statistics of its own share; this makes the model
    that is evaluated, used as a teacher and hashed for the soft-label cache the same on
    every rank (rank 0's, which is the one saved).
    """
    if not is_distributed():
        return
    for buffer in module.buffers():
        dist.broadcast(buffer, src=0)


def all_true(flag: bool) -> bool:
    """Whether ``flag`` holds on every rank (a collective: every rank must call it)."""
    if not is_distributed():
        return flag
    return int(all_reduce_sum(torch.tensor([int(bool(flag))])).item()) == _INFO.world_size
