"""How ``deepmimic reproduce`` varies a shipped config: each pipeline applies a :class:`Variation` to its own keys."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Variation:
    """Changes to a raw config mapping, applied by the pipeline that owns its shape.

    ``seed`` shifts every seed of the config (split, weights) by that much; ``epochs`` sets
    every model's epochs and ``student_epochs`` the learners' own (a pipeline without a
    mentor/student distinction uses ``epochs``); ``model_options`` is merged into every
    model's options (tests use tiny widths).
    """

    seed: int = 0
    epochs: int | None = None
    student_epochs: int | None = None
    model_options: dict[str, Any] | None = None


def shifted_seed(block: dict[str, Any], offset: int, default: int = 0) -> dict[str, Any]:
    """``block`` with its ``seed`` moved by ``offset`` (a copy)."""
    return {**block, "seed": int(block.get("seed", default)) + offset}
