"""The FEED experiments (FEED paper, section 4 and Tables 1-5) in one harness.

1. Scratch: the architecture trained with labels from scratch, once per seed (the teachers).
2. Ensemble: the scratch models' averaged probabilities (Table 4's upper reference).
3. The ensemble's students (``ensemble_students``), each a fresh model taught by the first
   ``members`` scratch models together (default: all): in the shipped configs KD from the
   ensemble (T = 4, Table 4's baseline) and pFEED with k = 2 and k = 3 (one translator per
   teacher, eqs. 4-5).
4. sFEED (``sequential``, a list of sequences): in each, generation 1 is the first scratch
   model and generation n is a fresh student trained with factor transfer from generation
   n-1 (Tables 1-3; the shipped config has one sequence without the paraphraser, Table 1,
   and one with it, Table 2).
5. Students of a pretrained model (``pretrained_students``): a fresh student taught by one
   strong pretrained teacher (e.g. KD from a published CIFAR-10 ResNet-32); the teacher has
   a row of its own (kind ``pretrained``, evaluated, not trained).

Which students, with which method and ``method_options``, is data
(:mod:`deepmimic.pipelines.feed_config`).

Every trained model has the same architecture, training settings and data; results.json
and table.md report test error per model in the shape of the paper's tables.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml

from deepmimic.data import load_dataset
from deepmimic.data.batches import Normalizer, TrainingSet
from deepmimic.data.fingerprint import fingerprint
from deepmimic.data.splits import evaluation_parts
from deepmimic.engine.optim import resolve_device
from deepmimic.engine.trainer import check_fit, fit
from deepmimic.environment import describe_environment
from deepmimic.errors import ConfigError, DeepMimicError
from deepmimic.eval.metrics import agreement, evaluate, predict_probs
from deepmimic.io_utils import check_output_dir, make_output_dir, slugify, write_json, write_text
from deepmimic.methods.registry import METHODS, check_method_options, create_method
from deepmimic.models import count_parameters, create_model
from deepmimic.models.description import ModelDescription
from deepmimic.models.features import last_feature_layer
from deepmimic.pipelines.feed_config import FeedConfig
from deepmimic.pipelines.feed_view import feed_table
from deepmimic.pipelines.pretrained_record import pretrained_record
from deepmimic.pipelines.resume_guard import Stage, check_resume, clear_stages, data_record, record_inputs, train_record
from deepmimic.teachers.ensemble import EnsembleTeacher
from deepmimic.teachers.module import ModuleTeacher
from deepmimic.teachers.pretrained import Renormalized, load_pretrained, pretrained_kind


@dataclass(frozen=True)
class _PretrainedTeacher:
    """A pretrained teacher of ``pretrained_students``: its spec, its options, and its own row's name."""

    spec: str
    options: dict[str, Any]
    row: str  # its row in results.json (kind "pretrained"); not a trained stage

    def string_options(self) -> dict[str, str]:
        return {k: str(v) for k, v in self.options.items()}


@dataclass(frozen=True)
class _FeedStage:
    """One model of the harness: how it is trained and which earlier models teach it."""

    name: str
    kind: str  # results.json's kind: scratch | an ensemble student's method (kd, pfeed) | sfeed | <method>-pretrained
    method: str
    seed: int
    teachers: tuple[str, ...]  # names of the stages whose models teach this one
    options: dict[str, Any]
    ensemble: bool = False  # the teachers answer as one EnsembleTeacher (even an ensemble of one)
    pretrained: _PretrainedTeacher | None = None  # the teacher is this pretrained model (``teachers`` is empty)


def _pretrained_row_name(spec: str) -> str:
    """The row of a pretrained teacher: ``Pretrained resnet32 (resnet32-d509ac18.th)`` for ``ARCH:PATH``."""
    arch, _, path = spec.partition(":")
    if pretrained_kind(spec) == "checkpoint":
        return f"Pretrained {arch} ({Path(path).name})"
    return f"Pretrained {Path(spec).name}"


def _feed_stages(config: FeedConfig) -> list[_FeedStage]:
    """Every trained model in order: scratch seeds, the ensemble's students, sFEED generations,
    students of pretrained models.

    Checks, before any data is read, that the stage names give distinct folders, that every
    ensemble student's ``members`` fits the scratch models and that every method and option
    name exists (one line naming the stage); option values are checked when :func:`run_feed`
    builds each method, also before anything is written.
    """
    scratch = [_FeedStage(f"Scratch (seed {s})", "scratch", "supervised", s, (), {}) for s in config.scratch_seeds]
    names = tuple(st.name for st in scratch)
    stages = list(scratch)
    for student in config.ensemble_students:
        members = len(scratch) if student.members is None else student.members
        if members > len(scratch):
            raise ConfigError(
                f"FEED stage '{student.stage_name(members)}': members {members} is more than the "
                f"{len(scratch)} scratch model(s) of scratch_seeds"
            )
        stages.append(
            _FeedStage(
                student.stage_name(members),
                student.method,
                student.method,
                config.student_seed,
                names[:members],
                dict(student.method_options),
                ensemble=True,
            )
        )
    for sequential in config.sequential:
        previous = scratch[0].name  # generation 1: the first scratch model
        for stack in range(2, sequential.stacks + 1):
            stage = _FeedStage(
                sequential.stage_name(stack),
                "sfeed",
                sequential.method,
                config.student_seed + stack,
                (previous,),
                dict(sequential.method_options),
            )
            stages.append(stage)
            previous = stage.name
    rows: dict[str, _PretrainedTeacher] = {}  # a pretrained teacher's row name -> the teacher
    for student in config.pretrained_students:
        teacher = _PretrainedTeacher(
            student.pretrained, dict(student.pretrained_options), _pretrained_row_name(student.pretrained)
        )
        if rows.setdefault(teacher.row, teacher) != teacher:
            raise ConfigError(
                f"FEED stage '{student.name}': its pretrained teacher's row '{teacher.row}' would also be that of "
                "another pretrained teacher with other pretrained_options; use one set of options per file"
            )
        stages.append(
            _FeedStage(
                student.name,
                f"{student.method}-pretrained",
                student.method,
                config.student_seed,
                (),
                dict(student.method_options),
                pretrained=rows[teacher.row],
            )
        )
    folders = {slugify(_ensemble_name(len(scratch))): _ensemble_name(len(scratch))}  # stage folder -> row name
    folders.update({slugify(row): row for row in rows})  # rows without a folder, whose name a report looks up
    for stage in stages:
        slug = slugify(stage.name)
        if slug in folders:
            raise ConfigError(
                f"FEED stage '{stage.name}': its folder '{slug}' would also be that of '{folders[slug]}'; "
                "give every stage its own name"
            )
        folders[slug] = stage.name
        try:
            check_method_options(stage.method, stage.options)
        except ConfigError as exc:
            raise ConfigError(f"FEED stage '{stage.name}': {exc}") from None
    return stages


def _ensemble_name(k: int) -> str:
    """The name of the ensemble's row (Table 4's upper reference)."""
    return f"Ensemble of {k}"


def _stage_plan(config: FeedConfig, stages: list[_FeedStage], content: str) -> list[Stage]:
    """:class:`Stage` records for ``--resume``: data, model, settings, method and the teachers' own inputs
    (a pretrained teacher: its spec, options and the SHA-256 of its file)."""
    out = Path(config.output_dir)
    data = data_record(config.data, content)
    train = train_record(config.train)
    inputs: dict[str, dict[str, Any]] = {}
    plan = []
    for st in stages:
        inputs[st.name] = {
            "data": data,
            "model": config.model,
            "model_options": config.model_options,
            "train": {**train, "seed": st.seed},
            "method": st.method,
            "method_options": st.options,
            "teachers": {t: {**inputs[t], "epochs": config.train.epochs} for t in st.teachers},
        }
        if st.pretrained is not None:  # used as it is: what it is and the bytes it was read from
            inputs[st.name]["pretrained_teacher"] = pretrained_record(st.pretrained.spec, st.pretrained.options)
        plan.append(
            Stage(st.name, out / slugify(st.name), inputs[st.name], depends_on=st.teachers, epochs=config.train.epochs)
        )
    return plan


def run_feed(
    config: FeedConfig,
    *,
    resume: bool = False,
    restart: Sequence[str] = (),
    progress: bool | None = None,
    command: str | None = None,
    resume_advice: str | None = None,
) -> dict[str, Any]:
    """Run every stage; returns the results dict also written to results.json (with ``command``).

    As in :func:`deepmimic.pipelines.deepmimic.run_pipeline`, everything is validated (and a
    resume checked against each stage's recorded inputs) before the first file is written.
    """
    started = time.perf_counter()
    stages = _feed_stages(config)  # names and option names, before the data is read
    out = check_output_dir(config.output_dir)
    data = load_dataset(config.data.name, config.data.root, **config.data.options)
    train, test = evaluation_parts(data.train, data.test, **config.data.parts(), seed=0)
    normalizer = Normalizer.fit(train.images)
    labelled = TrainingSet(train.images, {"labels": train.labels}, name="train")
    k = test.num_classes

    def build(seed: int) -> torch.nn.Module:
        torch.manual_seed(seed)
        return create_model(config.model, test.in_shape, k, **config.model_options)

    def feature_teacher(model: torch.nn.Module) -> ModuleTeacher:
        return ModuleTeacher(model, k, feature_layers=[last_feature_layer(model, test.in_shape)])

    def load_teacher(name: str, teacher: _PretrainedTeacher) -> torch.nn.Module:
        """Stage ``name``'s pretrained teacher, fed the pipeline's normalised batches, frozen, in eval mode."""
        spec = teacher.spec
        try:
            loaded = load_pretrained(spec, teacher.string_options())
        except DeepMimicError as exc:
            raise type(exc)(f"FEED stage '{name}': {exc}") from None
        if loaded.num_classes != k:
            raise ConfigError(
                f"FEED stage '{name}': pretrained '{spec}' answers for {loaded.num_classes} classes, the data has {k}"
            )
        if loaded.in_shape is not None and tuple(loaded.in_shape) != tuple(test.in_shape):
            raise ConfigError(
                f"FEED stage '{name}': pretrained '{spec}' expects images {loaded.in_shape}, "
                f"the data has {test.in_shape}"
            )
        model = Renormalized(loaded.model, normalizer, loaded.normalizer).eval()
        for parameter in model.parameters():
            parameter.requires_grad_(False)
        return model

    teachers: dict[tuple[Any, ...], Any] = {}  # by teaching models: KD and pFEED share one ensemble (and its hooks)

    def teacher_of(stage: _FeedStage, models: dict[str, torch.nn.Module]) -> Any:
        if stage.pretrained is not None:  # feature maps only for a method that reads them (hooks cost memory)
            features = "features" in METHODS[stage.method].needs
            key = ("pretrained", stage.pretrained.row, features)
            if key not in teachers:
                model = models[stage.pretrained.row]
                layers = [_pretrained_feature_layer(model, test.in_shape)] if features else []
                teachers[key] = ModuleTeacher(model, k, feature_layers=layers)
            return teachers[key]
        if not stage.teachers:
            return None
        key = (stage.ensemble, *stage.teachers)  # one model as itself, or as an ensemble of one
        if key not in teachers:
            feature = [feature_teacher(models[t]) for t in stage.teachers]
            teachers[key] = EnsembleTeacher(feature) if stage.ensemble else feature[0]
        return teachers[key]

    untrained: dict[str, torch.nn.Module] = {}  # by stage name, and pretrained teachers by their row's name
    for stage in stages:  # every model and method once: a bad option, teacher or device fails before any write
        if stage.pretrained is not None and stage.pretrained.row not in untrained:
            untrained[stage.pretrained.row] = load_teacher(stage.name, stage.pretrained)
        untrained[stage.name] = build(stage.seed)
        try:
            method = create_method(stage.method, untrained[stage.name], teacher_of(stage, untrained), **stage.options)
        except DeepMimicError as exc:
            raise type(exc)(f"FEED stage '{stage.name}': {exc}") from None
        check_fit(method, labelled, config.train.model_copy(update={"seed": stage.seed}))
    del untrained
    teachers.clear()
    plan = _stage_plan(config, stages, fingerprint(train.images, train.labels, test.images, test.labels))
    retrain = check_resume(plan, resume=resume, restart=restart, where=str(out), advice=resume_advice)
    resume = resume or bool(restart)

    # From here on the run writes.
    make_output_dir(out)
    clear_stages(plan, retrain)
    write_text(out / "config.yaml", yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))
    device = resolve_device(config.train.device)
    print(f"[data] {config.data.name}: {len(train)} train, {len(test)} test; model {config.model}", flush=True)
    rows: list[dict[str, Any]] = []
    models: dict[str, torch.nn.Module] = {}
    for stage, planned in zip(stages, plan):
        if stage.pretrained is not None and stage.pretrained.row not in models:  # its row before its first student
            models[stage.pretrained.row] = load_teacher(stage.name, stage.pretrained)
            rows.append(_pretrained_row(stage.pretrained, models[stage.pretrained.row], test, normalizer, device))
        model = build(stage.seed)
        method = create_method(stage.method, model, teacher_of(stage, models), **stage.options)
        settings = config.train.model_copy(update={"seed": stage.seed})
        record_inputs(planned)
        t0 = time.perf_counter()
        fitted = fit(
            method,
            labelled,
            normalizer,
            settings,
            test=test,
            run_dir=planned.run_dir,
            resume=resume,
            label=stage.name,
            progress=progress,
            description=ModelDescription.for_data(
                config.model, test, config.model_options, name=stage.name, method=stage.method
            ),
        )
        ev = fitted.final_test(model, test, normalizer, device)
        rows.append(
            {
                "name": stage.name,
                "kind": stage.kind,
                "accuracy": ev.accuracy,
                "error": 1 - ev.accuracy,
                "loss": ev.loss,
                "parameters": count_parameters(model),
                "train_time_s": time.perf_counter() - t0,
                "seed": stage.seed,
            }
        )
        models[stage.name] = model
        if stage.name == stages[len(config.scratch_seeds) - 1].name:  # the last scratch model: their ensemble
            scratch = [models[s.name] for s in stages[: len(config.scratch_seeds)]]
            member_probs = torch.stack([predict_probs(m, test.images, normalizer, device) for m in scratch])  # (M,N,K)
            ensemble_probs = member_probs.mean(0)  # (N, K)
            rows.append(_ensemble_row(member_probs, scratch, test))

    results = {
        "pipeline": "feed",
        "name": config.name,
        "command": command,
        "model": config.model,
        "data": {
            "name": config.data.name,
            "train": len(train),
            "test": len(test),
            "in_shape": list(test.in_shape),
            "validation_fraction": config.data.validation_fraction,
        },
        "rows": rows,
        "wall_time_s": time.perf_counter() - started,
        "environment": describe_environment(device),
        "agreement_scratch0_vs_ensemble": agreement(
            ensemble_probs.argmax(1),
            predict_probs(models[stages[0].name], test.images, normalizer, device).argmax(1),
        ),
    }
    if config.paper is not None:
        results["paper"] = config.paper.model_dump()
    write_json(out / "results.json", results)
    write_text(out / "table.md", feed_table(results) + "\n")
    return results


def _pretrained_feature_layer(model: torch.nn.Module, in_shape: tuple[int, ...]) -> str:
    """A :class:`Renormalized` teacher's last feature map: its model's declared one (``model.layer3``), else found."""
    declared = getattr(getattr(model, "model", None), "feature_layer", None)
    return f"model.{declared}" if isinstance(declared, str) else last_feature_layer(model, in_shape)


def _pretrained_row(
    teacher: _PretrainedTeacher, model: torch.nn.Module, test: Any, normalizer: Normalizer, device: torch.device
) -> dict[str, Any]:
    """A pretrained teacher's row: its test accuracy, as it is (not trained here)."""
    ev = evaluate(model, test.images, test.labels, normalizer, device)
    return {
        "name": teacher.row,
        "kind": "pretrained",
        "accuracy": ev.accuracy,
        "error": 1 - ev.accuracy,
        "loss": ev.loss,
        "parameters": count_parameters(model),
        "seed": None,
        "pretrained": teacher.spec,
    }


def _ensemble_row(member_probs: torch.Tensor, members: list[torch.nn.Module], test: Any) -> dict[str, Any]:
    """Table 4's upper reference: the scratch ``members``' test probabilities (M, N, K), averaged.

    Also recorded, to see why an ensemble does or does not beat its students (issue 15):
    the accuracy of averaging logits instead (the argmax of the mean log-probability, which
    is softmax of the mean logits up to a per-member constant), each member's accuracy, and
    how often two members disagree on the top class (mean over pairs).
    """
    labels = test.labels
    acc = (member_probs.mean(0).argmax(1) == labels).float().mean().item()
    tops = member_probs.argmax(2)  # (M, N)
    pairs = [(i, j) for i in range(len(tops)) for j in range(i + 1, len(tops))]
    return {
        "name": _ensemble_name(len(members)),
        "kind": "ensemble",
        "accuracy": acc,
        "error": 1 - acc,
        "parameters": sum(count_parameters(m) for m in members),
        "seed": None,
        "accuracy_logit_average": (member_probs.clamp_min(1e-12).log().mean(0).argmax(1) == labels)
        .float()
        .mean()
        .item(),
        "member_accuracies": [(t == labels).float().mean().item() for t in tops],
        "member_disagreement": (
            sum((tops[i] != tops[j]).float().mean().item() for i, j in pairs) / len(pairs) if pairs else 0.0
        ),
    }
