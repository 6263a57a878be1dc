"""Mimic a teacher you can only query: label, train a student, compare (``deepmimic mimic``).

DeepMimic paper, section 3: a student can copy a model "without even knowing its
architecture or the labeled data used for its training", from its predictions alone.

teacher spec (trained run folder, ONNX file, URL, predictions file) + unlabelled images ->
label them once through the teacher (resumable, budgeted query log) -> train the chosen
student on those soft labels (or top-1 only, ``label_only``; or both, ``compare_label_only``,
which shows the accuracy gap a label-only defence buys) -> on the labelled test split
(when the data has one): the teacher's and the student's accuracy and their agreement ->
results.json, report.md / report.html.

Queries: every unlabelled image once, plus every test image once (to measure agreement);
both counts are recorded. A query budget that runs out stops labelling cleanly; the student
then trains on the rows that were answered.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml
from pydantic import ValidationError

from deepmimic.config import _format_validation_error
from deepmimic.data.batches import Normalizer, TrainingSet
from deepmimic.data.registry import load_dataset
from deepmimic.data.spec import parse_data_spec
from deepmimic.engine.optim import resolve_device
from deepmimic.engine.settings import TrainSettings
from deepmimic.engine.trainer import check_fit, fit
from deepmimic.environment import describe_environment
from deepmimic.errors import ConfigError, TeacherError
from deepmimic.eval.metrics import agreement, confusion_matrix, evaluate, relative_accuracy
from deepmimic.io_utils import check_output_dir, make_output_dir, remove_empty_tree, slugify, write_json, write_text
from deepmimic.labeling_job import default_log_path, label_dataset_sharded, read_answers
from deepmimic.methods.registry import create_method
from deepmimic.models import count_macs, count_parameters, create_model
from deepmimic.teachers.cached import CachedTeacher
from deepmimic.teachers.label_only import one_hot_top1
from deepmimic.teachers.spec import open_teacher, teacher_kind


@dataclass(frozen=True)
class MimicOptions:
    """What ``deepmimic mimic`` takes."""

    teacher: str  # a trained run's stage folder, an .onnx file, an http(s):// URL, a .npy/.csv predictions file
    data: str  # NAME or NAME:ROOT (see deepmimic.data.spec); its train split is the unlabelled set
    student: str  # a model preset or architecture notation
    out: str = "runs/mimic"
    teacher_options: dict[str, str] = field(default_factory=dict)
    label_only: bool = False  # the teacher returns only its top-1 class (one-hot targets)
    budget: int | None = None  # most unlabelled images the teacher may be asked about
    subset: int | None = None  # use a random subset of the unlabelled images (no labels involved)
    evaluate_test: bool = True  # query the teacher on the test split too, to measure agreement
    compare_label_only: bool = False  # also train a student on the top-1 class of the same answers
    label_batch_size: int = 256
    student_options: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=lambda: {"epochs": 10})
    command: str | None = None


def _answered(summary: dict[str, Any], num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(rows (M,), probs (M, K)) the teacher has answered, read from the query log(s) (budget case)."""
    rows, probs = read_answers(summary)
    if probs.shape[1] != num_classes:
        raise TeacherError(f"{summary['log']}: the query log holds {probs.shape[1]} classes, expected {num_classes}")
    return rows, probs


def _label(teacher: Any, images: torch.Tensor, path: Path, budget: int | None, opts: MimicOptions, what: str) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
    """Label ``images`` through the teacher's query log; (answered rows, their probs, summary)."""
    print(f"[mimic] labelling {len(images)} {what} images with {teacher.source}", flush=True)
    # Under torchrun each rank asks about its own block of rows (its own query log).
    summary = label_dataset_sharded(teacher, images, path, default_log_path(path), batch_size=opts.label_batch_size, budget=budget)
    if summary["complete"]:
        import numpy as np  # noqa: PLC0415 (only here)

        probs = torch.from_numpy(np.load(path, allow_pickle=False)).float()
        return torch.arange(len(images)), probs, summary
    rows, probs = _answered(summary, teacher.num_classes)
    print(f"[mimic] query budget exhausted: {summary['labeled']} of {summary['rows']} {what} images labelled", flush=True)
    return rows, probs, summary


def run_mimic(opts: MimicOptions, progress: bool | None = None) -> dict[str, Any]:
    """Run the whole journey; returns the results dict also written to ``<out>/results.json``."""
    started = time.perf_counter()
    # Everything that can be checked without the teacher is checked before the first query.
    settings = _settings(opts.train)
    out = check_output_dir(opts.out)
    resolve_device(settings.device)
    name, root = parse_data_spec(opts.data)
    data = load_dataset(name, root)
    unlabeled = data.train.images
    keep = None
    if opts.subset:
        if opts.subset > len(unlabeled):
            raise ConfigError(f"--subset {opts.subset} is larger than the {len(unlabeled)} unlabelled images")
        keep = torch.randperm(len(unlabeled), generator=torch.Generator().manual_seed(settings.seed))[: opts.subset].sort().values
        unlabeled = unlabeled[keep]
    options = dict(opts.teacher_options)
    if opts.label_only:
        options["label_only"] = "true"
    teacher = open_teacher(opts.teacher, options, images=unlabeled, rows=keep, total_rows=len(data.train))
    created = not out.exists()
    try:
        _check_classes(teacher, data, opts)
        _check_student(opts, settings, tuple(unlabeled.shape[1:]), teacher.num_classes, len(unlabeled))
        make_output_dir(out)
        return _mimic(opts, teacher, data, name, unlabeled, settings, out, started, progress)
    except BaseException:
        if created:  # a teacher that failed before its first answer leaves no folder behind
            remove_empty_tree(out)
        raise
    finally:
        close = getattr(teacher, "close", None)  # HTTP teachers hold a connection pool
        if callable(close):
            close()


def _check_classes(teacher: Any, data: Any, opts: MimicOptions) -> None:
    """The teacher must answer for every class the test labels name (they measure its accuracy)."""
    if not opts.evaluate_test or not len(data.test):
        return
    top = int(data.test.labels.max())
    if top >= teacher.num_classes:
        raise TeacherError(
            f"{teacher.source}: answers for {teacher.num_classes} classes, but the test labels of {opts.data} reach class "
            f"{top} ({data.test.num_classes} classes); use a teacher for this data, or --no-test"
        )


def _check_student(opts: MimicOptions, settings: TrainSettings, in_shape: tuple[int, ...], num_classes: int, rows: int) -> None:
    """Build the student and its method once (then drop them): a bad model, option or device fails before any query."""
    torch.manual_seed(settings.seed)
    student = create_model(opts.student, in_shape, num_classes, **opts.student_options)
    placeholder = CachedTeacher(torch.full((rows, num_classes), 1.0 / num_classes), source="teacher")
    method = create_method("soft_label", student, placeholder)
    check_fit(method, TrainingSet(torch.zeros((0, *in_shape), dtype=torch.uint8), {}, name="unlabelled"), settings)


def _mimic(opts: MimicOptions, teacher: Any, data: Any, name: str, unlabeled: torch.Tensor, settings: TrainSettings,
           out: Path, started: float, progress: bool | None) -> dict[str, Any]:
    t0 = time.perf_counter()
    rows, probs, train_queries = _label(teacher, unlabeled, out / "teacher-probs.npy", opts.budget, opts, "unlabelled")
    label_time = time.perf_counter() - t0
    write_text(out / "config.yaml", yaml.safe_dump({"mimic": asdict(opts), "train": settings.model_dump(mode="json")}, sort_keys=False))
    if len(rows) == 0:
        raise TeacherError("the teacher answered no image (query budget 0?); nothing to train on")

    test = data.test if opts.evaluate_test and len(data.test) else None
    teacher_pred = None
    test_queries = None
    if test is not None:
        test_teacher = teacher if teacher_kind(opts.teacher) != "predictions" else None
        if test_teacher is None:
            print("[mimic] a predictions file answers only for the unlabelled set: no teacher accuracy or agreement", flush=True)
        else:
            _, test_probs, test_queries = _label(test_teacher, test.images, out / "teacher-test-probs.npy", None, opts, "test")
            teacher_pred = test_probs.argmax(dim=1)

    normalizer = Normalizer.fit(unlabeled)
    device = resolve_device(settings.device)
    in_shape = tuple(unlabeled.shape[1:])
    teacher_entry: dict[str, Any] = {"name": "Teacher", "model": opts.teacher, "architecture": f"black box ({teacher_kind(opts.teacher)})",
                                     "method": "queried", "source": teacher.source}
    teacher_accuracy = None
    if test is not None and teacher_pred is not None:
        teacher_accuracy = (teacher_pred == test.labels).float().mean().item()
        teacher_entry.update(accuracy=teacher_accuracy, confusion=confusion_matrix(test.labels, teacher_pred, test.num_classes).tolist())

    # The students: one on the teacher's answers; with compare_label_only, a second one on the
    # top-1 class of the same answers (what a label-only API would have returned: no extra queries).
    variants = [("Student", probs, "soft_label" + (" (top-1 labels only)" if opts.label_only else ""))]
    if opts.compare_label_only and not opts.label_only:
        variants.append(("Student (top-1 only)", one_hot_top1(probs), "soft_label (top-1 labels only)"))
    students = []
    for stage_name, targets, method_name in variants:
        torch.manual_seed(settings.seed)  # the same initial weights for every variant
        student = create_model(opts.student, in_shape, teacher.num_classes, **opts.student_options)
        # Rows the teacher answered become the training set; the cached teacher looks them up by row.
        method = create_method("soft_label", student, CachedTeacher(targets, source=teacher.source))
        t0 = time.perf_counter()
        fit(method, TrainingSet(unlabeled[rows], {}, name="unlabelled"), normalizer, settings, test=test,
            run_dir=out / "students" / slugify(stage_name), label=stage_name, progress=progress)
        entry: dict[str, Any] = {
            "name": stage_name, "model": opts.student, "architecture": getattr(student, "notation", opts.student),
            "method": method_name, "parameters": count_parameters(student), "macs": count_macs(student, in_shape),
            "epochs": settings.epochs, "train_time_s": time.perf_counter() - t0, "uses_true_labels": False,
        }
        if test is not None:
            ev = evaluate(student, test.images, test.labels, normalizer, device)
            entry.update(ev.summary(), confusion=confusion_matrix(test.labels, ev.predictions, test.num_classes).tolist())
            if teacher_pred is not None and teacher_accuracy is not None:
                entry.update(relative_accuracy=relative_accuracy(ev.accuracy, teacher_accuracy),
                             agreement=agreement(ev.predictions, teacher_pred))
        students.append(entry)

    results = {
        "name": f"mimic {Path(opts.teacher).name or opts.teacher} -> {opts.student}",
        "command": opts.command,
        "data": {"name": name, "labeled": 0, "unlabeled": len(unlabeled), "test": len(test) if test is not None else 0,
                 "class_names": list(data.test.class_names), "in_shape": list(in_shape), "normalizer": normalizer.to_dict()},
        "mentor": teacher_entry,
        "students": students,
        "label_only": opts.label_only,
        "queries": {"unlabelled": train_queries, "test": test_queries,
                    "total_sent": train_queries["queried"] + (test_queries["queried"] if test_queries else 0)},
        "soft_labels": {"key": "query log", "cached": train_queries["from_log"] > 0, "time_s": label_time},
        "wall_time_s": time.perf_counter() - started,
        "environment": describe_environment(device),
    }
    write_json(out / "results.json", results)
    return results


def _settings(raw: dict[str, Any]) -> TrainSettings:
    try:
        return TrainSettings(**raw)
    except ValidationError as exc:
        raise ConfigError(_format_validation_error(exc, "training settings")) from None
