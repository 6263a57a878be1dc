"""Experiment configuration: YAML files validated strictly.

A config is plain data: YAML is read with a safe loader (no tags, no code; ``1e-3`` is a
number, see :mod:`deepmimic.yaml_safe`), then
validated by pydantic models that reject unknown keys and wrong types with a message
naming the key. ``--set key.path=value`` overrides are applied before validation;
``train_overrides`` (the run commands' ``--eval-every``) after it, to every model's
training settings (:func:`override_train`).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from deepmimic.config_schema import format_validation_error
from deepmimic.engine.settings import TrainSettings
from deepmimic.errors import ConfigError
from deepmimic.pipelines.deepmimic_config import PipelineConfig
from deepmimic.pipelines.registry import DEFAULT_PIPELINE, get_pipeline
from deepmimic.yaml_safe import load_yaml

__all__ = ["PipelineConfig", "apply_override", "load_config", "override_train", "parse_config", "validate_config"]


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


def parse_config(
    raw: Any,
    source: str = "config",
    overrides: list[str] | None = None,
    train_overrides: Mapping[str, Any] | None = None,
) -> Any:
    """Validate a raw mapping (as read from YAML) into the config model of its ``pipeline``.

    ``pipeline:`` names a registered pipeline (:mod:`deepmimic.pipelines.registry`;
    ``deepmimic`` when absent): DeepMimic's config is
    :class:`deepmimic.pipelines.deepmimic_config.PipelineConfig`, FEED's
    :class:`deepmimic.pipelines.feed_config.FeedConfig`, mimic's
    :class:`deepmimic.pipelines.mimic_config.MimicConfig`. ``train_overrides`` then set
    training settings on every model (:func:`override_train`).
    """
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of keys, got {type(raw).__name__}")
    raw = copy.deepcopy(raw)
    for assignment in overrides or []:
        apply_override(raw, assignment)
    pipeline = get_pipeline(raw.get("pipeline", DEFAULT_PIPELINE), source)
    config = validate_config(pipeline.config_model, pipeline.prepare(raw), source)
    return override_train(config, train_overrides, source) if train_overrides else config


def override_train(config: Any, values: Mapping[str, Any], source: str = "config") -> Any:
    """Set ``values`` (e.g. ``{"eval_every": "auto"}``) on every :class:`TrainSettings` in a
    validated config, in place; returns the config.

    Every pipeline's models are found the same way (a DeepMimic stage's ``train``, FEED's
    and mimic's top-level ``train``), and the values beat each stage's own ``train:`` block,
    unlike ``--set train.KEY=VALUE``, which for DeepMimic is only a default under the stages'
    blocks. Bad values fail as one :class:`ConfigError` line.
    """
    for settings in _train_settings(config):
        for key, value in values.items():
            try:
                setattr(settings, key, value)
            except ValidationError as exc:
                raise ConfigError(format_validation_error(exc, source)) from exc
    return config


def _train_settings(node: Any) -> list[TrainSettings]:
    """Every :class:`TrainSettings` reachable from ``node`` through model fields, lists and dicts."""
    if isinstance(node, TrainSettings):
        return [node]
    if isinstance(node, BaseModel):
        return [s for name in type(node).model_fields for s in _train_settings(getattr(node, name))]
    if isinstance(node, (list, tuple)):
        return [s for item in node for s in _train_settings(item)]
    if isinstance(node, dict):
        return [s for item in node.values() for s in _train_settings(item)]
    return []


def validate_config(model: type[BaseModel], raw: dict[str, Any], source: str = "config") -> Any:
    """``model.model_validate(raw)``, a validation failure as a one-line :class:`ConfigError` naming the key."""
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, source)) from exc


def load_config(
    path: str | Path, overrides: list[str] | None = None, train_overrides: Mapping[str, Any] | None = None
) -> Any:
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
    return parse_config(raw, source=str(path), overrides=overrides, train_overrides=train_overrides)
