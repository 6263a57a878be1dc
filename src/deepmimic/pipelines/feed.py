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
from pathlib import Path
from typing import Any

import torch
import yaml

from deepmimic.data import load_dataset
from deepmimic.data.batches import Normalizer, TrainingSet
from deepmimic.data.splits import stratified_subset
from deepmimic.engine.optim import resolve_device
from deepmimic.environment import describe_environment
from deepmimic.engine.trainer import fit
from deepmimic.eval.metrics import agreement, evaluate, predict_probs
from deepmimic.io_utils import slugify, write_json, write_text
from deepmimic.methods.registry import create_method
from deepmimic.models import count_parameters, create_model
from deepmimic.models.features import last_feature_layer
from deepmimic.pipelines.feed_config import FeedConfig
from deepmimic.teachers.ensemble import EnsembleTeacher
from deepmimic.teachers.module import ModuleTeacher


def run_feed(
    config: FeedConfig, *, resume: bool = False, progress: bool | None = None, command: str | None = None
) -> dict[str, Any]:
    """Run every stage; returns the results dict also written to results.json (with ``command``)."""
    started = time.perf_counter()
    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / "config.yaml", yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))
    data = load_dataset(config.data.name, config.data.root, **config.data.options)
    train, test = data.train, data.test
    if config.data.train_subset:
        train = stratified_subset(train, config.data.train_subset, 0)
    if config.data.test_subset:
        test = stratified_subset(test, config.data.test_subset, 0)
    normalizer = Normalizer.fit(train.images)
    labelled = TrainingSet(train.images, {"labels": train.labels}, name="train")
    device = resolve_device(config.train.device)
    k = test.num_classes
    print(f"[data] {config.data.name}: {len(train)} train, {len(test)} test; model {config.model}", flush=True)
    rows: list[dict[str, Any]] = []

    def build(seed: int) -> torch.nn.Module:
        torch.manual_seed(seed)
        return create_model(config.model, test.in_shape, k, **config.model_options)

    def train_and_record(name: str, kind: str, method_name: str, model: torch.nn.Module, teacher: Any, seed: int, **options: Any) -> torch.nn.Module:
        method = create_method(method_name, model, teacher, **options)
        settings = config.train.model_copy(update={"seed": seed})
        t0 = time.perf_counter()
        fit(method, labelled, normalizer, settings, test=test, run_dir=out / slugify(name), resume=resume, label=name, progress=progress)
        ev = evaluate(model, test.images, test.labels, normalizer, device)
        rows.append({"name": name, "kind": kind, "accuracy": ev.accuracy, "error": 1 - ev.accuracy, "loss": ev.loss,
                     "parameters": count_parameters(model), "train_time_s": time.perf_counter() - t0, "seed": seed})
        return model

    def feature_teacher(model: torch.nn.Module) -> ModuleTeacher:
        return ModuleTeacher(model, k, feature_layers=[last_feature_layer(model, test.in_shape)])

    scratch = [train_and_record(f"Scratch (seed {s})", "scratch", "supervised", build(s), None, s) for s in config.scratch_seeds]

    ensemble = EnsembleTeacher([feature_teacher(m) for m in scratch])
    probs = torch.stack([predict_probs(m, test.images, normalizer, device) for m in scratch]).mean(0)
    ens_acc = (probs.argmax(1) == test.labels).float().mean().item()
    rows.append({"name": f"Ensemble of {len(scratch)}", "kind": "ensemble", "accuracy": ens_acc, "error": 1 - ens_acc,
                 "parameters": sum(count_parameters(m) for m in scratch), "seed": None})

    if config.kd.enabled:
        train_and_record("KD from ensemble", "kd", "kd", build(config.student_seed), ensemble, config.student_seed,
                         temperature=config.kd.temperature, alpha=config.kd.alpha)
    if config.pfeed.enabled:
        train_and_record(f"pFEED (k={len(scratch)})", "pfeed", "pfeed", build(config.student_seed), ensemble, config.student_seed,
                         beta=config.pfeed.beta)
    previous = scratch[0]
    for stack in range(2, config.sfeed.stacks + 1):
        previous = train_and_record(
            f"sFEED stack {stack}", "sfeed", "factor_transfer", build(config.student_seed + stack), feature_teacher(previous),
            config.student_seed + stack, beta=config.sfeed.beta, paraphraser=config.sfeed.paraphraser,
            paraphraser_epochs=config.sfeed.paraphraser_epochs,
        )

    results = {
        "name": config.name, "command": command, "model": config.model, "data": {"name": config.data.name, "train": len(train), "test": len(test), "in_shape": list(test.in_shape)},
        "rows": rows, "wall_time_s": time.perf_counter() - started,
        "environment": describe_environment(device),
        "agreement_scratch0_vs_ensemble": agreement(probs.argmax(1), predict_probs(scratch[0], test.images, normalizer, device).argmax(1)),
    }
    if config.paper is not None:
        results["paper"] = config.paper.model_dump()
    write_json(out / "results.json", results)
    write_text(out / "table.md", feed_table(results) + "\n")
    return results


def feed_table(results: dict[str, Any]) -> str:
    """Model | Kind | Params | Test error | Test accuracy (the paper reports error)."""
    lines = ["| Model | Kind | Params | Test error | Test accuracy |", "| --- | --- | --- | --- | --- |"]
    for row in results["rows"]:
        lines.append(f"| {row['name']} | {row['kind']} | {row['parameters']:,} | {100 * row['error']:.2f}% | {100 * row['accuracy']:.2f}% |")
    return "\n".join(lines)
