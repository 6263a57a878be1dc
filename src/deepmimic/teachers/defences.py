"""Answer defences: what a served model returns instead of its full probabilities.

An owner who serves a classifier can make it harder to copy by returning less: only the top
class, only the K largest probabilities, or probabilities rounded to a few decimals.
``deepmimic audit`` measures how much each one slows a copy down, and ``deepmimic serve
--answer`` serves the same defences, so what was measured is what gets deployed.

Specs (``parse_defence``):

* ``none``: the full probabilities;
* ``top1``: one-hot on the top class (ties to the lowest index, as ``argmax``);
* ``topk:K``: the K largest probabilities renormalised to sum to 1, the rest 0;
* ``round:D``: probabilities rounded to D decimals (a row that rounds to all zeros, possible
  only with many classes, keeps its top class), then renormalised so that a student can
  use them as a distribution.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from deepmimic.errors import ConfigError
from deepmimic.teachers.label_only import one_hot_top1

DEFENCE_HELP = "none, top1, topk:K or round:D"


@dataclass(frozen=True)
class Defence:
    """One answer defence: ``kind`` (none, top1, topk, round) and its number (K or D; 0 when it takes none)."""

    kind: str
    value: int = 0

    def __post_init__(self) -> None:
        if self.kind not in ("none", "top1", "topk", "round"):
            raise ConfigError(f"unknown defence '{self.kind}'; known: {DEFENCE_HELP}")

    @property
    def name(self) -> str:
        """The spec that parses back to this defence (``topk:3``)."""
        return f"{self.kind}:{self.value}" if self.kind in ("topk", "round") else self.kind

    def apply(self, probs: torch.Tensor) -> torch.Tensor:
        """probs (B, K) float -> the defended answers (B, K) float32; every row sums to 1."""
        probs = probs.to(torch.float32)
        if self.kind == "none":
            return probs
        if self.kind == "top1":
            return one_hot_top1(probs)
        if self.kind == "topk":
            k = min(self.value, probs.shape[1])
            top = probs.topk(k, dim=1)  # values, indices: (B, k)
            kept = torch.zeros_like(probs).scatter_(1, top.indices, top.values)
            return kept / kept.sum(dim=1, keepdim=True).clamp_min(1e-12)
        scale = 10.0**self.value  # round
        rounded = torch.round(probs * scale) / scale
        empty = rounded.sum(dim=1) == 0  # every class rounded away: keep the top one
        rounded[empty] = one_hot_top1(probs[empty])
        return rounded / rounded.sum(dim=1, keepdim=True)


def parse_defence(spec: str) -> Defence:
    """``"none"``, ``"top1"``, ``"topk:K"`` (K >= 1) or ``"round:D"`` (0 <= D <= 8) -> :class:`Defence`."""
    text = spec.strip().lower()
    kind, sep, number = text.partition(":")
    if kind in ("none", "top1") and not sep:
        return Defence(kind)
    if kind in ("topk", "round") and sep:
        try:
            value = int(number)
        except ValueError:
            value = -1
        low, high = (1, 10_000) if kind == "topk" else (0, 8)
        if low <= value <= high:
            return Defence(kind, value)
        raise ConfigError(f"defence '{spec}': {kind} takes an integer {low}..{high:,} after the colon")
    raise ConfigError(f"unknown defence '{spec}'; known: {DEFENCE_HELP}")


def parse_defences(text: str) -> list[Defence]:
    """A comma-separated list of defence specs, without repeats, in the order given."""
    defences = [parse_defence(part) for part in text.split(",") if part.strip()]
    if not defences:
        raise ConfigError(f"no defence given; use one or more of {DEFENCE_HELP}")
    names = [d.name for d in defences]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ConfigError(f"defence {', '.join(repeated)} given more than once")
    return defences
