"""The DeepMimic paper's published numbers, to print beside ours (../shared/papers/deepmimic.md).

Accuracies in percent. Tables 3 and 4 are CIFAR-10 only; Fig. 1 (split ratio) is a plot
without printed values, so that sweep has no paper column.
"""

from __future__ import annotations

from typing import Any

# Tables 1, 2, 5: model -> (accuracy, relative accuracy); section 4.2 adds the one-hot
# comparison on CIFAR-10 (students trained on the same 80% with true labels).
LADDER_TABLES: dict[str, dict[str, Any]] = {
    "mnist": {
        "source": "DeepMimic, Table 1 (MNIST)",
        "accuracy": {"Mentor": 97.46, "Student-A": 97.38, "Student-B": 97.17},
        "relative_accuracy": {"Student-A": 99.91, "Student-B": 99.70},
    },
    "cifar10": {
        "source": "DeepMimic, Table 2 and section 4.2 (CIFAR-10, 150 epochs)",
        "accuracy": {
            "Mentor": 73.14,
            "Student-A": 73.58,
            "Student-B": 72.38,
            "Student-C": 69.63,
            "Student-B one-hot": 77.22,
            "Student-C one-hot": 72.64,
        },
        "relative_accuracy": {"Student-A": 100.6, "Student-B": 98.96, "Student-C": 95.2},
    },
    "tinyimagenet": {
        "source": "DeepMimic, Table 5 (Tiny ImageNet, 100 epochs)",
        "accuracy": {"Mentor": 20.45, "Student-A": 20.47, "Student-B": 20.51, "Student-C": 19.60},
        "relative_accuracy": {"Student-A": 100.09, "Student-B": 100.29, "Student-C": 95.84},
    },
}

_STUDENTS = ("Student-A", "Student-B", "Student-C")

# Table 3: removal ratio bound -> accuracy of Students A/B/C (mentor 72.92%).
_REMOVAL = {
    0.05: (73.01, 71.74, 69.28),
    0.1: (73.29, 71.38, 68.79),
    0.2: (72.45, 71.34, 68.98),
    0.3: (73.02, 71.32, 68.58),
    0.4: (72.92, 70.73, 68.36),
    0.5: (73.02, 70.72, 68.15),
    0.6: (72.32, 69.77, 67.16),
    0.7: (72.21, 69.35, 66.62),
    0.8: (71.86, 69.36, 66.62),
    0.9: (72.33, 69.64, 66.94),
}
# Table 4: out-of-domain fraction -> accuracy of Students A/B/C (mentor 72.92%).
_OOD = {
    0.05: (73.36, 71.2, 68.96),
    0.1: (73.42, 71.45, 69.04),
    0.2: (73.36, 71.68, 69.01),
    0.3: (73.17, 71.49, 69.35),
    0.4: (73.30, 71.37, 69.05),
    0.5: (73.20, 71.53, 68.96),
    0.6: (73.16, 71.58, 69.04),
}
SWEEP_TABLES: dict[str, dict[str, Any]] = {
    "unbalanced-removal": {
        "dataset": "cifar10",
        "source": "DeepMimic, Table 3 (CIFAR-10, mentor 72.92%, 150 epochs)",
        "mentor": 72.92,
        "points": _REMOVAL,
    },
    "out-of-domain": {
        "dataset": "cifar10",
        "source": "DeepMimic, Table 4 (CIFAR-10, mentor 72.92%, 150 epochs)",
        "mentor": 72.92,
        "points": _OOD,
    },
}


def sweep_paper_row(experiment: str, dataset: str, value: float) -> dict[str, float] | None:
    """The paper's accuracies for one sweep point (``{"Mentor": .., "Student-A": ..}``), or ``None``.

    Only where the paper measured that experiment on that dataset.
    """
    table = SWEEP_TABLES.get(experiment)
    if table is None or table["dataset"] != dataset:
        return None
    row = table["points"].get(round(value, 4))
    if row is None:
        return None
    return {"Mentor": table["mentor"], **dict(zip(_STUDENTS, row))}


def sweep_source(experiment: str, dataset: str) -> str | None:
    """Where :func:`sweep_paper_row` numbers come from, or ``None`` when there are none."""
    table = SWEEP_TABLES.get(experiment)
    return table["source"] if table is not None and table["dataset"] == dataset else None
