"""Models by name: presets, registered builders, or raw notation.

``create_model(name_or_notation, in_shape, num_classes, **kw)``: a registered name uses
its defaults (each overridable); anything else is read as the paper's notation.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from torch import nn

from deepmimic.errors import ModelSpecError
from deepmimic.models.notation import build_from_notation
from deepmimic.models.presets import PRESETS, Preset
from deepmimic.models.stats import count_macs, count_parameters

Builder = Callable[..., nn.Module]  # builder(in_shape=..., num_classes=..., **options) -> nn.Module


class _Entry:
    def __init__(self, builder: Builder, in_shape: tuple[int, int, int], num_classes: int, description: str, notation: str) -> None:
        self.builder, self.in_shape, self.num_classes = builder, in_shape, num_classes
        self.description, self.notation = description, notation


_REGISTRY: dict[str, _Entry] = {}


def register_model(
    name: str, builder: Builder, *, in_shape: tuple[int, int, int], num_classes: int, description: str = "", notation: str = ""
) -> None:
    """Register ``builder(in_shape=..., num_classes=..., **options)`` under ``name``."""
    if name in _REGISTRY:
        raise ValueError(f"model '{name}' is already registered")
    _REGISTRY[name] = _Entry(builder, in_shape, num_classes, description, notation or description)


def _preset_builder(preset: Preset) -> Builder:
    def build(*, in_shape: tuple[int, int, int], num_classes: int, **options: Any) -> nn.Module:
        return build_from_notation(preset.notation, in_shape, num_classes, **{**preset.options, **options})

    return build


for _preset in PRESETS.values():
    register_model(
        _preset.name, _preset_builder(_preset), in_shape=_preset.in_shape, num_classes=_preset.num_classes,
        description=_preset.description, notation=_preset.notation,
    )

_NOTATION_OPTIONS = {
    p.name for p in inspect.signature(build_from_notation).parameters.values() if p.kind is inspect.Parameter.KEYWORD_ONLY
}


def create_model(
    name_or_notation: str, in_shape: tuple[int, int, int] | None = None, num_classes: int | None = None, **options: Any
) -> nn.Module:
    """Build a registered model or a notation; unknown options fail with the key named."""
    entry = _REGISTRY.get(name_or_notation)
    if entry is None:
        unknown = sorted(set(options) - _NOTATION_OPTIONS)
        if unknown:
            raise ModelSpecError(f"unknown model option(s) {', '.join(unknown)}; known: {', '.join(sorted(_NOTATION_OPTIONS))}")
        if in_shape is None or num_classes is None:
            raise ModelSpecError(f"'{name_or_notation}' is not a known model name; as notation it needs in_shape and num_classes")
        return build_from_notation(name_or_notation, tuple(in_shape), num_classes, **options)
    try:
        return entry.builder(
            in_shape=tuple(in_shape or entry.in_shape), num_classes=num_classes or entry.num_classes, **options
        )
    except TypeError as exc:
        raise ModelSpecError(f"model '{name_or_notation}': {exc}") from exc


def list_presets() -> list[dict[str, Any]]:
    """One row per registered model: name, notation, params, MACs, default input and classes."""
    rows = []
    for name, entry in _REGISTRY.items():
        model = create_model(name)
        rows.append(
            {
                "name": name,
                "notation": entry.notation,
                "description": entry.description,
                "params": count_parameters(model),
                "macs": count_macs(model, entry.in_shape),
                "in_shape": entry.in_shape,
                "num_classes": entry.num_classes,
            }
        )
    return rows
