"""An audit's points -> mean +- std curves and the queries needed for a fidelity (engine-free)."""

from __future__ import annotations

import statistics
from typing import Any

FIDELITY_TARGETS = (0.90, 0.95, 0.99)  # agreement with the teacher on the test set
AUDIT_FILE = "audit.json"


def _mean_std(values: list[float]) -> list[float]:
    return [statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0]


def curves(points: list[dict[str, Any]], defences: list[str], budgets: list[int]) -> list[dict[str, Any]]:
    """One curve per defence: for each budget with results, accuracy and agreement as [mean, std] over seeds."""
    out = []
    for defence in defences:
        rows = []
        for budget in budgets:
            mine = [p for p in points if p["defence"] == defence and p["budget"] == budget]
            if mine:
                rows.append(
                    {
                        "budget": budget,
                        "seeds": len(mine),
                        "accuracy": _mean_std([p["accuracy"] for p in mine]),
                        "agreement": _mean_std([p["agreement"] for p in mine]),
                        "train_time_s": _mean_std([p["train_time_s"] for p in mine]),
                    }
                )
        out.append({"defence": defence, "rows": rows})
    return out


def queries_needed(curve: dict[str, Any], target: float) -> int | None:
    """The smallest budget whose mean agreement reaches ``target``; None when no budget did."""
    for row in curve["rows"]:
        if row["agreement"][0] >= target:
            return int(row["budget"])
    return None
