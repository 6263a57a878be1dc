"""Configuration of the FEED experiments (FEED paper, Tables 1-5), validated strictly.

The models to train are data: scratch seeds, a list of students taught by the scratch
models' ensemble, and an optional sequence of generations. Each student names a method
and its ``method_options``, exactly as a DeepMimic student does; the method's constructor
holds every default (see :mod:`deepmimic.methods`), so the FEED paper's values (beta 500,
T = 4, KD's hard-label weight 1) are written in the shipped configs, not here.

    pipeline: feed
    scratch_seeds: [0, 1, 2]
    student_seed: 100
    ensemble_students:          # taught by the ensemble of the scratch models (Table 4)
      - {name: KD from ensemble, method: kd, method_options: {temperature: 4.0, alpha: 1.0}}
      - {name: "pFEED (k={k})", method: pfeed, method_options: {beta: 500.0}}
    sequential:                 # sFEED: generation n learns from generation n-1 (Tables 1-3)
      stacks: 3
      method: factor_transfer
      method_options: {beta: 500.0, paraphraser: true, paraphraser_epochs: 5}

Option names and values are checked against the method's constructor before the run
loads data or writes anything (:func:`deepmimic.pipelines.feed.run_feed`); a bad one fails
with one line naming the stage.
"""

from __future__ import annotations

import copy
from typing import Any, Literal

from pydantic import Field, PositiveInt, field_validator

from deepmimic.config_schema import DataConfig, PaperReference
from deepmimic.engine.settings import StrictModel, TrainSettings
from deepmimic.pipelines.variation import Variation, shifted_seed

K_PLACEHOLDER = "{k}"  # in an ensemble student's name: the number of scratch models
STACK_PLACEHOLDER = "{stack}"  # in the sequential name: the generation's number (2..stacks)


class EnsembleStudent(StrictModel):
    """A fresh student (seed ``student_seed``) taught by the ensemble of the scratch models
    (Table 4): KD from the ensemble, pFEED, or any method an ensemble teacher can serve.
    Its row's ``kind`` in results.json is the method's name."""

    name: str = Field(min_length=1)  # "{k}" becomes the number of scratch models: "pFEED (k={k})"
    method: str
    method_options: dict[str, Any] = Field(default_factory=dict)

    def stage_name(self, k: int) -> str:
        return self.name.replace(K_PLACEHOLDER, str(k))


class SequentialStudents(StrictModel):
    """sFEED (Tables 1-3): generation 1 is the scratch model of the first seed; generation n
    (2..``stacks``) is a fresh student (seed ``student_seed + n``) taught by generation n-1
    alone. Its rows' ``kind`` in results.json is ``sfeed``."""

    stacks: int = Field(ge=1, le=5)  # generations in all, generation 1 included
    method: str
    method_options: dict[str, Any] = Field(default_factory=dict)
    name: str = f"sFEED stack {STACK_PLACEHOLDER}"

    @field_validator("name")
    @classmethod
    def _numbered(cls, name: str) -> str:
        if STACK_PLACEHOLDER not in name:
            raise ValueError(f"must contain {STACK_PLACEHOLDER} (each generation needs its own name), got '{name}'")
        return name

    def stage_name(self, stack: int) -> str:
        return self.name.replace(STACK_PLACEHOLDER, str(stack))


class FeedConfig(StrictModel):
    """Scratch models (several seeds; their ensemble), students of the ensemble, sFEED generations."""

    pipeline: Literal["feed"] = "feed"
    name: str = "feed"
    output_dir: str = "runs/feed"
    data: DataConfig
    model: str = "resnet20"
    model_options: dict[str, Any] = Field(default_factory=dict)
    train: TrainSettings = Field(default_factory=TrainSettings)
    scratch_seeds: list[int] = Field(default_factory=lambda: [0, 1, 2], min_length=1)
    student_seed: PositiveInt = 100  # initial weights of the ensemble's students and sFEED generations 2..
    ensemble_students: list[EnsembleStudent] = Field(default_factory=list)
    sequential: SequentialStudents | None = None
    paper: PaperReference | None = None


def vary(raw: dict[str, Any], variation: Variation) -> dict[str, Any]:
    """Apply ``variation`` to a raw FEED config: every model's epochs, the scratch and student seeds, model options.

    Seed offset ``s`` moves the k scratch seeds to a fresh block (``seed + s * k``), so the
    ensembles of different offsets share no member.
    """
    raw = copy.deepcopy(raw)
    train = dict(raw.get("train") or {})
    if variation.epochs is not None:
        train["epochs"] = variation.epochs
    raw["train"] = train
    seeds = [int(s) for s in raw.get("scratch_seeds", [0, 1, 2])]
    raw["scratch_seeds"] = [s + variation.seed * len(seeds) for s in seeds]
    raw["student_seed"] = shifted_seed({"seed": raw.get("student_seed", 100)}, variation.seed)["seed"]
    if variation.model_options:
        raw["model_options"] = {**(raw.get("model_options") or {}), **variation.model_options}
    return raw
