"""What ``deepmimic audit`` takes (:class:`AuditOptions`) and the checks made before any query."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from deepmimic.errors import ConfigError
from deepmimic.teachers.defences import parse_defences

DEFAULT_BUDGETS = (250, 500, 1000, 2000, 5000, 10000)
IN_DOMAIN = "in-domain"


@dataclass(frozen=True)
class AuditOptions:
    """One audit: a teacher, data, a student recipe, budgets, defences, query images and seeds."""

    teacher: str
    data: str
    student: str
    out: str = "runs/audit"
    budgets: tuple[int, ...] = DEFAULT_BUDGETS
    defences: str = "none,top1,round:2"
    query_data: str = IN_DOMAIN  # or a data spec / .npz pool standing in for an attacker's own images
    seeds: int = 1
    epochs: int = 10
    min_steps: int = 300  # small budgets train for more epochs, so every student gets at least this many steps
    batch_size: int = 64
    optimizer: str = "sgd"
    lr: float = 0.05
    teacher_options: dict[str, str] = field(default_factory=dict)
    student_options: dict[str, Any] = field(default_factory=dict)
    query_seed: int = 0  # draws the query order; every seed and defence uses the same queried rows
    resume: bool = False
    report: bool = True
    progress: bool | None = None
    command: str | None = None

    def check(self) -> None:
        """Everything that can be refused before the data is read (one line each)."""
        budgets = list(self.budgets)
        if not budgets:
            raise ConfigError("--budgets: give at least one budget")
        if any(b < 1 for b in budgets):
            raise ConfigError(f"--budgets must be positive, got {', '.join(map(str, budgets))}")
        if any(b >= a for a, b in zip(budgets[1:], budgets)):
            raise ConfigError(f"--budgets must increase, got {', '.join(map(str, budgets))}")
        parse_defences(self.defences)
        for flag, value in (("--seeds", self.seeds), ("--epochs", self.epochs), ("--batch-size", self.batch_size)):
            if value < 1:
                raise ConfigError(f"{flag} must be >= 1, got {value}")
        if self.min_steps < 0:
            raise ConfigError(f"--min-steps must be >= 0, got {self.min_steps}")
        if self.optimizer not in ("sgd", "adam"):
            raise ConfigError(f"--optimizer must be sgd or adam, got '{self.optimizer}'")
        if not self.lr > 0:
            raise ConfigError(f"--lr must be > 0, got {self.lr}")

    def epochs_for(self, budget: int) -> int:
        """``epochs``, or more for a budget so small that ``epochs`` would give fewer than ``min_steps`` steps."""
        steps_per_epoch = math.ceil(budget / self.batch_size)
        return max(self.epochs, math.ceil(self.min_steps / steps_per_epoch))

    def record(self) -> dict[str, Any]:
        """The options that decide the results (a resumed audit must match them)."""
        return {
            "teacher": self.teacher,
            "teacher_options": dict(self.teacher_options),
            "data": self.data,
            "student": self.student,
            "student_options": dict(self.student_options),
            "budgets": list(self.budgets),
            "query_data": self.query_data,
            "query_seed": self.query_seed,
            "epochs": self.epochs,
            "min_steps": self.min_steps,
            "batch_size": self.batch_size,
            "optimizer": self.optimizer,
            "lr": self.lr,
        }
