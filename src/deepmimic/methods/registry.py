"""Methods by name: one file per method, one line here."""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from typing import Any

from torch import nn

from deepmimic.errors import ConfigError
from deepmimic.methods.base import Method
from deepmimic.methods.factor_transfer import FactorTransfer
from deepmimic.methods.imitation import Imitation
from deepmimic.methods.kd import KnowledgeDistillation
from deepmimic.methods.pfeed import ParallelFeed
from deepmimic.methods.soft_label import SoftLabel
from deepmimic.methods.supervised import Supervised
from deepmimic.teachers.base import Teacher

METHODS: dict[str, type[Method]] = {
    "supervised": Supervised,
    "soft_label": SoftLabel,
    "kd": KnowledgeDistillation,
    "imitation": Imitation,
    "factor_transfer": FactorTransfer,
    "pfeed": ParallelFeed,
}


def method_options(name: str) -> set[str]:
    """The keyword hyperparameters method ``name`` accepts."""
    return {
        p.name
        for p in inspect.signature(METHODS[name].__init__).parameters.values()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    }


def check_method_options(name: str, options: Iterable[str]) -> None:
    """Refuse an unknown method ``name`` or an option name its constructor does not take (one-line
    :class:`ConfigError`); cheap, so a pipeline can check every stage before it loads data."""
    if name not in METHODS:
        raise ConfigError(f"unknown method '{name}'; known methods: {', '.join(sorted(METHODS))}")
    accepted = method_options(name)
    unknown = sorted(set(options) - accepted)
    if unknown:
        raise ConfigError(
            f"method '{name}' has no option(s) {', '.join(unknown)}; "
            f"it accepts: {', '.join(sorted(accepted)) or 'none'}"
        )


def create_method(name: str, student: nn.Module, teacher: Teacher | None = None, **hyperparameters: Any) -> Method:
    """Instantiate method ``name`` around ``student`` and ``teacher``; unknown names or keys fail clearly.

    The constructor's keyword defaults are the only defaults a method has: a config's
    ``method_options`` override them key by key."""
    check_method_options(name, hyperparameters)
    try:
        return METHODS[name](student, teacher, **hyperparameters)
    except TypeError as exc:
        raise ConfigError(f"method '{name}': {exc}") from exc
