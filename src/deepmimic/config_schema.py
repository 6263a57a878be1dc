"""Config blocks shared by every pipeline: data, split, a model stage, the paper's numbers.

Plain pydantic models (strict, unknown keys rejected); each pipeline's own config model
(:mod:`deepmimic.pipelines.deepmimic_config`, :mod:`deepmimic.pipelines.feed_config`,
:mod:`deepmimic.pipelines.mimic_config`) is built from these blocks.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, PositiveInt, ValidationError, model_validator

from deepmimic.engine.settings import StrictModel, TrainSettings


class DataConfig(StrictModel):
    """Which dataset to read (see :func:`deepmimic.data.load_dataset`)."""

    name: str = "mnist-5k"
    root: str | None = None
    options: dict[str, Any] = Field(default_factory=dict)
    train_subset: PositiveInt | None = None  # stratified subset of the training set (CPU-sized runs)
    test_subset: PositiveInt | None = None  # stratified subset of the test set
    # Tuning without the test set: hold out this stratified fraction of the (subset) training
    # images and evaluate on it instead; the test set is then never read into the results.
    validation_fraction: float | None = Field(None, gt=0, lt=1)

    def parts(self) -> dict[str, Any]:
        """The keyword arguments of :func:`deepmimic.data.splits.evaluation_parts` this block sets."""
        return {
            "train_subset": self.train_subset,
            "test_subset": self.test_subset,
            "validation_fraction": self.validation_fraction,
        }

    @model_validator(mode="after")
    def _one_evaluation_set(self) -> DataConfig:
        if self.validation_fraction is not None and self.test_subset is not None:
            raise ValueError("data.test_subset and data.validation_fraction exclude each other (no test set is used)")
        return self


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


def format_validation_error(exc: ValidationError, source: str) -> str:
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
