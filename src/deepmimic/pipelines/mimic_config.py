"""Configuration of the mimic pipeline (a teacher you can only query -> a student), validated strictly.

``deepmimic mimic`` builds this from its flags; the same keys in a YAML file run with
``deepmimic run`` (``pipeline: mimic``), and every run writes it back as its config.yaml.
"""

from __future__ import annotations

import copy
from typing import Any, Literal

from pydantic import Field, PositiveInt

from deepmimic.engine.settings import StrictModel, TrainSettings
from deepmimic.pipelines.variation import Variation


class MimicConfig(StrictModel):
    """Label the unlabelled images through the teacher, train the student on the answers, compare."""

    pipeline: Literal["mimic"] = "mimic"
    name: str | None = None  # default: "mimic <teacher> -> <student>"
    output_dir: str = "runs/mimic"
    teacher: str  # a trained run's stage folder, an .onnx file, an http(s):// URL, a .npy/.csv predictions file
    teacher_options: dict[str, str] = Field(default_factory=dict)  # see `deepmimic label --help`
    data: str  # NAME or NAME:ROOT (deepmimic.data.spec); its train split is the unlabelled set
    student: str  # a model preset or architecture notation
    student_options: dict[str, Any] = Field(default_factory=dict)
    # How the student learns from the answers: any registered method that needs only the
    # teacher's probabilities; options are checked against its constructor.
    method: str = "soft_label"
    method_options: dict[str, Any] = Field(default_factory=dict)
    label_only: bool = False  # the teacher returns only its top-1 class (one-hot targets)
    compare_label_only: bool = False  # also train a student on the top-1 class of the same answers
    budget: PositiveInt | None = None  # most unlabelled images the teacher may be asked about
    # Which rows a budget asks about: "file" the first ``budget`` rows in the data's order,
    # "random" a random sample drawn with train.seed (the same rows for the same seed, also on resume).
    budget_order: Literal["file", "random"] = "file"
    subset: PositiveInt | None = None  # a random subset of the unlabelled images (no labels involved)
    evaluate_test: bool = True  # query the teacher on the test split too, to measure agreement
    label_batch_size: PositiveInt = 256
    train: TrainSettings = Field(default_factory=lambda: TrainSettings(epochs=10))


def vary(raw: dict[str, Any], variation: Variation) -> dict[str, Any]:
    """Apply ``variation`` to a raw mimic config: the student's epochs (``student_epochs``, else
    ``epochs``) and options.

    The seed offset is applied with the rest of ``train`` by the caller; the teacher is not ours to vary.
    """
    raw = copy.deepcopy(raw)
    epochs = variation.student_epochs or variation.epochs
    if epochs is not None:
        raw["train"] = {**(raw.get("train") or {}), "epochs": epochs}
    if variation.model_options:
        raw["student_options"] = {**(raw.get("student_options") or {}), **variation.model_options}
    return raw
