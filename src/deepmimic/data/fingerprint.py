"""Content fingerprints of data: which exact images (and labels) a result came from.

Images may be a tensor or a streamed :class:`~deepmimic.data.rows.RowTable` (issue 17):
either is hashed a slice of rows at a time, so a set larger than memory is never held
whole, and the digest is the same as hashing all the bytes at once (SHA-256 of the
concatenation), so fingerprints and cache keys made before streaming stay valid.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from deepmimic.data.rows import RowTable, is_streamed, row_chunks

_SLICE = 1 << 24  # hash in 16 MB slices: no second copy of a large set

Hashable = torch.Tensor | RowTable


def _rows_per_slice(data: Hashable) -> int:
    """How many leading-dimension rows make about one ``_SLICE`` of bytes (at least 1)."""
    row_bytes = int(np.prod(tuple(data.shape[1:]), dtype=np.int64)) * _itemsize(data)
    return max(1, _SLICE // max(1, row_bytes))


def _itemsize(data: Hashable) -> int:
    return 1 if is_streamed(data) else int(data.element_size())  # a RowTable holds uint8


def byte_slices(data: Hashable) -> Iterator[np.ndarray]:
    """The C-order bytes of ``data`` as consecutive uint8 arrays of about 16 MB each.

    A tensor is cut along its first dimension (a contiguous CPU tensor is not copied; any
    other is copied one slice at a time); a RowTable's rows are read slice by slice.
    """
    if is_streamed(data):
        for chunk in row_chunks(data, _rows_per_slice(data)):  # uint8 (<= rows, C, H, W), a fresh copy
            yield chunk.numpy().reshape(-1)
        return
    tensor = data.detach()
    if tensor.dim() == 0:
        yield tensor.cpu().contiguous().reshape(-1).numpy().view("uint8")
        return
    step = _rows_per_slice(tensor)
    for start in range(0, tensor.shape[0], step):
        part = tensor[start : start + step].cpu().contiguous().reshape(-1)  # (rows * ...,) in C order
        yield part.numpy().view("uint8")


def update_digest(digest: Any, data: Hashable) -> None:
    """Feed the C-order bytes of ``data`` (not its shape) into a hashlib ``digest``, slice by slice."""
    for part in byte_slices(data):
        digest.update(part)


def fingerprint(*tensors: Hashable) -> str:
    """SHA-256 over each tensor's (or RowTable's) shape and bytes, in order (hex).

    ``fingerprint(images)`` for uint8 images (N, C, H, W) equals the query log's
    :func:`deepmimic.labelling.query_log.fingerprint_images`.
    """
    digest = hashlib.sha256()
    for tensor in tensors:
        digest.update(repr(tuple(tensor.shape)).encode())
        update_digest(digest, tensor)
    return digest.hexdigest()
