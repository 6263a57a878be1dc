"""Experiment configuration: YAML files validated strictly.

A config is plain data: YAML is read with a safe loader (no tags, no code; ``1e-3`` is a
number, see :mod:`deepmimic.yaml_safe`), then
validated by pydantic models that reject unknown keys and wrong types with a message
naming the key. ``--set key.path=value`` overrides are applied before validation.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, PositiveInt, ValidationError, field_validator, model_validator

from deepmimic.engine.settings import StrictModel, TrainSettings
from deepmimic.errors import ConfigError
from deepmimic.yaml_safe import load_yaml


class DataConfig(StrictModel):
    """Which dataset to read (see :func:`deepmimic.data.load_dataset`)."""

    name: str = "mnist-5k"
    root: str | None = None
    options: dict[str, Any] = Field(default_factory=dict)
    train_subset: PositiveInt | None = None  # stratified subset of the training set (CPU-sized runs)
    test_subset: PositiveInt | None = None  # stratified subset of the test set


class OutOfDomainConfig(StrictModel):
    """Section 4.3, Table 4: add images from another dataset (an npz pool) to the student set."""

    pool: str
    fraction: float = Field(ge=0, le=1)


class SplitConfig(StrictModel):
    """Section 3.1: labelled mentor part vs unlabelled student part, balanced per class."""

    labeled_fraction: float = Field(0.2, gt=0, lt=1)
    seed: int = 0
    removal_ratio_bound: float = Field(0.0, ge=0, lt=1)  # Table 3; 0 = balanced student set
    out_of_domain: OutOfDomainConfig | None = None


class ModelStage(StrictModel):
    """One model to train: architecture, method and (merged) training settings."""

    name: str
    model: str
    model_options: dict[str, Any] = Field(default_factory=dict)
    method: str = "soft_label"
    method_options: dict[str, Any] = Field(default_factory=dict)
    # Where a student's targets come from: "cached" soft labels (computed once), the
    # mentor run "online" every step, or "auto": cached when the method needs only probabilities.
    teacher: Literal["auto", "cached", "online"] = "auto"
    train: TrainSettings = Field(default_factory=TrainSettings)


class PaperReference(StrictModel):
    """The paper's numbers, printed beside ours (accuracy in %, by model name)."""

    source: str = ""
    accuracy: dict[str, float] = Field(default_factory=dict)
    relative_accuracy: dict[str, float] = Field(default_factory=dict)


class PipelineConfig(StrictModel):
    """The DeepMimic pipeline: mentor -> soft labels -> students -> evaluation."""

    pipeline: Literal["deepmimic"] = "deepmimic"
    name: str = "deepmimic"
    output_dir: str = "runs/deepmimic"
    cache_dir: str | None = None  # default: <output_dir>/soft-label-cache
    data: DataConfig = Field(default_factory=DataConfig)
    split: SplitConfig = Field(default_factory=SplitConfig)
    mentor: ModelStage
    students: list[ModelStage] = Field(min_length=1)
    paper: PaperReference | None = None

    @field_validator("students")
    @classmethod
    def _unique_names(cls, students: list[ModelStage]) -> list[ModelStage]:
        names = [s.name for s in students]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"student names must be unique, repeated: {', '.join(duplicates)}")
        return students

    @model_validator(mode="after")
    def _mentor_is_supervised(self) -> PipelineConfig:
        if self.mentor.method != "supervised":
            raise ValueError("mentor.method must be 'supervised' (the mentor learns from the labelled part)")
        return self


def _merge_train_defaults(raw: dict[str, Any]) -> dict[str, Any]:
    """Apply a top-level ``train:`` block as defaults under each model's own ``train:``."""
    raw = copy.deepcopy(raw)
    defaults = raw.pop("train", None)
    if defaults is None:
        return raw
    if not isinstance(defaults, dict):
        raise ConfigError("train: must be a mapping of training settings")
    students = raw.get("students")
    stages = [raw.get("mentor")] + (list(students) if isinstance(students, list) else [])
    for stage in stages:
        # A stage or its train: that is not a mapping is left for validation to name.
        if isinstance(stage, dict) and isinstance(stage.get("train") or {}, dict):
            stage["train"] = {**defaults, **(stage.get("train") or {})}
    return raw


def apply_override(raw: dict[str, Any], assignment: str) -> None:
    """Apply ``a.b.c=value`` (value parsed as YAML) in place; list items by index (``students.0.train.epochs``)."""
    if "=" not in assignment:
        raise ConfigError(f"--set expects key=value, got '{assignment}'")
    key, _, text = assignment.partition("=")
    try:
        value = load_yaml(text) if text else None
    except yaml.YAMLError as exc:
        raise ConfigError(f"--set {key}: value is not valid YAML ({exc.problem})") from exc
    parts = key.strip().split(".")
    node: Any = raw
    for depth, part in enumerate(parts[:-1]):
        where = ".".join(parts[: depth + 1])
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise ConfigError(f"--set {key}: '{where}' is not a valid list index")
            node = node[int(part)]
        elif isinstance(node, dict):
            node = node.setdefault(part, {})
        else:
            raise ConfigError(f"--set {key}: '{where}' is not a mapping")
    last = parts[-1]
    if isinstance(node, list):
        if not last.isdigit() or int(last) >= len(node):
            raise ConfigError(f"--set {key}: '{last}' is not a valid list index")
        node[int(last)] = value
    elif isinstance(node, dict):
        node[last] = value
    else:
        raise ConfigError(f"--set {key}: parent is not a mapping")


def _format_validation_error(exc: ValidationError, source: str) -> str:
    first = exc.errors()[0]
    location = ".".join(str(p) for p in first["loc"]) or "(top level)"
    kind = first["type"]
    if kind == "extra_forbidden":
        message = f"unknown key '{location}'"
    elif kind == "missing":
        message = f"missing required key '{location}'"
    else:
        message = f"'{location}': {first['msg']}"
    more = len(exc.errors()) - 1
    return f"{source}: {message}" + (f" (and {more} more problem{'s' if more > 1 else ''})" if more else "")


PIPELINES = ("deepmimic", "feed")


def parse_config(raw: Any, source: str = "config", overrides: list[str] | None = None) -> Any:
    """Validate a raw mapping (as read from YAML) into the config of its ``pipeline``.

    ``pipeline: deepmimic`` (the default) gives a :class:`PipelineConfig`; ``pipeline: feed``
    a :class:`deepmimic.pipelines.feed_config.FeedConfig`.
    """
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of keys, got {type(raw).__name__}")
    raw = copy.deepcopy(raw)
    for assignment in overrides or []:
        apply_override(raw, assignment)
    kind = raw.get("pipeline", "deepmimic")
    if kind not in PIPELINES:
        raise ConfigError(f"{source}: unknown pipeline '{kind}'; known: {', '.join(PIPELINES)}")
    try:
        if kind == "feed":
            from deepmimic.pipelines.feed_config import FeedConfig  # noqa: PLC0415 (avoids an import cycle)

            return FeedConfig.model_validate(raw)
        return PipelineConfig.model_validate(_merge_train_defaults(raw))
    except ValidationError as exc:
        raise ConfigError(_format_validation_error(exc, source)) from exc


def load_config(path: str | Path, overrides: list[str] | None = None) -> Any:
    """Read and validate a YAML config file; never executes code (:func:`deepmimic.yaml_safe.load_yaml`)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: no such config file") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read config ({exc})") from exc
    try:
        raw = load_yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}: invalid YAML{where} ({getattr(exc, 'problem', None) or exc})") from exc
    return parse_config(raw, source=str(path), overrides=overrides)
