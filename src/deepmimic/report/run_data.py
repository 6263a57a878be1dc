"""What a report reads from a run directory, as plain Python data.

Only files are read here (``results.json``, ``config.yaml``, ``metrics.jsonl``); nothing
from the training engine is imported, so a report can be built on any machine that has the
run directory and matplotlib. Which models a run holds is the pipeline's business (its
:class:`deepmimic.report.views.RunView`); :func:`deepmimic.report.loading.load_run` asks it.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from deepmimic.errors import ConfigError, DataError
from deepmimic.yaml_safe import load_yaml


@dataclass(frozen=True)
class ModelRun:
    """One trained (or combined) model of a run: its summary and its per-epoch metrics.

    ``role`` is what the pipeline calls the model: ``"mentor"`` or ``"student"`` for
    DeepMimic and mimic runs, the row's ``kind`` (``"scratch"``, ``"ensemble"``, ``"kd"``, ...)
    for FEED runs. ``summary`` is the
    model's entry in results.json; ``metrics`` holds one dict per epoch (empty when the
    model has no metrics file, e.g. a FEED ensemble).
    """

    name: str
    role: str
    summary: dict[str, Any]
    metrics: list[dict[str, Any]] = field(default_factory=list)
    metrics_path: Path | None = None


@dataclass(frozen=True)
class RunData:
    """Everything a report needs from a run directory."""

    run_dir: Path
    pipeline: str  # the registered pipeline that wrote the run (deepmimic.pipelines.registry)
    results: dict[str, Any]
    config: dict[str, Any] | None
    models: list[ModelRun]

    @property
    def name(self) -> str:
        """The run's name from results.json (falls back to the directory name)."""
        return str(self.results.get("name") or self.run_dir.name)

    @property
    def class_names(self) -> tuple[str, ...]:
        """Class names recorded in results.json (``data.class_names``), or ``()``."""
        names = (self.results.get("data") or {}).get("class_names")
        return tuple(str(n) for n in names) if isinstance(names, list) else ()

    @property
    def paper(self) -> dict[str, Any]:
        """The paper's reference numbers (``source``, ``accuracy``, ``relative_accuracy``), or ``{}``."""
        paper = self.results.get("paper")
        return paper if isinstance(paper, dict) else {}


def read_results(path: str | Path) -> dict[str, Any]:
    """Parse ``results.json``; raises :class:`DataError` naming the file when absent or corrupt."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: results.json not found (has the run finished?)")
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise DataError(f"{path}: not valid JSON ({' '.join(str(exc).split()) or type(exc).__name__})") from None
    if not isinstance(payload, dict):
        raise DataError(f"{path}: expected a JSON object, got {type(payload).__name__}")
    return payload


def read_config(path: str | Path) -> dict[str, Any] | None:
    """Parse ``config.yaml`` as plain data (:func:`deepmimic.yaml_safe.load_yaml`); ``None`` when the file is absent."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        payload = load_yaml(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        reason = " ".join(str(exc).split())
        raise ConfigError(f"{path}: not valid YAML ({reason})") from None
    if payload is None:
        return {}
    if not isinstance(payload, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(payload).__name__}")
    return payload


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """Parse a ``metrics.jsonl`` file: one JSON object with an integer ``epoch`` per line.

    Blank lines are skipped; a missing file gives ``[]``. A malformed line raises
    :class:`DataError` naming the file and line number. Rows are returned sorted by epoch.
    """
    path = Path(path)
    if not path.is_file():
        return []
    rows: list[dict[str, Any]] = []
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: unreadable metrics file ({type(exc).__name__})") from None
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except (json.JSONDecodeError, RecursionError) as exc:
            raise DataError(
                f"{path}:{number}: malformed metrics line ({getattr(exc, 'msg', 'nested too deeply')})"
            ) from None
        if not isinstance(row, dict):
            raise DataError(f"{path}:{number}: malformed metrics line (expected a JSON object)")
        epoch = row.get("epoch")
        if isinstance(epoch, bool) or not isinstance(epoch, int):
            raise DataError(f"{path}:{number}: malformed metrics line (missing integer 'epoch')")
        rows.append(row)
    rows.sort(key=lambda r: r["epoch"])
    return rows


def series(metrics: list[dict[str, Any]], key: str) -> tuple[list[int], list[float]]:
    """The epochs and finite values of ``key`` in ``metrics`` (epochs without it are skipped)."""
    epochs: list[int] = []
    values: list[float] = []
    for row in metrics:
        value = row.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            epochs.append(int(row["epoch"]))
            values.append(float(value))
    return epochs, values
