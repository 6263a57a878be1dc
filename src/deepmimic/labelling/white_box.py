"""Label an unlabelled set with a teacher's probabilities, in batches.

Images may be a tensor or a streamed :class:`~deepmimic.data.rows.RowTable` (issue 17):
batches are gathered one at a time either way. With ``out`` (e.g. a memory-mapped
``.npy``) each batch's probabilities are written into it as they come, so neither the
images nor the (N, K) probabilities are ever held whole.
"""

from __future__ import annotations

import numpy as np
import torch

from deepmimic import distributed
from deepmimic.data.batches import Normalizer, iterate_eval_batches
from deepmimic.data.rows import Images, take_rows
from deepmimic.errors import DataError, TeacherError
from deepmimic.teachers.base import Teacher, validate_probs

GATHER_BYTES = 1 << 26  # under torchrun with ``out``: gather blocks in rounds of about 64 MB per rank


@torch.no_grad()
def label_images(
    teacher: Teacher,
    images: Images,
    normalizer: Normalizer,
    device: torch.device,
    batch_size: int = 1024,
    out: np.ndarray | None = None,
) -> torch.Tensor:
    """Teacher probabilities (N, K) float32 on the CPU for uint8 ``images`` (N, C, H, W).

    Under torchrun each rank labels its own block of rows and the blocks are gathered, so
    every rank returns the same (N, K) tensor after 1/world of the teacher's work.

    ``out``: a writable float32 array (N, K) (e.g. ``np.lib.format.open_memmap``) that
    receives each batch's rows as they are computed, validated batch by batch; the return
    value is then a tensor sharing ``out``'s memory. Under torchrun every rank writes its
    own block into its ``out`` and then the blocks are exchanged in rounds of about
    :data:`GATHER_BYTES` per rank, read back from and written into ``out`` (so every
    rank's ``out`` ends up whole, and no rank holds more than one round in memory).
    """
    n, k = int(images.shape[0]), int(teacher.num_classes)
    source = type(teacher).__name__
    start, stop = distributed.shard_range(n)
    if out is None:
        chunks = []
        for _, x in iterate_eval_batches(take_rows(images, slice(start, stop)), batch_size, normalizer, device):
            chunks.append(teacher.predict(x).probs.float())
        local = torch.cat(chunks) if chunks else torch.empty(0, k, device=device)
        probs = distributed.all_gather_rows(local, n).cpu()
        return validate_probs(probs, k, source=source)
    _check_out(out, n, k)
    for rows, x in iterate_eval_batches(take_rows(images, slice(start, stop)), batch_size, normalizer, device):
        probs = validate_probs(teacher.predict(x).probs.detach().float().cpu(), k, source=source)  # (B, K)
        if probs.shape[0] != x.shape[0]:
            raise TeacherError(f"{source}: answered {probs.shape[0]} rows for a batch of {x.shape[0]} images")
        out[start + rows.start : start + rows.start + x.shape[0]] = probs.numpy()
    if distributed.is_distributed():
        _exchange_blocks(out, n, device)
    return torch.from_numpy(np.asarray(out))


def _check_out(out: np.ndarray, n: int, k: int) -> None:
    """``out`` must be a writable float32 (N, K) array."""
    if not isinstance(out, np.ndarray) or out.shape != (n, k) or out.dtype != np.float32:
        got = f"{out.dtype} {out.shape}" if isinstance(out, np.ndarray) else type(out).__name__
        raise DataError(f"label_images: out must be a float32 array of shape ({n}, {k}), got {got}")
    if not out.flags.writeable:
        raise DataError("label_images: out is read-only")


def _exchange_blocks(out: np.ndarray, n: int, device: torch.device) -> None:
    """Fill every rank's ``out`` (N, K) with every rank's block, in rounds of bounded size.

    In round j rank r sends rows ``[start_r + j*c, ...)`` of its block (at most c rows);
    the pieces' sizes across ranks are those :func:`~deepmimic.distributed.shard_range`
    gives for their total (blocks differ by at most one row, larger ones first), so
    :func:`~deepmimic.distributed.all_gather_rows` gathers them.
    """
    w, k = distributed.world_size(), out.shape[1]
    blocks = [distributed.shard_range(n, r, w) for r in range(w)]
    c = max(1, GATHER_BYTES // max(1, 4 * k))  # rows per piece
    longest = max(stop - start for start, stop in blocks)
    me = distributed.rank()
    for j in range(0, longest, c):
        pieces = [(start + j, min(stop, start + j + c)) for start, stop in blocks]
        pieces = [(a, max(a, b)) for a, b in pieces]  # (a, a): a block with no rows left
        total = sum(b - a for a, b in pieces)
        a, b = pieces[me]
        local = torch.from_numpy(np.array(out[a:b])).to(device)  # (<= c, K)
        gathered = distributed.all_gather_rows(local, total).cpu().numpy()  # (total, K) in rank order
        offset = 0
        for r, (a, b) in enumerate(pieces):
            if r != me:
                out[a:b] = gathered[offset : offset + b - a]
            offset += b - a
