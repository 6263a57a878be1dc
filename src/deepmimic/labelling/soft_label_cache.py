"""On-disk cache of soft labels, keyed by the mentor's weights and the data.

DeepMimic labels the unlabelled set once (section 3.2); re-running an experiment with
new students reuses the labels. The key is a SHA-256 over the mentor's state dict, the
images and the normaliser, so any change to either recomputes them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from deepmimic import distributed
from deepmimic.data.batches import Normalizer
from deepmimic.io_utils import atomic_path


def soft_label_key(mentor: torch.nn.Module, images: torch.Tensor, normalizer: Normalizer) -> str:
    """Hex SHA-256 of mentor weights (name, dtype, shape, bytes), image bytes and normaliser."""
    digest = hashlib.sha256()
    for name, tensor in sorted(mentor.state_dict().items()):
        t = (
            tensor.detach().cpu().contiguous().reshape(-1)
        )  # 1-D: a 0-dim buffer (BatchNorm counts) cannot be viewed as bytes
        digest.update(f"{name}:{t.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    digest.update(f"images:{tuple(images.shape)}".encode())
    digest.update(images.contiguous().numpy().tobytes())
    digest.update(json.dumps(normalizer.to_dict()).encode())
    return digest.hexdigest()


def _read_cache(path: Path, key: str) -> torch.Tensor | None:
    if not path.exists():
        return None
    try:
        stored = load_file(str(path))
        if stored.get("key_check") is not None and bytes(stored["key_check"].tolist()).decode() == key:
            return stored["probs"]
    except Exception:  # an unreadable cache entry is recomputed, never trusted
        pass
    return None


def cached_soft_labels(cache_dir: Path, key: str, compute: Callable[[], torch.Tensor]) -> tuple[torch.Tensor, bool]:
    """Return (probs, was_cached); compute and store them atomically on a miss.

    Under torchrun every rank reads the cache, and it counts as a hit only when it is one
    on every rank: ``compute`` may be a collective (sharded labelling) that all must join.
    """
    path = cache_dir / f"soft-labels-{key[:32]}.safetensors"
    stored = _read_cache(path, key)
    if distributed.all_true(stored is not None):
        assert stored is not None
        return stored, True
    probs = compute()
    key_check = torch.tensor(list(key.encode()), dtype=torch.uint8)
    with atomic_path(path) as tmp:
        save_file({"probs": probs.contiguous(), "key_check": key_check}, str(tmp))
    return probs, False
