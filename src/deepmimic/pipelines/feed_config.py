"""Configuration of the FEED experiments (FEED paper, Tables 1-5), validated strictly.

The models to train are data: scratch seeds, a list of students taught by (some of) the
scratch models' ensemble, a list of sequences of generations (sFEED), and a list of
students taught by a pretrained model. Each student names a method and its
``method_options``, exactly as a DeepMimic student does; the method's constructor holds
every default (see :mod:`deepmimic.methods`), so the FEED paper's values (beta 500, T = 4,
KD's hard-label weight 1, the paraphraser's recipe) are written in the shipped configs, not here.

    pipeline: feed
    scratch_seeds: [0, 1, 2]
    student_seed: 100
    ensemble_students:          # taught by the ensemble of the first `members` scratch models (Table 4)
      - {name: KD from ensemble, method: kd, method_options: {temperature: 4.0, alpha: 1.0}}
      - {name: "pFEED (k={k})", members: 2, method: pfeed, method_options: {beta: 500.0}}
      - {name: "pFEED (k={k})", members: 3, method: pfeed, method_options: {beta: 500.0}}
    sequential:                 # sFEED: generation n learns from generation n-1 (Tables 1-3)
      - name: "sFEED stack {stack}"
        stacks: 3
        method: factor_transfer
        method_options: {beta: 500.0, paraphraser: false}
      - name: "sFEED+P stack {stack}"
        stacks: 3
        method: factor_transfer
        method_options: {beta: 500.0, paraphraser: true, rate: 1.0}
    pretrained_students:        # taught by one pretrained model (its own row: kind "pretrained")
      - name: KD from ResNet-32
        pretrained: resnet32:../shared/models/akamaster-resnet-cifar10/resnet32-d509ac18.th
        pretrained_options: {mean: "0.485,0.456,0.406", std: "0.229,0.224,0.225"}
        method: kd
        method_options: {temperature: 4.0, alpha: 1.0}

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

K_PLACEHOLDER = "{k}"  # in an ensemble student's name: the number of scratch models that teach it
STACK_PLACEHOLDER = "{stack}"  # in the sequential name: the generation's number (2..stacks)


class EnsembleStudent(StrictModel):
    """A fresh student (seed ``student_seed``) taught by the ensemble of the first ``members``
    scratch models (default: all of them; Table 4): KD from the ensemble, pFEED, or any method
    an ensemble teacher can serve. Its row's ``kind`` in results.json is the method's name."""

    name: str = Field(min_length=1)  # "{k}" becomes its number of teachers: "pFEED (k={k})"
    members: int | None = Field(None, ge=1)  # the first `members` scratch models teach it; None: all
    method: str
    method_options: dict[str, Any] = Field(default_factory=dict)

    def stage_name(self, k: int) -> str:
        return self.name.replace(K_PLACEHOLDER, str(k))


class SequentialStudents(StrictModel):
    """One sFEED sequence (Tables 1-3): generation 1 is the scratch model of the first seed;
    generation n (2..``stacks``) is a fresh student (seed ``student_seed + n``) taught by
    generation n-1 of the same sequence alone. Its rows' ``kind`` in results.json is ``sfeed``."""

    name: str = f"sFEED stack {STACK_PLACEHOLDER}"
    stacks: int = Field(ge=1, le=5)  # generations in all, generation 1 included
    method: str
    method_options: dict[str, Any] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _numbered(cls, name: str) -> str:
        if STACK_PLACEHOLDER not in name:
            raise ValueError(f"must contain {STACK_PLACEHOLDER} (each generation needs its own name), got '{name}'")
        return name

    def stage_name(self, stack: int) -> str:
        return self.name.replace(STACK_PLACEHOLDER, str(stack))


class PretrainedStudent(StrictModel):
    """A fresh student (seed ``student_seed``) taught by one pretrained model used as it is
    (``pretrained``: a teacher spec of :mod:`deepmimic.teachers.pretrained`, e.g.
    ``resnet32:resnet32.th``, with ``pretrained_options`` such as its input ``mean`` and
    ``std``). The teacher sees the pipeline's normalised batches renormalised to its own
    statistics, frozen, in eval mode. Its row's ``kind`` is ``<method>-pretrained``; the
    teacher has a row of its own (kind ``pretrained``, not trained)."""

    name: str = Field(min_length=1)
    pretrained: str = Field(min_length=1)
    pretrained_options: dict[str, str | int | float] = Field(default_factory=dict)  # teacher options: mean, std, ...
    method: str
    method_options: dict[str, Any] = Field(default_factory=dict)


class FeedConfig(StrictModel):
    """Scratch models (several seeds; their ensemble), students of the ensemble, sFEED sequences,
    students of pretrained models."""

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
    sequential: list[SequentialStudents] = Field(default_factory=list)
    pretrained_students: list[PretrainedStudent] = Field(default_factory=list)
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
