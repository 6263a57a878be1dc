"""Run an audit: query the teacher once, train a student per (defence, budget, seed), summarise.

Queries: the query images are asked in one seeded random order (``query_seed``), and only
the largest budget is sent, through the resumable query log; every smaller budget is a
prefix of that order, and every defence is applied to the same logged answers the way a
server would have applied it before answering. So the attack queries sent equal the
largest budget, whatever the number of budgets, defences and seeds. The test images are
asked once more, to measure the teacher's accuracy and each student's agreement with it.

Seeds change the student's initial weights and batch order, not the queried images.
Every point is saved as it finishes (``points/<defence>/<budget>/seed-<s>.json``); a
resumed audit reads finished points back and sends no query already in the log.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from deepmimic.audit.options import IN_DOMAIN, AuditOptions
from deepmimic.audit.queries import read_query_images
from deepmimic.data.batches import Normalizer, TrainingSet
from deepmimic.data.registry import load_dataset
from deepmimic.data.spec import parse_data_spec
from deepmimic.engine.optim import resolve_device
from deepmimic.engine.settings import TrainSettings
from deepmimic.engine.trainer import fit
from deepmimic.environment import describe_environment
from deepmimic.errors import ConfigError, TeacherError
from deepmimic.eval.metrics import agreement
from deepmimic.io_utils import check_output_dir, make_output_dir, remove_empty_tree, slugify, write_json
from deepmimic.labelling.black_box_job import default_log_path, label_dataset_sharded, read_answers
from deepmimic.methods.registry import create_method
from deepmimic.models import count_parameters, create_model
from deepmimic.report.audit_summary import AUDIT_FILE, FIDELITY_TARGETS, curves, queries_needed
from deepmimic.teachers.cached import CachedTeacher
from deepmimic.teachers.defences import Defence, parse_defences
from deepmimic.teachers.spec import open_teacher, teacher_kind

OPTIONS_FILE = "options.json"


def _check_resume(out: Path, opts: AuditOptions) -> None:
    """A folder holding an audit continues only with ``resume`` and the same options."""
    recorded = out / OPTIONS_FILE
    if not recorded.exists():
        return
    if not opts.resume:
        raise ConfigError(f"{out} holds an audit already; pass --resume to continue it, or use a new --out")
    before = json.loads(recorded.read_text(encoding="utf-8"))
    changed = sorted(k for k in set(before) | set(opts.record()) if before.get(k) != opts.record().get(k))
    if changed:
        raise ConfigError(
            f"{out}: the audit there ran with other {', '.join(changed)}; use a new --out to audit with these"
        )


def _label(teacher: Any, images: torch.Tensor, path: Path, budget: int | None, order: torch.Tensor | None) -> Any:
    """Answers (N, K) float32 for the rows asked (NaN rows were not asked), and the query log's summary."""
    summary = label_dataset_sharded(teacher, images, path, default_log_path(path), budget=budget, order=order)
    answers = torch.full((len(images), teacher.num_classes), float("nan"))
    if summary["complete"]:
        answers = torch.from_numpy(np.load(path, allow_pickle=False)).float()
    else:
        rows, probs = read_answers(summary)
        if probs.shape[1] != teacher.num_classes:
            raise TeacherError(f"{summary['log']}: holds {probs.shape[1]} classes, expected {teacher.num_classes}")
        answers[rows] = probs
    return answers, summary


def _train_point(
    opts: AuditOptions,
    defence: Defence,
    budget: int,
    seed: int,
    images: torch.Tensor,
    targets: torch.Tensor,
    context: dict[str, Any],
) -> dict[str, Any]:
    """One student on ``budget`` defended answers; its test accuracy and agreement with the teacher."""
    test, normalizer, teacher_pred = context["test"], context["normalizer"], context["teacher_pred"]
    epochs = opts.epochs_for(budget)
    torch.manual_seed(seed)
    student = create_model(opts.student, tuple(images.shape[1:]), targets.shape[1], **opts.student_options)
    method = create_method("soft_label", student, CachedTeacher(targets, source=context["source"]))
    settings = TrainSettings(
        epochs=epochs,
        batch_size=opts.batch_size,
        optimizer=opts.optimizer,
        lr=opts.lr,
        seed=seed,
        eval_every=epochs,  # one evaluation, at the end: the audit plots budgets, not epochs
    )
    t0 = time.perf_counter()
    fitted = fit(
        method,
        TrainingSet(images, {}, name="queries"),
        normalizer,
        settings,
        test=test,
        label=f"{defence.name} {budget} seed {seed}",
        progress=opts.progress,
    )
    ev = fitted.final_test(student, test, normalizer, resolve_device(settings.device))
    return {
        "defence": defence.name,
        "budget": budget,
        "seed": seed,
        "epochs": epochs,
        "accuracy": ev.accuracy,
        "agreement": agreement(ev.predictions, teacher_pred),
        "train_time_s": time.perf_counter() - t0,
    }


def run_audit(opts: AuditOptions) -> dict[str, Any]:
    """Run (or continue) the audit ``opts``; writes ``audit.json`` (and the report) into ``opts.out``."""
    started = time.perf_counter()
    opts.check()
    defences = parse_defences(opts.defences)
    out = check_output_dir(opts.out)
    _check_resume(out, opts)
    if teacher_kind(opts.teacher) == "predictions":
        raise ConfigError("an audit queries the teacher on the test images; a predictions file cannot answer them")
    name, root = parse_data_spec(opts.data)
    data = load_dataset(name, root)
    test = data.test
    if not len(test):
        raise ConfigError(f"{opts.data} has no test split; an audit measures agreement with the teacher on it")
    shape = tuple(data.train.images.shape[1:])
    if opts.query_data == IN_DOMAIN:
        queries = data.train.images
        query_note = f"{len(queries):,} in-domain query images (the training split of {name}; its labels unused)"
    else:
        queries, query_note = read_query_images(opts.query_data, shape)
    largest = opts.budgets[-1]
    if largest > len(queries):
        raise ConfigError(f"--budgets: the largest budget {largest:,} is more than the {len(queries):,} query images")
    teacher = open_teacher(opts.teacher, dict(opts.teacher_options), images=queries, rows=None, total_rows=len(queries))
    created = not out.exists()
    try:
        create_model(opts.student, shape, teacher.num_classes, **opts.student_options)  # a bad student fails first
        make_output_dir(out)
        return _audit(opts, defences, out, teacher, data, name, queries, query_note, started)
    except BaseException:
        if created:
            remove_empty_tree(out)
        raise
    finally:
        close = getattr(teacher, "close", None)
        if callable(close):
            close()


def _audit(
    opts: AuditOptions,
    defences: list[Defence],
    out: Path,
    teacher: Any,
    data: Any,
    name: str,
    queries: torch.Tensor,
    query_note: str,
    started: float,
) -> dict[str, Any]:
    test = data.test
    largest = opts.budgets[-1]
    order = torch.randperm(len(queries), generator=torch.Generator().manual_seed(opts.query_seed))
    print(f"[audit] asking the teacher about {largest:,} of {query_note}", flush=True)
    answers, attack_log = _label(teacher, queries, out / "teacher-probs.npy", largest, order)
    write_json(out / OPTIONS_FILE, opts.record())  # the folder holds an audit from here on
    asked = order[:largest]
    if bool(torch.isnan(answers[asked]).any()):
        got = int((~torch.isnan(answers[asked]).any(dim=1)).sum())
        raise TeacherError(f"{teacher.source}: answered {got:,} of the {largest:,} queries (its own budget ran out?)")
    print(f"[audit] asking the teacher about the {len(test):,} test images (to measure agreement)", flush=True)
    test_answers, test_log = _label(teacher, test.images, out / "teacher-test-probs.npy", None, None)
    if not test_log["complete"]:
        raise TeacherError(
            f"{teacher.source}: answered {test_log['labeled']:,} of the {len(test):,} test images (its own budget "
            "ran out?); fidelity needs them all"
        )
    teacher_pred = test_answers.argmax(dim=1)
    context = {
        "test": test,
        "normalizer": Normalizer.fit(queries),
        "teacher_pred": teacher_pred,
        "source": teacher.source,
    }
    points: list[dict[str, Any]] = []
    for defence in defences:
        for budget in opts.budgets:
            rows = asked[:budget]
            targets = defence.apply(answers[rows])  # what a server with this defence would have answered
            for seed in range(opts.seeds):
                path = out / "points" / slugify(defence.name) / str(budget) / f"seed-{seed}.json"
                if path.exists():
                    points.append(json.loads(path.read_text(encoding="utf-8")))
                    continue
                point = _train_point(opts, defence, budget, seed, queries[rows], targets, context)
                write_json(path, point)
                points.append(point)
                print(
                    f"[audit] {defence.name} {budget:,} queries seed {seed}: agreement {point['agreement']:.2%} "
                    f"accuracy {point['accuracy']:.2%} ({point['train_time_s']:.1f} s)",
                    flush=True,
                )
    names = [d.name for d in defences]
    lines = curves(points, names, list(opts.budgets))
    student = create_model(opts.student, tuple(queries.shape[1:]), teacher.num_classes, **opts.student_options)
    results = {
        "kind": "audit",
        "command": opts.command,
        "options": opts.record(),
        "defences": names,
        "budgets": list(opts.budgets),
        "seeds": opts.seeds,
        "teacher": {
            "spec": opts.teacher,
            "source": teacher.source,
            "kind": teacher_kind(opts.teacher),
            "accuracy": float((teacher_pred == test.labels).float().mean()),
        },
        "student": {"model": opts.student, "parameters": count_parameters(student)},
        "data": {"name": name, "test": len(test), "in_shape": list(queries.shape[1:]), "query_images": len(queries)},
        "query_data": query_note,
        "queries": {
            "attack": int(attack_log["labeled"]),
            "test": int(test_log["labeled"]),
            "sent_this_run": int(attack_log["queried"]) + int(test_log["queried"]),
        },
        "curves": lines,
        "needed": {
            curve["defence"]: {f"{t:.2f}": queries_needed(curve, t) for t in FIDELITY_TARGETS} for curve in lines
        },
        "points": points,
        "wall_time_s": time.perf_counter() - started,
        "environment": describe_environment(resolve_device("auto")),
    }
    write_json(out / AUDIT_FILE, results)
    if opts.report:
        from deepmimic.report.build import build_report  # noqa: PLC0415 (matplotlib only when a report is drawn)

        build_report(out)
    return results
