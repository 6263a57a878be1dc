"""Methods by name: one file per method, one line here."""

from __future__ import annotations

import inspect
from typing import Any

from torch import nn

from deepmimic.errors import ConfigError
from deepmimic.methods.base import Method
from deepmimic.methods.soft_label import SoftLabel
from deepmimic.methods.supervised import Supervised

METHODS: dict[str, type[Method]] = {
    "supervised": Supervised,
    "soft_label": SoftLabel,
}


def create_method(name: str, student: nn.Module, **hyperparameters: Any) -> Method:
    """Instantiate method ``name`` around ``student``; unknown names or keys fail clearly."""
    if name not in METHODS:
        raise ConfigError(f"unknown method '{name}'; known methods: {', '.join(sorted(METHODS))}")
    cls = METHODS[name]
    accepted = {
        p.name for p in inspect.signature(cls.__init__).parameters.values() if p.kind is inspect.Parameter.KEYWORD_ONLY
    }
    unknown = sorted(set(hyperparameters) - accepted)
    if unknown:
        raise ConfigError(
            f"method '{name}' has no option(s) {', '.join(unknown)}; it accepts: {', '.join(sorted(accepted)) or 'none'}"
        )
    return cls(student, **hyperparameters)
