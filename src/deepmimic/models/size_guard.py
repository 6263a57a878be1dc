"""Refuse models that cannot fit this machine, before allocating them.

``model: c:99999999-s`` would ask for about 3 TB of weights; building it would fail deep in
torch (or swap the machine to death). :func:`check_model_fits` builds the model on the
``meta`` device (shapes, no memory), then compares two estimates with the machine's memory:

* training state: parameters x 4 bytes x 4 (weights, gradients and two optimiser buffers,
  enough for SGD with momentum or Adam);
* activations of a single image: every module output of a batch-1 forward pass x 4 bytes x 2
  (kept for backward). A model for which one image does not fit in a quarter of memory
  cannot be trained at any batch size.

Either estimate above its limit is a one-line :class:`ModelSpecError` with the numbers.
The memory is the host's (``os.sysconf``); a model that passes may still be too large for
a GPU, which torch then reports itself.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import torch
from torch import nn

from deepmimic.errors import ModelSpecError

BYTES = 4  # float32
TRAINING_COPIES = 4  # weights, gradients, two optimiser buffers


def machine_memory_bytes() -> int | None:
    """Physical memory of this machine, or None where the OS does not say."""
    try:
        return int(os.sysconf("SC_PHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, OSError, ValueError):
        return None


def _gib(n: float) -> str:
    return f"{n / 2**30:,.1f} GiB"


def _activation_elements(model: nn.Module, in_shape: tuple[int, int, int]) -> int:
    """Elements of every module output in a batch-1 forward pass (on whatever device the model is)."""
    total = 0

    def hook(_module: nn.Module, _inputs: tuple[torch.Tensor, ...], output: object) -> None:
        nonlocal total
        if isinstance(output, torch.Tensor):
            total += output.numel()

    handles = [m.register_forward_hook(hook) for m in model.modules()]
    try:
        with torch.no_grad():
            model.eval()
            like = next(iter(model.parameters()), torch.empty(0))
            model(torch.zeros(1, *in_shape, device=like.device, dtype=like.dtype))
    finally:
        for handle in handles:
            handle.remove()
    return total


# Modules whose output is no wider than the widest conv/linear width times the (padded) input area.
_SHAPE_KEEPING = (
    nn.Conv2d,
    nn.Linear,
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    nn.ReLU,
    nn.LeakyReLU,
    nn.GELU,
    nn.SiLU,
    nn.Sigmoid,
    nn.Tanh,
    nn.Softmax,
    nn.LogSoftmax,
    nn.Dropout,
    nn.Dropout2d,
    nn.MaxPool2d,
    nn.AvgPool2d,
    nn.AdaptiveAvgPool2d,
    nn.Flatten,
    nn.Identity,
)


def _activation_bound(model: nn.Module, in_shape: tuple[int, int, int]) -> int | None:
    """An upper bound on :func:`_activation_elements` without a forward pass, or None when unsure.

    The meta-device forward costs about 1.4 s the first time in a process (its linear
    decomposition imports torch._dynamo), which every small run paid. For models built only
    from :data:`_SHAPE_KEEPING` leaves no module output exceeds ``widest x height x width``
    (padding counted as growth, adaptive pools at their output size) or the widest linear
    layer, so ``modules x that`` bounds the total. Anything else (custom modules, upsampling)
    returns None and gets the exact probe.
    """
    modules = list(model.modules())
    channels, height, width = in_shape
    widest, grow = channels, 0
    for module in modules:
        if list(module.children()):
            continue  # containers: their output is one of their leaves' outputs
        if not isinstance(module, _SHAPE_KEEPING):
            return None
        if isinstance(module, nn.Conv2d):
            widest = max(widest, module.out_channels)
        if isinstance(module, nn.Linear):
            widest = max(widest, module.out_features)
        if isinstance(module, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)):
            pad = module.padding
            grow += 2 * max(pad if isinstance(pad, int) else max(pad) if isinstance(pad, tuple) else 0, 0)
        if isinstance(module, nn.AdaptiveAvgPool2d):
            size = module.output_size
            for side in size if isinstance(size, tuple) else (size,):
                grow = max(grow, (side or 0) - min(height, width))
    return len(modules) * widest * (height + grow) * (width + grow)


def check_model_fits(
    what: str, build: Callable[[], nn.Module], in_shape: tuple[int, int, int] | None, memory: int | None = None
) -> None:
    """Build ``build()`` on the meta device and refuse it if it cannot fit ``memory`` bytes (default: this machine's).

    A builder that fails on the meta device (some custom models do) is not checked here:
    the real build reports its own problems.
    """
    memory = machine_memory_bytes() if memory is None else memory
    if memory is None:
        return
    try:
        with torch.device("meta"):
            model = build()
    except ModelSpecError:
        raise
    except Exception:  # noqa: BLE001 - not buildable on meta: leave it to the real build
        return
    params = sum(p.numel() for p in model.parameters())
    training = params * BYTES * TRAINING_COPIES
    if training > memory:
        raise ModelSpecError(
            f"{what}: {params:,} parameters need about {_gib(training)} to train (weights, gradients, optimiser "
            f"state), more than this machine's {_gib(memory)} of memory; use fewer or narrower layers"
        )
    if in_shape is None:
        return
    bound = _activation_bound(model, tuple(in_shape))
    if bound is not None and bound * BYTES * 2 <= memory // 4:
        return  # fits even at the bound: no probe needed
    try:
        elements = _activation_elements(model, tuple(in_shape))
    except Exception:  # noqa: BLE001 - shape errors are the real build's (or forward's) to report
        return
    per_image = elements * BYTES * 2
    if per_image > memory // 4:
        raise ModelSpecError(
            f"{what}: one {'x'.join(map(str, in_shape))} image needs about {_gib(per_image)} of activations, "
            f"more than a quarter of this machine's {_gib(memory)} of memory; use fewer or narrower layers"
        )
