"""On-disk cache of soft labels, keyed by the mentor's weights and the data.

DeepMimic labels the unlabelled set once (section 3.2); re-running an experiment with
new students reuses the labels. The key is a SHA-256 over the mentor's state dict, the
images and the normaliser, so any change to either recomputes them.

Two formats, both written atomically (temporary name, fsync, rename):

* ``soft-labels-<key[:32]>.safetensors`` (``probs`` and ``key_check``): small sets, read
  into memory on a hit;
* ``soft-labels-<key[:32]>.npy`` (float32 (N, K), C order) with a sidecar
  ``soft-labels-<key[:32]>.json`` (``{"key", "shape", "dtype"}``, written after the
  ``.npy``): sets whose probabilities take at least :data:`LARGE_CACHE_BYTES`, or whose
  images are streamed from disk (issue 17). The probabilities are written into the file
  as they are computed and a hit returns a copy-on-write memory map of it, so rows are
  paged in when a batch gathers them and the (N, K) array is never held whole.

A hit looks for either format. An entry that cannot be read back whole with the right
key, shape and dtype is recomputed, never trusted.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from deepmimic import distributed
from deepmimic.data.batches import Normalizer
from deepmimic.data.fingerprint import update_digest
from deepmimic.data.rows import Images
from deepmimic.errors import DataError
from deepmimic.io_utils import atomic_path, write_json

LARGE_CACHE_BYTES = 256 * 2**20  # probabilities of at least this size go to a memory-mapped .npy


def soft_label_key(mentor: torch.nn.Module, images: Images, normalizer: Normalizer) -> str:
    """Hex SHA-256 of mentor weights (name, dtype, shape, bytes), image bytes and normaliser.

    ``images`` (uint8 (N, C, H, W)) may be a tensor or a streamed RowTable: its bytes are
    hashed a slice of rows at a time, which gives the same key as hashing them at once.
    """
    digest = hashlib.sha256()
    for name, tensor in sorted(mentor.state_dict().items()):
        t = (
            tensor.detach().cpu().contiguous().reshape(-1)
        )  # 1-D: a 0-dim buffer (BatchNorm counts) cannot be viewed as bytes
        digest.update(f"{name}:{t.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    digest.update(f"images:{tuple(images.shape)}".encode())
    update_digest(digest, images)
    digest.update(json.dumps(normalizer.to_dict()).encode())
    return digest.hexdigest()


def cache_paths(cache_dir: Path, key: str) -> dict[str, Path]:
    """Where the entry of ``key`` lives: ``safetensors``, or ``npy`` with its ``sidecar``."""
    stem = f"soft-labels-{key[:32]}"
    return {
        "safetensors": cache_dir / f"{stem}.safetensors",
        "npy": cache_dir / f"{stem}.npy",
        "sidecar": cache_dir / f"{stem}.json",
    }


def _read_cache(path: Path, key: str) -> torch.Tensor | None:
    """The probabilities of a safetensors entry for ``key``, or None (missing, unreadable, other key)."""
    if not path.exists():
        return None
    try:
        stored = load_file(str(path))
        if stored.get("key_check") is not None and bytes(stored["key_check"].tolist()).decode() == key:
            return stored["probs"]
    except Exception:  # an unreadable cache entry is recomputed, never trusted
        pass
    return None


def _read_npy_cache(path: Path, sidecar: Path, key: str) -> torch.Tensor | None:
    """A copy-on-write memory map (N, K) float32 of a ``.npy`` entry for ``key``, or None.

    The sidecar must name ``key`` and the array's shape and dtype, and the file must hold
    exactly header + N*K*4 bytes (a truncated or padded file is not trusted). Nothing is
    read beyond the header: rows are paged in when they are indexed.
    """
    if not path.exists() or not sidecar.exists():
        return None
    try:
        meta = json.loads(sidecar.read_text(encoding="utf-8"))
        array = np.load(path, mmap_mode="c", allow_pickle=False)  # "c": writes stay in this process
        shape = tuple(int(v) for v in meta["shape"])
        if (
            meta.get("key") != key
            or not isinstance(array, np.memmap)
            or array.shape != shape
            or array.ndim != 2
            or array.dtype != np.float32
            or not array.flags.c_contiguous
            or os.path.getsize(path) != array.offset + array.nbytes
        ):
            return None
        return torch.from_numpy(array)
    except Exception:  # an unreadable cache entry is recomputed, never trusted
        return None


def _read_any(paths: dict[str, Path], key: str) -> torch.Tensor | None:
    stored = _read_npy_cache(paths["npy"], paths["sidecar"], key)
    return stored if stored is not None else _read_cache(paths["safetensors"], key)


def cached_soft_labels(
    cache_dir: Path,
    key: str,
    compute: Callable[[], torch.Tensor],
    *,
    shape: tuple[int, int] | None = None,
    compute_into: Callable[[np.ndarray], object] | None = None,
    streamed: bool = False,
    large_bytes: int | None = None,
) -> tuple[torch.Tensor, bool]:
    """Return (probs, was_cached); compute and store them atomically on a miss.

    Args:
        cache_dir: the cache folder.
        key: :func:`soft_label_key` of the mentor, images and normaliser.
        compute: the probabilities (N, K) float32, in memory (stored as safetensors).
        shape: (N, K) of the probabilities, known before computing them; with ``compute_into``
            it allows the memory-mapped ``.npy`` format.
        compute_into: writes the probabilities into a writable float32 array (N, K) (a
            memory map of the cache file being written), e.g. ``label_images(..., out=out)``.
        streamed: the images are read from disk per batch: always use the ``.npy`` format.
        large_bytes: probabilities of at least this many bytes use the ``.npy`` format (default
            :data:`LARGE_CACHE_BYTES`, read when called).

    A miss is stored as a memory-mapped ``.npy`` (and returned as a copy-on-write map of it)
    when ``shape`` and ``compute_into`` are given, N*K > 0 and the images are ``streamed`` or
    N*K*4 >= ``large_bytes``; otherwise as safetensors, returning the in-memory tensor.

    Under torchrun every rank reads the cache, and it counts as a hit only when it is one
    on every rank: ``compute`` may be a collective (sharded labelling) that all must join.
    """
    paths = cache_paths(cache_dir, key)
    stored = _read_any(paths, key)
    if distributed.all_true(stored is not None):
        assert stored is not None
        return stored, True
    threshold = LARGE_CACHE_BYTES if large_bytes is None else large_bytes
    if compute_into is not None and shape is not None and _wants_npy(shape, streamed, threshold):
        return _compute_npy(paths, key, shape, compute_into), False
    probs = compute()
    key_check = torch.tensor(list(key.encode()), dtype=torch.uint8)
    with atomic_path(paths["safetensors"]) as tmp:
        save_file({"probs": probs.contiguous(), "key_check": key_check}, str(tmp))
    return probs, False


def _wants_npy(shape: tuple[int, int], streamed: bool, large_bytes: int) -> bool:
    """Whether probabilities of ``shape`` go to the memory-mapped ``.npy`` format."""
    n, k = shape
    return n * k > 0 and (streamed or n * k * 4 >= large_bytes)


def _compute_npy(
    paths: dict[str, Path], key: str, shape: tuple[int, int], compute_into: Callable[[np.ndarray], object]
) -> torch.Tensor:
    """Compute the probabilities straight into the ``.npy`` entry; return a memory map of it.

    Rank 0 writes into a temporary file beside the entry (fsync, rename, then the sidecar)
    and maps the entry. Under torchrun the other ranks join ``compute_into`` (a collective
    that leaves every rank's array whole) with a scratch file of their own, map it, and
    unlink it at once: the map stays valid, nothing is left behind, and no rank needs to see
    rank 0's file, so a node-local cache folder works on several nodes too.
    """
    npy = paths["npy"]
    if distributed.is_main():
        with atomic_path(npy) as tmp:
            _fill(tmp, shape, compute_into)
        write_json(paths["sidecar"], {"key": key, "shape": list(shape), "dtype": "float32"})
        probs = _read_npy_cache(npy, paths["sidecar"], key)
    else:
        probs = _own_copy(npy, shape, compute_into)
    distributed.barrier()  # the entry is complete before any rank looks for it again
    if probs is None:
        raise DataError(f"{npy}: the soft labels just written cannot be read back")
    return probs


def _own_copy(npy: Path, shape: tuple[int, int], compute_into: Callable[[np.ndarray], object]) -> torch.Tensor:
    """A rank's own mapped copy (N, K): filled in a scratch file beside ``npy``, mapped, then unlinked."""
    npy.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{npy.name}.rank{distributed.rank()}.", suffix=".tmp", dir=npy.parent)
    os.close(fd)
    try:
        _fill(Path(name), shape, compute_into)
        return torch.from_numpy(np.load(name, mmap_mode="c", allow_pickle=False))
    finally:
        Path(name).unlink(missing_ok=True)  # the map keeps the data until the process lets it go


def _fill(path: Path, shape: tuple[int, int], compute_into: Callable[[np.ndarray], object]) -> None:
    """Create a float32 ``.npy`` of ``shape`` at ``path``, let ``compute_into`` fill it, fsync it."""
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=shape)  # (N, K), zeros
    try:
        result = compute_into(out)
        del result  # may share memory with ``out``: no map is left open on the file
        out.flush()
    finally:
        del out
    with open(path, "rb+") as handle:
        os.fsync(handle.fileno())
