"""Model size: parameters and multiply-accumulates (MACs) per image, and a layer table.

MACs are counted for convolution and linear layers only: a conv contributes
``output elements * (in_channels / groups) * kernel area``, a linear layer
``output elements * in_features`` (bias additions are not counted). Batch norm (which
folds into the preceding conv at inference), pooling, activations and dropout count 0.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch import nn

_COUNTED = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters: all of them, or with ``trainable_only`` those with requires_grad.

    (Every parameter of a freshly built model is trainable, so the two agree there.)
    """
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def _layer_macs(module: nn.Module, output: torch.Tensor) -> int:
    """MACs of one call of ``module`` on a batch of one (``output`` is that call's result)."""
    if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
        # Each output element: (in_channels / groups) * prod(kernel) multiply-adds.
        return output[0].numel() * (module.in_channels // module.groups) * math.prod(module.kernel_size)
    if isinstance(module, nn.Linear):
        return output[0].numel() * module.in_features  # (1, ..., out) outputs, in_features each
    return 0


@contextmanager
def _dry_run(model: nn.Module, hook: Callable[..., None], modules: list[nn.Module]) -> Iterator[torch.Tensor]:
    """Hooks on ``modules``, eval mode, and a zero input factory; restores both afterwards."""
    handles = [m.register_forward_hook(hook) for m in modules]
    was_training = model.training
    model.eval()  # batch norm with a batch of one needs eval mode; dropout off
    try:
        yield next(iter(model.parameters()), torch.empty(0))  # device and dtype of the input
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()


@torch.no_grad()
def count_macs(model: nn.Module, in_shape: tuple[int, int, int]) -> int:
    """MACs of one forward pass on one image of ``in_shape`` (C, H, W).

    Counted with forward hooks on Conv1d/2d/3d and Linear during a batch-1 dry run in eval
    mode (see the module docstring for what counts); the model's training flag is restored.
    Used to compare mentor and students (DeepMimic paper, Table 6 compares their speed).
    """
    total = 0

    def hook(module: nn.Module, _inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        nonlocal total
        total += _layer_macs(module, output)

    with _dry_run(model, hook, [m for m in model.modules() if isinstance(m, _COUNTED)]) as like:
        model(torch.zeros(1, *in_shape, device=like.device, dtype=like.dtype))  # (1, C, H, W)
    return total


@torch.no_grad()
def describe_model(model: nn.Module, in_shape: tuple[int, int, int]) -> str:
    """A table of the leaf layers in call order (name, type, output shape, parameters), then a
    totals line: ``total: N parameters, M MACs per image``. Uses a batch-1 eval dry run."""
    rows: list[tuple[str, str, str, str]] = []
    names = {m: n for n, m in model.named_modules()}

    def hook(module: nn.Module, _inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        params = sum(p.numel() for p in module.parameters(recurse=False))
        shape = "x".join(str(d) for d in output.shape[1:]) if isinstance(output, torch.Tensor) else "?"
        rows.append((names[module] or "(model)", type(module).__name__, shape, f"{params:,}"))

    leaves = [m for m in model.modules() if not list(m.children())]
    with _dry_run(model, hook, leaves) as like:
        model(torch.zeros(1, *in_shape, device=like.device, dtype=like.dtype))  # (1, C, H, W)
    header = ("layer", "type", "output", "params")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(4)]
    lines = ["  ".join(c.ljust(widths[i]) for i, c in enumerate(r)).rstrip() for r in [header, *rows]]
    lines.append(f"total: {count_parameters(model):,} parameters, {count_macs(model, in_shape):,} MACs per image")
    return "\n".join(lines)
