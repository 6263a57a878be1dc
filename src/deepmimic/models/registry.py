"""Models by name: registered builders (the paper presets among them) or raw notation.

``create_model(name_or_notation, in_shape, num_classes, **options)``: a registered name
uses its defaults (each overridable); anything else is read as the paper's notation
(DeepMimic paper, Tables 1, 2 and 5) and then needs ``in_shape`` and ``num_classes``.

Later code adds builders with :func:`register_model`, directly or as a decorator::

    @register_model("resnet20", in_shape=(3, 32, 32), num_classes=10, description="ResNet-20")
    def resnet20(*, in_shape, num_classes, width=16): ...
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import nn

from deepmimic.errors import ModelSpecError
from deepmimic.models.notation import build_from_notation
from deepmimic.models.presets import PRESETS, Preset
from deepmimic.models.size_guard import check_model_fits
from deepmimic.models.stats import count_macs, count_parameters

Builder = Callable[..., nn.Module]  # builder(*, in_shape=(C, H, W), num_classes=K, **options) -> nn.Module


@dataclass(frozen=True)
class _Entry:
    builder: Builder
    in_shape: tuple[int, int, int]
    num_classes: int
    description: str
    notation: str
    reference: str
    options: frozenset[str] | None  # option names the builder accepts; None: any (**kwargs)


_REGISTRY: dict[str, _Entry] = {}


def _accepted_options(builder: Builder) -> frozenset[str] | None:
    """Keyword options a builder takes besides in_shape/num_classes (None if it takes **kwargs)."""
    params = inspect.signature(builder).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None
    named = (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return frozenset(p.name for p in params if p.kind in named) - {"in_shape", "num_classes"}


def register_model(
    name: str,
    builder: Builder | None = None,
    *,
    in_shape: tuple[int, int, int],
    num_classes: int,
    description: str = "",
    notation: str = "",
    reference: str = "",
) -> Any:
    """Register ``builder(in_shape=..., num_classes=..., **options)`` under ``name``.

    ``in_shape`` (C, H, W) and ``num_classes`` are the defaults :func:`create_model` uses
    and :func:`list_presets` reports sizes for. Without ``builder`` this returns a
    decorator that registers the function it wraps (and returns it unchanged). A name
    can be registered once (ValueError otherwise: that is a programming error).
    """

    def add(fn: Builder) -> Builder:
        if name in _REGISTRY:
            raise ValueError(f"model '{name}' is already registered")
        _REGISTRY[name] = _Entry(
            fn, tuple(in_shape), num_classes, description, notation or description, reference, _accepted_options(fn)
        )
        return fn

    return add if builder is None else add(builder)


def _preset_builder(preset: Preset) -> Builder:
    def build(*, in_shape: tuple[int, int, int], num_classes: int, **options: Any) -> nn.Module:
        return build_from_notation(preset.notation, in_shape, num_classes, **{**preset.options, **options})

    return build


# Options a notation takes: build_from_notation's keyword-only arguments.
_NOTATION_OPTIONS = frozenset(
    p.name
    for p in inspect.signature(build_from_notation).parameters.values()
    if p.kind is inspect.Parameter.KEYWORD_ONLY
)

for _preset in PRESETS.values():
    register_model(
        _preset.name,
        _preset_builder(_preset),
        in_shape=_preset.in_shape,
        num_classes=_preset.num_classes,
        description=_preset.description,
        notation=_preset.notation,
        reference=_preset.reference,
    )
    # The preset builder forwards **options to build_from_notation: check them against it.
    _REGISTRY[_preset.name] = replace(_REGISTRY[_preset.name], options=_NOTATION_OPTIONS)


def _check_options(what: str, options: dict[str, Any], accepted: frozenset[str] | None) -> None:
    unknown = [] if accepted is None else sorted(set(options) - accepted)
    if unknown:
        known = ", ".join(sorted(accepted or ())) or "none"
        raise ModelSpecError(f"{what}: unknown model option(s) {', '.join(unknown)} (known: {known})")


def create_model(
    name_or_notation: str, in_shape: tuple[int, int, int] | None = None, num_classes: int | None = None, **options: Any
) -> nn.Module:
    """Build a registered model (e.g. a DeepMimic paper preset, Tables 1, 2, 5) or a notation.

    A registered name uses its default ``in_shape``/``num_classes``/options unless given.
    Anything else is parsed with :func:`~deepmimic.models.notation.build_from_notation`
    and needs ``in_shape`` (C, H, W) and ``num_classes``. The model maps (B, C, H, W) to
    (B, num_classes) logits. Unknown options raise :class:`ModelSpecError` naming them.
    """
    entry = _REGISTRY.get(name_or_notation)
    if entry is None:
        _check_options(f"notation '{name_or_notation}'", options, _NOTATION_OPTIONS)
        if in_shape is None or num_classes is None:
            missing = " and ".join(n for n, v in (("in_shape", in_shape), ("num_classes", num_classes)) if v is None)
            raise ModelSpecError(
                f"'{name_or_notation}' is not a known model name; as notation it needs in_shape and num_classes "
                f"(missing {missing}; known names: {', '.join(_REGISTRY)})"
            )
        shape = tuple(in_shape)
        return _fitting(
            f"notation '{name_or_notation}'",
            lambda: build_from_notation(name_or_notation, shape, num_classes, **options),
            shape,
        )
    _check_options(f"model '{name_or_notation}'", options, entry.options)
    shape = entry.in_shape if in_shape is None else tuple(in_shape)
    classes = entry.num_classes if num_classes is None else num_classes
    return _fitting(
        f"model '{name_or_notation}'", lambda: entry.builder(in_shape=shape, num_classes=classes, **options), shape
    )


def _fitting(what: str, build: Callable[[], nn.Module], in_shape: tuple[int, int, int]) -> nn.Module:
    """``build()``, after checking on the meta device that the model fits this machine.

    Skipped when the caller is already building on the meta device (sizes, ``deepmimic models``).
    """
    if torch.get_default_device().type != "meta":
        check_model_fits(what, build, in_shape)
    return build()


def list_presets() -> list[dict[str, Any]]:
    """One row per registered model, for ``deepmimic models``.

    Keys: name, notation (or the description), description, reference, params, macs
    (per image), in_shape, num_classes; sizes are for the default input and classes.
    """
    rows = []
    for name, entry in _REGISTRY.items():
        # Built on the meta device: shapes without memory or arithmetic, so sizing the
        # 68M-parameter ResNeXt costs milliseconds.
        with torch.device("meta"):
            model = create_model(name)
        rows.append(
            {
                "name": name,
                "notation": entry.notation,
                "description": entry.description,
                "reference": entry.reference,
                "params": count_parameters(model),
                "macs": count_macs(model, entry.in_shape),
                "in_shape": entry.in_shape,
                "num_classes": entry.num_classes,
            }
        )
    return rows
