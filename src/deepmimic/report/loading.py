"""Read the saved files of a finished run into plain Python data.

Only files are read here (``results.json``, ``config.yaml``, ``metrics.jsonl``);
nothing from the training engine is imported, so a report can be built on any
machine that has the run directory and matplotlib.

Two run shapes are understood:

* DeepMimic (``deepmimic.pipelines.deepmimic``): ``results.json`` with ``mentor`` and
  ``students``; curves in ``mentor/metrics.jsonl`` and ``students/<slug>/metrics.jsonl``.
* FEED (``deepmimic.pipelines.feed``): ``results.json`` with ``rows``; curves in
  ``<slug>/metrics.jsonl``, one folder per trained model.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from deepmimic.errors import ConfigError, DataError
from deepmimic.yaml_safe import load_yaml
from deepmimic.io_utils import slugify

RunKind = Literal["deepmimic", "feed"]


@dataclass(frozen=True)
class ModelRun:
    """One trained (or combined) model of a run: its summary and its per-epoch metrics.

    ``role`` is ``"mentor"`` or ``"student"`` for DeepMimic runs and the row's ``kind``
    (``"scratch"``, ``"ensemble"``, ``"kd"``, ...) for FEED runs. ``summary`` is the
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
    kind: RunKind
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
            raise DataError(f"{path}:{number}: malformed metrics line ({getattr(exc, 'msg', 'nested too deeply')})") from None
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


def _require(results: dict[str, Any], key: str, kind: type, path: Path) -> Any:
    value = results.get(key)
    if not isinstance(value, kind):
        raise DataError(f"{path}: '{key}' is missing or not a {kind.__name__}")
    return value


def _deepmimic_models(run_dir: Path, results: dict[str, Any], path: Path) -> list[ModelRun]:
    mentor = _require(results, "mentor", dict, path)
    students = _require(results, "students", list, path)
    models = [ModelRun(str(mentor.get("name", "Mentor")), "mentor", mentor,
                       read_metrics(run_dir / "mentor" / "metrics.jsonl"), run_dir / "mentor" / "metrics.jsonl")]
    for index, student in enumerate(students):
        if not isinstance(student, dict) or "name" not in student:
            raise DataError(f"{path}: students[{index}] is not an object with a 'name'")
        metrics_path = run_dir / "students" / slugify(str(student["name"])) / "metrics.jsonl"
        models.append(ModelRun(str(student["name"]), "student", student, read_metrics(metrics_path), metrics_path))
    return models


def _feed_models(run_dir: Path, results: dict[str, Any], path: Path) -> list[ModelRun]:
    models = []
    for index, row in enumerate(_require(results, "rows", list, path)):
        if not isinstance(row, dict) or "name" not in row:
            raise DataError(f"{path}: rows[{index}] is not an object with a 'name'")
        metrics_path = run_dir / slugify(str(row["name"])) / "metrics.jsonl"
        models.append(ModelRun(str(row["name"]), str(row.get("kind", "")), row, read_metrics(metrics_path), metrics_path))
    return models


def load_run(run_dir: str | Path) -> RunData:
    """Read a finished DeepMimic or FEED run directory.

    Raises :class:`DataError` when the directory or its results.json is missing or
    unreadable, or a metrics line is malformed; :class:`ConfigError` for a corrupt config.yaml.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise DataError(f"{run_dir}: run directory not found")
    results_path = run_dir / "results.json"
    results = read_results(results_path)
    config = read_config(run_dir / "config.yaml")
    if "rows" in results:
        return RunData(run_dir, "feed", results, config, _feed_models(run_dir, results, results_path))
    if "mentor" in results:
        return RunData(run_dir, "deepmimic", results, config, _deepmimic_models(run_dir, results, results_path))
    raise DataError(f"{results_path}: neither a DeepMimic run ('mentor') nor a FEED run ('rows')")
