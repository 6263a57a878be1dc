"""The FEED experiments (FEED paper, section 4 and Tables 1-5) in one harness.

1. Scratch: the architecture trained with labels from scratch, once per seed (the teachers).
2. Ensemble: the scratch models' averaged probabilities (Table 4's upper reference).
3. KD from the ensemble (T = 4) into a fresh student (Table 4's baseline).
4. pFEED: a fresh student with one translator per scratch model (eqs. 4-5).
5. sFEED: generation 1 is the first scratch model; generation n is a fresh student trained
   with factor transfer from generation n-1 (Tables 1-3).

Every model has the same architecture, training settings and data; results.json and
table.md report test error per model in the shape of the paper's tables.
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
from deepmimic.data.splits import stratified_subset
from deepmimic.engine.optim import resolve_device
from deepmimic.environment import describe_environment
from deepmimic.engine.trainer import check_fit, fit
from deepmimic.eval.metrics import agreement, evaluate, predict_probs
from deepmimic.data.fingerprint import fingerprint
from deepmimic.io_utils import check_output_dir, make_output_dir, slugify, write_json, write_text
from deepmimic.methods.registry import create_method
from deepmimic.models import count_parameters, create_model
from deepmimic.models.features import last_feature_layer
from deepmimic.pipelines.feed_config import FeedConfig
from deepmimic.pipelines.resume_guard import Stage, check_resume, clear_stages, data_record, record_inputs, train_record
from deepmimic.teachers.ensemble import EnsembleTeacher
from deepmimic.teachers.module import ModuleTeacher


@dataclass(frozen=True)
class _FeedStage:
    """One model of the harness: how it is trained and which earlier models teach it."""

    name: str
    kind: str  # scratch | kd | pfeed | sfeed
    method: str
    seed: int
    teachers: tuple[str, ...]  # names of the stages whose models teach this one
    options: dict[str, Any]


def _feed_stages(config: FeedConfig) -> list[_FeedStage]:
    """Every trained model in order: scratch seeds, KD and pFEED from their ensemble, sFEED generations."""
    scratch = [_FeedStage(f"Scratch (seed {s})", "scratch", "supervised", s, (), {}) for s in config.scratch_seeds]
    names = tuple(st.name for st in scratch)
    stages = list(scratch)
    if config.kd.enabled:
        stages.append(_FeedStage("KD from ensemble", "kd", "kd", config.student_seed, names,
                                 {"temperature": config.kd.temperature, "alpha": config.kd.alpha}))
    if config.pfeed.enabled:
        stages.append(_FeedStage(f"pFEED (k={len(scratch)})", "pfeed", "pfeed", config.student_seed, names, {"beta": config.pfeed.beta}))
    previous = scratch[0].name
    for stack in range(2, config.sfeed.stacks + 1):
        options = {"beta": config.sfeed.beta, "paraphraser": config.sfeed.paraphraser, "paraphraser_epochs": config.sfeed.paraphraser_epochs}
        stage = _FeedStage(f"sFEED stack {stack}", "sfeed", "factor_transfer", config.student_seed + stack, (previous,), options)
        stages.append(stage)
        previous = stage.name
    return stages


def _stage_plan(config: FeedConfig, stages: list[_FeedStage], content: str) -> list[Stage]:
    """:class:`Stage` records for ``--resume``: data, model, settings, method and the teachers' own inputs."""
    out = Path(config.output_dir)
    data = data_record(config.data, content)
    train = train_record(config.train)
    inputs: dict[str, dict[str, Any]] = {}
    plan = []
    for st in stages:
        inputs[st.name] = {
            "data": data, "model": config.model, "model_options": config.model_options, "train": {**train, "seed": st.seed},
            "method": st.method, "method_options": st.options,
            "teachers": {t: {**inputs[t], "epochs": config.train.epochs} for t in st.teachers},
        }
        plan.append(Stage(st.name, out / slugify(st.name), inputs[st.name], depends_on=st.teachers, epochs=config.train.epochs))
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
    out = check_output_dir(config.output_dir)
    data = load_dataset(config.data.name, config.data.root, **config.data.options)
    train, test = data.train, data.test
    if config.data.train_subset:
        train = stratified_subset(train, config.data.train_subset, 0)
    if config.data.test_subset:
        test = stratified_subset(test, config.data.test_subset, 0)
    normalizer = Normalizer.fit(train.images)
    labelled = TrainingSet(train.images, {"labels": train.labels}, name="train")
    k = test.num_classes

    def build(seed: int) -> torch.nn.Module:
        torch.manual_seed(seed)
        return create_model(config.model, test.in_shape, k, **config.model_options)

    def feature_teacher(model: torch.nn.Module) -> ModuleTeacher:
        return ModuleTeacher(model, k, feature_layers=[last_feature_layer(model, test.in_shape)])

    teachers: dict[tuple[Any, ...], Any] = {}  # by teaching models: KD and pFEED share one ensemble (and its hooks)

    def teacher_of(stage: _FeedStage, models: dict[str, torch.nn.Module]) -> Any:
        if not stage.teachers:
            return None
        key = (stage.kind == "sfeed", *stage.teachers)  # one model as itself, or as an ensemble of one
        if key not in teachers:
            feature = [feature_teacher(models[t]) for t in stage.teachers]
            teachers[key] = feature[0] if stage.kind == "sfeed" else EnsembleTeacher(feature)
        return teachers[key]

    stages = _feed_stages(config)
    untrained: dict[str, torch.nn.Module] = {}
    for stage in stages:  # every model and method once: a bad option or device fails before any write
        untrained[stage.name] = build(stage.seed)
        method = create_method(stage.method, untrained[stage.name], teacher_of(stage, untrained), **stage.options)
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
        model = build(stage.seed)
        method = create_method(stage.method, model, teacher_of(stage, models), **stage.options)
        settings = config.train.model_copy(update={"seed": stage.seed})
        record_inputs(planned)
        t0 = time.perf_counter()
        fit(method, labelled, normalizer, settings, test=test, run_dir=planned.run_dir, resume=resume, label=stage.name, progress=progress)
        ev = evaluate(model, test.images, test.labels, normalizer, device)
        rows.append({"name": stage.name, "kind": stage.kind, "accuracy": ev.accuracy, "error": 1 - ev.accuracy, "loss": ev.loss,
                     "parameters": count_parameters(model), "train_time_s": time.perf_counter() - t0, "seed": stage.seed})
        models[stage.name] = model
        if stage.name == stages[len(config.scratch_seeds) - 1].name:  # the last scratch model: their ensemble
            scratch = [models[s.name] for s in stages[: len(config.scratch_seeds)]]
            ensemble_probs = torch.stack([predict_probs(m, test.images, normalizer, device) for m in scratch]).mean(0)  # (N, K)
            rows.append(_ensemble_row(ensemble_probs, scratch, test))

    results = {
        "name": config.name, "command": command, "model": config.model, "data": {"name": config.data.name, "train": len(train), "test": len(test), "in_shape": list(test.in_shape)},
        "rows": rows, "wall_time_s": time.perf_counter() - started,
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


def _ensemble_row(probs: torch.Tensor, members: list[torch.nn.Module], test: Any) -> dict[str, Any]:
    """Table 4's upper reference: the scratch ``members``' averaged test probabilities ``probs`` (N, K)."""
    acc = (probs.argmax(1) == test.labels).float().mean().item()
    return {"name": f"Ensemble of {len(members)}", "kind": "ensemble", "accuracy": acc, "error": 1 - acc,
            "parameters": sum(count_parameters(m) for m in members), "seed": None}


def feed_table(results: dict[str, Any]) -> str:
    """Model | Kind | Params | Test error | Test accuracy (the paper reports error)."""
    lines = ["| Model | Kind | Params | Test error | Test accuracy |", "| --- | --- | --- | --- | --- |"]
    for row in results["rows"]:
        lines.append(f"| {row['name']} | {row['kind']} | {row['parameters']:,} | {100 * row['error']:.2f}% | {100 * row['accuracy']:.2f}% |")
    return "\n".join(lines)
