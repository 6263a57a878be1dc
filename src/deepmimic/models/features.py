"""Intermediate feature maps by module name, with forward hooks (no model edits).

Feature-level distillation (FitNets, factor transfer, FEED of Park & Kwak 2019) compares a
teacher's and a student's feature maps, e.g. the zoo models' ``layer3``::

    with FeatureCapture(student, ["layer3"]) as cap:
        logits = student(x)
        feats = cap["layer3"]            # (B, 64, 8, 8), still attached to the graph

Module names are those of ``model.named_modules()`` (``"layer3"``, ``"layer3.2.conv2"``,
``"features"``); :func:`layer_shapes` / :func:`format_layer_table` list them with their
output shapes, and :func:`last_feature_layer` picks the last feature map before pooling.
The idea follows torchdistill's forward-hook manager (Matsubara 2021); the code is ours.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from deepmimic.errors import ModelSpecError

LayerRow = tuple[str, str, tuple[int, ...], int]  # (name, type, output shape without batch, parameters)
_GLOBAL_POOLS = (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)
_POOLS = (nn.AvgPool2d, nn.MaxPool2d, nn.LPPool2d)


def _resolve(model: nn.Module, name: str) -> nn.Module:
    """``model.get_submodule(name)``, or a one-line :class:`ModelSpecError` with close names."""
    try:
        return model.get_submodule(name)
    except AttributeError:
        names = [n for n, _ in model.named_modules() if n]
        close = difflib.get_close_matches(name, names, n=5, cutoff=0.5)
        top = [n for n, _ in model.named_children()]
        hint = f"closest: {', '.join(close)}" if close else f"top-level modules: {', '.join(top[:10]) or 'none'}"
        raise ModelSpecError(f"{type(model).__name__} has no module named '{name}' ({hint})") from None


class FeatureCapture:
    """Forward hooks that keep the latest output of each named module of ``model``.

    ``captured[name]`` (also ``cap[name]``) holds the output of the module's most recent
    call, NOT detached, so a loss on it back-propagates into the model (pass
    ``detach=True`` for a frozen teacher). Hooks live until :meth:`remove` or the end of a
    ``with`` block; the captured outputs stay readable afterwards until :meth:`clear`.
    Unknown names raise :class:`ModelSpecError` naming the closest valid ones.
    """

    def __init__(self, model: nn.Module, names: Sequence[str] | str, *, detach: bool = False) -> None:
        names = [names] if isinstance(names, str) else list(dict.fromkeys(names))
        modules = {name: _resolve(model, name) for name in names}  # validate all before hooking any
        self.model = model
        self.names: list[str] = names
        self.detach = detach
        self.captured: dict[str, Any] = {}
        self._handles: list[RemovableHandle] = [m.register_forward_hook(self._hook(n)) for n, m in modules.items()]

    def _hook(self, name: str) -> Callable[[nn.Module, tuple[Any, ...], Any], None]:
        def hook(_module: nn.Module, _inputs: tuple[Any, ...], output: Any) -> None:
            self.captured[name] = output.detach() if self.detach and isinstance(output, torch.Tensor) else output

        return hook

    def __getitem__(self, name: str) -> Any:
        if name not in self.captured:
            state = "is not hooked" if name not in self.names else "has no output yet (run the model first)"
            raise KeyError(f"module '{name}' {state}")
        return self.captured[name]

    def clear(self) -> None:
        """Forget the captured outputs (and the graphs they hold); the hooks stay."""
        self.captured.clear()

    def remove(self) -> None:
        """Remove the hooks (idempotent); captured outputs are kept until :meth:`clear`."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    @property
    def active(self) -> bool:
        """Whether the hooks are still registered."""
        return bool(self._handles)

    def __enter__(self) -> FeatureCapture:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.remove()


def _shape(output: Any) -> tuple[int, ...]:
    """Shape without the batch dim of a tensor output (or of the first tensor of a tuple/list)."""
    if isinstance(output, (tuple, list)):
        output = next((o for o in output if isinstance(o, torch.Tensor)), None)
    return tuple(output.shape[1:]) if isinstance(output, torch.Tensor) else ()


class _Call(NamedTuple):
    name: str
    module: nn.Module
    input: Any  # the first positional input
    output: Any
    finished: int  # completion order: a container finishes after its children


def _trace(model: nn.Module, in_shape: Sequence[int]) -> list[_Call]:
    """The first call of each named non-root module, in call order (a module is listed when
    it starts, so a stage comes before its blocks), from a batch-1 dry run in eval mode
    without gradients; the training flag is restored."""
    names = {m: n for n, m in model.named_modules() if n}
    started: dict[nn.Module, Any] = {}  # module -> first input; insertion order = call order
    finished: dict[nn.Module, tuple[Any, int]] = {}  # module -> (output, completion index)

    def pre(module: nn.Module, inputs: tuple[Any, ...]) -> None:
        started.setdefault(module, inputs[0] if inputs else None)

    def post(module: nn.Module, _inputs: tuple[Any, ...], output: Any) -> None:
        finished.setdefault(module, (output, len(finished)))

    handles = [h for m in names for h in (m.register_forward_pre_hook(pre), m.register_forward_hook(post))]
    was_training = model.training
    model.eval()  # batch norm with a batch of one; dropout off
    try:
        like = next(model.parameters(), torch.empty(0))
        with torch.no_grad():
            model(torch.zeros(1, *in_shape, device=like.device, dtype=like.dtype))  # (1, C, H, W)
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    return [_Call(names[m], m, inp, *finished[m]) for m, inp in started.items() if m in finished]


def layer_shapes(model: nn.Module, in_shape: Sequence[int]) -> list[LayerRow]:
    """One row per named module that runs on an input of ``in_shape`` (C, H, W), in call
    order (containers such as ``layer3`` before their children; the root is left out):
    (name, type name, output shape without the batch dim, parameters of the module
    including its children). A batch-1 eval dry run; the training flag is restored."""
    return [
        (c.name, type(c.module).__name__, _shape(c.output), sum(p.numel() for p in c.module.parameters()))
        for c in _trace(model, in_shape)
    ]


def format_layer_table(rows: Sequence[LayerRow]) -> str:
    """An aligned text table of :func:`layer_shapes` rows: name (indented by nesting depth),
    type, output shape (e.g. ``64x8x8``) and parameters (with thousands separators)."""
    header = ("layer", "type", "output", "params")
    body = [
        ("  " * name.count(".") + name, kind, "x".join(map(str, shape)) or "-", f"{params:,}")
        for name, kind, shape, params in rows
    ]
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(4)]
    align = (str.ljust, str.ljust, str.rjust, str.rjust)
    return "\n".join("  ".join(align[i](c, widths[i]) for i, c in enumerate(r)).rstrip() for r in [header, *body])


def _is_global_pool(module: nn.Module, inp: Any, out: Any) -> bool:
    if isinstance(module, _GLOBAL_POOLS):
        return True
    # A fixed-size pool that collapses the map to 1x1 is global pooling too.
    return (
        isinstance(module, _POOLS)
        and isinstance(inp, torch.Tensor)
        and isinstance(out, torch.Tensor)
        and out.dim() == 4
        and out.shape[-2:] == (1, 1)
        and inp.shape[-2:] != (1, 1)
    )


def last_feature_layer(model: nn.Module, in_shape: Sequence[int] | None = None) -> str:
    """Name of the module whose output is the model's last feature map (B, C, H, W).

    ``model.feature_layer`` when the model declares it (the CIFAR zoo does: ``"layer3"``,
    or ``"final"`` for Wide ResNets). Otherwise a batch-1 dry run on ``in_shape`` (default
    ``model.in_shape``, which notation models have) picks the last module, in order of
    completion, with a 4-D output that is not global pooling: for a notation model with the
    flatten head that is its ``features`` Sequential; with the gap head, the layer before
    the pooling. Raises :class:`ModelSpecError` when no such module exists.
    """
    declared = getattr(model, "feature_layer", None)
    if isinstance(declared, str):
        _resolve(model, declared)
        return declared
    in_shape = in_shape if in_shape is not None else getattr(model, "in_shape", None)
    if in_shape is None:
        raise ModelSpecError(
            f"{type(model).__name__} declares no in_shape: pass in_shape to find its last feature layer"
        )
    maps: list[str] = []
    pooled: list[torch.Tensor] = []  # global-pool outputs (and containers passing them on are skipped)
    for call in sorted(_trace(model, in_shape), key=lambda c: c.finished):
        if _is_global_pool(call.module, call.input, call.output):
            pooled.append(call.output)
        elif (
            isinstance(call.output, torch.Tensor)
            and call.output.dim() == 4
            and not any(call.output is p for p in pooled)
        ):
            maps.append(call.name)
    if not maps:
        raise ModelSpecError(f"{type(model).__name__} has no module with a 4-D (B, C, H, W) output")
    return maps[-1]
