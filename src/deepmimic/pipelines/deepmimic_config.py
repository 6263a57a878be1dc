"""Configuration of the DeepMimic pipeline (DeepMimic paper, section 3), validated strictly."""

from __future__ import annotations

import copy
from typing import Any, Literal

from pydantic import Field, field_validator, model_serializer, model_validator

from deepmimic.config_schema import DataConfig, ModelStage, PaperReference, SplitConfig
from deepmimic.engine.settings import StrictModel
from deepmimic.errors import ConfigError
from deepmimic.pipelines.variation import Variation, shifted_seed


class MentorStage(ModelStage):
    """The mentor: trained on the labelled part (``model``, ``method: supervised``), or a
    pretrained model you already have, used as it is (``pretrained``: a teacher spec of
    :mod:`deepmimic.teachers.pretrained`, e.g. ``resnet20:resnet20.th``, with
    ``pretrained_options`` such as its input ``mean`` and ``std``). A pretrained mentor is a
    white-box teacher: students may use its logits, input gradients and feature maps (layer
    names under ``model.``, e.g. ``model.layer3``).
    """

    model: str | None = None  # type: ignore[assignment]
    method: str = "supervised"
    pretrained: str | None = None
    pretrained_options: dict[str, str | int | float] = Field(default_factory=dict)  # teacher options, e.g. mean, std

    @model_validator(mode="after")
    def _trained_or_pretrained(self) -> MentorStage:
        if (self.model is None) == (self.pretrained is None):
            raise ValueError("mentor needs exactly one of 'model' (trained here) or 'pretrained' (used as it is)")
        if self.model is not None and self.method != "supervised":
            raise ValueError("mentor.method must be 'supervised' (the mentor learns from the labelled part)")
        if self.pretrained is None and self.pretrained_options:
            raise ValueError("mentor.pretrained_options needs mentor.pretrained")
        return self

    @model_serializer(mode="wrap")
    def _without_unused(self, handler: Any) -> dict[str, Any]:
        """A trained mentor's dump has no pretrained keys (config.yaml and resume records stay as before)."""
        dump: dict[str, Any] = handler(self)
        if self.pretrained is None:
            dump.pop("pretrained", None)
            dump.pop("pretrained_options", None)
        return dump


class PipelineConfig(StrictModel):
    """The DeepMimic pipeline: mentor -> soft labels -> students -> evaluation."""

    pipeline: Literal["deepmimic"] = "deepmimic"
    name: str = "deepmimic"
    output_dir: str = "runs/deepmimic"
    cache_dir: str | None = None  # default: <output_dir>/soft-label-cache
    data: DataConfig = Field(default_factory=DataConfig)
    split: SplitConfig = Field(default_factory=SplitConfig)
    mentor: MentorStage
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


def merge_train_defaults(raw: dict[str, Any]) -> dict[str, Any]:
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


def vary(raw: dict[str, Any], variation: Variation) -> dict[str, Any]:
    """Apply ``variation`` to a raw DeepMimic config: split seed, each stage's epochs, seed and model options."""
    raw = copy.deepcopy(raw)
    raw["split"] = shifted_seed(raw.get("split") or {}, variation.seed)
    stages = [("mentor", raw["mentor"])] + [("student", s) for s in raw.get("students") or []]
    for role, stage in stages:
        stage_train = dict(stage.get("train") or {})
        if variation.epochs is not None:
            stage_train["epochs"] = variation.epochs
        if role == "student" and variation.student_epochs is not None:
            stage_train["epochs"] = variation.student_epochs
        if "seed" in stage_train:
            stage_train["seed"] = int(stage_train["seed"]) + variation.seed
        stage["train"] = stage_train
        if variation.model_options:
            stage["model_options"] = {**(stage.get("model_options") or {}), **variation.model_options}
    return raw
