"""Model size: trainable parameters and multiply-accumulates (MACs) per image."""

from __future__ import annotations

import torch
from torch import nn


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (all of them, or only those with requires_grad)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def _layer_macs(module: nn.Module, output: torch.Tensor) -> int:
    if isinstance(module, nn.Conv2d):
        # Each output element: (in_channels / groups) * kh * kw multiply-adds.
        kh, kw = module.kernel_size
        return output[0].numel() * (module.in_channels // module.groups) * kh * kw
    if isinstance(module, nn.Linear):
        return module.in_features * module.out_features
    return 0  # pooling, activations, batch norm (foldable into the conv), dropout: not counted


@torch.no_grad()
def count_macs(model: nn.Module, in_shape: tuple[int, int, int]) -> int:
    """MACs of one forward pass on one image of ``in_shape`` (C, H, W), conv and linear layers.

    Runs a batch-1 dry run in eval mode with forward hooks and restores the model's mode.
    """
    total = 0

    def hook(module: nn.Module, _inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        nonlocal total
        total += _layer_macs(module, output)

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    was_training = model.training
    model.eval()
    try:
        device = next(model.parameters()).device
        model(torch.zeros(1, *in_shape, device=device))
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    return total


@torch.no_grad()
def describe_model(model: nn.Module, in_shape: tuple[int, int, int]) -> str:
    """A table of leaf layers (name, type, output shape, parameters) with totals."""
    rows: list[tuple[str, str, str, str]] = []
    names = {m: n for n, m in model.named_modules()}

    def hook(module: nn.Module, _inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        params = sum(p.numel() for p in module.parameters(recurse=False))
        rows.append((names[module], type(module).__name__, "x".join(str(d) for d in output.shape[1:]), f"{params:,}"))

    leaves = [m for m in model.modules() if not list(m.children())]
    handles = [m.register_forward_hook(hook) for m in leaves]
    was_training = model.training
    model.eval()
    try:
        model(torch.zeros(1, *in_shape, device=next(model.parameters()).device))
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    header = ("layer", "type", "output", "params")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(4)]
    lines = ["  ".join(c.ljust(widths[i]) for i, c in enumerate(r)).rstrip() for r in [header, *rows]]
    lines.append(f"total: {count_parameters(model):,} parameters, {count_macs(model, in_shape):,} MACs per image")
    return "\n".join(lines)
