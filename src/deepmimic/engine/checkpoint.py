"""Checkpoints: written atomically, loaded safely.

Training state (method weights incl. the student, optimiser, scheduler, history) goes
to ``checkpoint.pt`` with ``torch.save`` and is read back with ``weights_only=True``,
which refuses arbitrary pickled objects. Final model weights are also written as
safetensors, the format for sharing a trained student; the trainer puts the model's
description in their metadata (:mod:`deepmimic.models.description`), so a weights file
loads on its own with :func:`deepmimic.models.bundle.load_trained`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from deepmimic.errors import TrainingError
from deepmimic.io_utils import atomic_path


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """torch.save ``state`` to a temporary file, then rename onto ``path``."""
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Load a training checkpoint with ``weights_only=True`` (no code execution)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as exc:
        raise TrainingError(f"{path}: no checkpoint to resume from") from exc
    except Exception as exc:  # corrupt or unsafe file: one line, no traceback
        raise TrainingError(
            f"{path}: cannot load checkpoint ({type(exc).__name__}: {str(exc).splitlines()[0]})"
        ) from exc


def save_weights(path: Path, module: torch.nn.Module, metadata: dict[str, str] | None = None) -> None:
    """Model weights as safetensors with ``metadata`` (string -> string), atomically.

    The same weights and metadata always give the same bytes (a resumed run's weights are
    compared byte for byte with an uninterrupted run's).
    """
    tensors = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
        _sort_metadata(Path(tmp))


def _sort_metadata(path: Path) -> None:
    """Rewrite the header of a safetensors file with its metadata keys in sorted order, in place.

    safetensors writes the metadata map in an arbitrary order that changes from one write
    to the next; sorted, the file is a function of its content. Only the header changes
    (same entries, same length; padded with spaces as safetensors pads it), the tensor
    data stay where they are.
    """
    with open(path, "r+b") as handle:
        size = int.from_bytes(handle.read(8), "little")
        header = json.loads(handle.read(size).decode("utf-8"))
        metadata = header.pop("__metadata__", None)
        if not metadata:
            return
        text = json.dumps(
            {"__metadata__": dict(sorted(metadata.items())), **header}, separators=(",", ":"), ensure_ascii=False
        )
        encoded = text.encode("utf-8")
        if len(encoded) > size:  # never for the same entries; keep the file as safetensors wrote it
            return
        handle.seek(8)
        handle.write(encoded + b" " * (size - len(encoded)))


def load_weights(path: Path, module: torch.nn.Module) -> None:
    """Load safetensors weights into ``module``; shape or key mismatches fail clearly."""
    try:
        tensors = load_file(str(path))
    except FileNotFoundError as exc:
        raise TrainingError(f"{path}: no such weights file") from exc
    except Exception as exc:
        raise TrainingError(f"{path}: not a readable safetensors file ({str(exc).splitlines()[0]})") from exc
    try:
        module.load_state_dict(tensors)
    except RuntimeError as exc:
        raise TrainingError(f"{path}: weights do not fit this model ({str(exc).splitlines()[0]})") from exc
