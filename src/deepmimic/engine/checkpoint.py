"""Checkpoints: written atomically, loaded safely.

Training state (method weights incl. the student, optimiser, scheduler, history) goes
to ``checkpoint.pt`` with ``torch.save`` and is read back with ``weights_only=True``,
which refuses arbitrary pickled objects. Final model weights are also written as
safetensors, the format for sharing a trained student.
"""

from __future__ import annotations

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
        raise TrainingError(f"{path}: cannot load checkpoint ({type(exc).__name__}: {str(exc).splitlines()[0]})") from exc


def save_weights(path: Path, module: torch.nn.Module, metadata: dict[str, str] | None = None) -> None:
    """Model weights as safetensors, atomically."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)


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
