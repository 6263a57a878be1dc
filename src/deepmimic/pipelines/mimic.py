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
then trains on the rows that were answered: the first ``budget`` rows in file order
(``budget_order: file``), or a random sample drawn with ``train.seed`` (``random``; the
rows are asked in a seeded random order, so a resumed run asks for the same ones).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import yaml

from deepmimic.data.batches import Normalizer, TrainingSet
from deepmimic.data.registry import load_dataset
from deepmimic.data.rows import take_rows
from deepmimic.data.spec import parse_data_spec
from deepmimic.engine.optim import resolve_device
from deepmimic.engine.trainer import check_fit, fit
from deepmimic.environment import describe_environment
from deepmimic.errors import ConfigError, TeacherError
from deepmimic.eval.metrics import agreement, confusion_matrix, relative_accuracy
from deepmimic.io_utils import check_output_dir, make_output_dir, remove_empty_tree, slugify, write_json, write_text
from deepmimic.labelling.black_box_job import default_log_path, label_dataset_sharded, read_answers
from deepmimic.methods.registry import create_method
from deepmimic.models import count_macs, count_parameters, create_model
from deepmimic.models.description import ModelDescription
from deepmimic.pipelines.mimic_config import MimicConfig
from deepmimic.teachers.cached import CachedTeacher
from deepmimic.teachers.label_only import one_hot_top1
from deepmimic.teachers.pretrained import pretrained_kind
from deepmimic.teachers.spec import open_teacher, teacher_kind


def _answered(summary: dict[str, Any], num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(rows (M,), probs (M, K)) the teacher has answered, read from the query log(s) (budget case)."""
    rows, probs = read_answers(summary)
    if probs.shape[1] != num_classes:
        raise TeacherError(f"{summary['log']}: the query log holds {probs.shape[1]} classes, expected {num_classes}")
    return rows, probs


def budget_order(rows: int, config: MimicConfig) -> torch.Tensor | None:
    """The order the unlabelled rows are asked in: None (file order), or for ``budget_order:
    random`` with a budget a permutation drawn from ``train.seed`` alone (the same on every run)."""
    if config.budget is None or config.budget_order == "file":
        return None
    generator = torch.Generator().manual_seed(config.train.seed)
    return torch.randperm(rows, generator=generator)


def _label(
    teacher: Any,
    images: torch.Tensor,
    path: Path,
    budget: int | None,
    config: MimicConfig,
    what: str,
    order: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
    """Label ``images`` through the teacher's query log; (answered rows, their probs, summary)."""
    print(f"[mimic] labelling {len(images)} {what} images with {teacher.source}", flush=True)
    # Under torchrun each rank asks about its own block of rows (its own query log).
    summary = label_dataset_sharded(
        teacher, images, path, default_log_path(path), batch_size=config.label_batch_size, budget=budget, order=order
    )
    if summary["complete"]:
        import numpy as np  # noqa: PLC0415 (only here)

        probs = torch.from_numpy(np.load(path, allow_pickle=False)).float()
        return torch.arange(len(images)), probs, summary
    rows, probs = _answered(summary, teacher.num_classes)
    print(
        f"[mimic] query budget exhausted: {summary['labeled']} of {summary['rows']} {what} images labelled", flush=True
    )
    return rows, probs, summary


def run_mimic(
    config: MimicConfig,
    *,
    resume: bool = False,
    restart: Sequence[str] = (),
    progress: bool | None = None,
    command: str | None = None,
    resume_advice: str | None = None,
) -> dict[str, Any]:
    """Run the whole journey; returns the results dict also written to ``<output_dir>/results.json``.

    The query log makes labelling resumable by itself (answers already logged are never asked
    again); ``resume`` also continues the students' training from their checkpoints.
    ``restart`` and ``resume_advice`` are accepted for the pipeline contract: mimic has no
    stage another stage learns from, so restarting means a new ``output_dir``.
    """
    started = time.perf_counter()
    if restart:
        raise ConfigError(resume_advice or "a mimic run has no stages to restart: use a new output_dir")
    # Everything that can be checked without the teacher is checked before the first query.
    settings = config.train
    out = check_output_dir(config.output_dir)
    resolve_device(settings.device)
    name, root = parse_data_spec(config.data)
    data = load_dataset(name, root)
    unlabeled = data.train.images
    keep = None
    if config.subset:
        if config.subset > len(unlabeled):
            raise ConfigError(f"subset {config.subset} is larger than the {len(unlabeled)} unlabelled images")
        keep = (
            torch.randperm(len(unlabeled), generator=torch.Generator().manual_seed(settings.seed))[: config.subset]
            .sort()
            .values
        )
        unlabeled = take_rows(unlabeled, keep)  # a streamed store stays index-only
    options = dict(config.teacher_options)
    if config.label_only:
        options["label_only"] = "true"
    teacher = open_teacher(config.teacher, options, images=unlabeled, rows=keep, total_rows=len(data.train))
    created = not out.exists()
    try:
        _check_classes(teacher, data, config)
        _check_student(config, tuple(unlabeled.shape[1:]), teacher.num_classes, len(unlabeled))
        make_output_dir(out)
        return _mimic(config, teacher, data, name, unlabeled, out, started, progress, resume, command)
    except BaseException:
        if created:  # a teacher that failed before its first answer leaves no folder behind
            remove_empty_tree(out)
        raise
    finally:
        close = getattr(teacher, "close", None)  # HTTP teachers hold a connection pool
        if callable(close):
            close()


def _check_classes(teacher: Any, data: Any, config: MimicConfig) -> None:
    """The teacher must answer for every class the test labels name (they measure its accuracy)."""
    if not config.evaluate_test or not len(data.test):
        return
    top = int(data.test.labels.max())
    if top >= teacher.num_classes:
        raise TeacherError(
            f"{teacher.source}: answers for {teacher.num_classes} classes, "
            f"but the test labels of {config.data} reach class "
            f"{top} ({data.test.num_classes} classes); use a teacher for this data, or --no-test"
        )


def _check_student(config: MimicConfig, in_shape: tuple[int, ...], num_classes: int, rows: int) -> None:
    """Build the student and its method once (then drop them): a bad model, method, option or
    device fails before any query."""
    torch.manual_seed(config.train.seed)
    student = create_model(config.student, in_shape, num_classes, **config.student_options)
    placeholder = CachedTeacher(torch.full((rows, num_classes), 1.0 / num_classes), source="teacher")
    method = create_method(config.method, student, placeholder, **config.method_options)
    check_fit(method, TrainingSet(torch.zeros((0, *in_shape), dtype=torch.uint8), {}, name="unlabelled"), config.train)


def _mimic(
    config: MimicConfig,
    teacher: Any,
    data: Any,
    name: str,
    unlabeled: torch.Tensor,
    out: Path,
    started: float,
    progress: bool | None,
    resume: bool,
    command: str | None,
) -> dict[str, Any]:
    settings = config.train
    t0 = time.perf_counter()
    order = budget_order(len(unlabeled), config)
    rows, probs, train_queries = _label(
        teacher, unlabeled, out / "teacher-probs.npy", config.budget, config, "unlabelled", order
    )
    label_time = time.perf_counter() - t0
    write_text(out / "config.yaml", yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))
    if len(rows) == 0:
        raise TeacherError("the teacher answered no image (query budget 0?); nothing to train on")

    test = data.test if config.evaluate_test and len(data.test) else None
    teacher_pred = None
    test_queries = None
    if test is not None:
        test_teacher = teacher if teacher_kind(config.teacher) != "predictions" else None
        if test_teacher is None:
            print(
                "[mimic] a predictions file answers only for the unlabelled set: no teacher accuracy or agreement",
                flush=True,
            )
        else:
            _, test_probs, test_queries = _label(
                test_teacher, test.images, out / "teacher-test-probs.npy", None, config, "test"
            )
            teacher_pred = test_probs.argmax(dim=1)

    normalizer = Normalizer.fit(unlabeled)
    device = resolve_device(settings.device)
    in_shape = tuple(unlabeled.shape[1:])
    teacher_entry: dict[str, Any] = {
        "name": "Teacher",
        "model": config.teacher,
        "architecture": _teacher_architecture(config.teacher),
        "method": "queried",
        "source": teacher.source,
    }
    teacher_accuracy = None
    if test is not None and teacher_pred is not None:
        teacher_accuracy = (teacher_pred == test.labels).float().mean().item()
        teacher_entry.update(
            accuracy=teacher_accuracy, confusion=confusion_matrix(test.labels, teacher_pred, test.num_classes).tolist()
        )

    # The students: one on the teacher's answers; with compare_label_only, a second one on the
    # top-1 class of the same answers (what a label-only API would have returned: no extra queries).
    variants = [("Student", probs, config.method + (" (top-1 labels only)" if config.label_only else ""))]
    if config.compare_label_only and not config.label_only:
        variants.append(("Student (top-1 only)", one_hot_top1(probs), f"{config.method} (top-1 labels only)"))
    students = []
    for stage_name, targets, method_name in variants:
        torch.manual_seed(settings.seed)  # the same initial weights for every variant
        student = create_model(config.student, in_shape, teacher.num_classes, **config.student_options)
        # Rows the teacher answered become the training set; the cached teacher looks them up by row.
        method = create_method(
            config.method, student, CachedTeacher(targets, source=teacher.source), **config.method_options
        )
        t0 = time.perf_counter()
        description = ModelDescription.for_data(
            config.student,
            data.train,
            config.student_options,
            name=stage_name,
            method=config.method,
            num_classes=teacher.num_classes,
        )
        fitted = fit(
            method,
            TrainingSet(unlabeled[rows], {}, name="unlabelled"),
            normalizer,
            settings,
            test=test,
            run_dir=out / "students" / slugify(stage_name),
            resume=resume,
            label=stage_name,
            progress=progress,
            description=description,
        )
        entry: dict[str, Any] = {
            "name": stage_name,
            "model": config.student,
            "architecture": getattr(student, "notation", config.student),
            "method": method_name,
            "parameters": count_parameters(student),
            "macs": count_macs(student, in_shape),
            "epochs": settings.epochs,
            "train_time_s": time.perf_counter() - t0,
            "uses_true_labels": False,
        }
        if test is not None:
            ev = fitted.final_test(student, test, normalizer, device)
            entry.update(
                ev.summary(), confusion=confusion_matrix(test.labels, ev.predictions, test.num_classes).tolist()
            )
            if teacher_pred is not None and teacher_accuracy is not None:
                entry.update(
                    relative_accuracy=relative_accuracy(ev.accuracy, teacher_accuracy),
                    agreement=agreement(ev.predictions, teacher_pred),
                )
        students.append(entry)

    results = {
        "pipeline": "mimic",
        "name": config.name or f"mimic {Path(config.teacher).name or config.teacher} -> {config.student}",
        "command": command,
        "data": {
            "name": name,
            "labeled": 0,
            "unlabeled": len(unlabeled),
            "test": len(test) if test is not None else 0,
            "class_names": list(data.test.class_names),
            "in_shape": list(in_shape),
            "normalizer": normalizer.to_dict(),
        },
        "mentor": teacher_entry,
        "students": students,
        "label_only": config.label_only,
        "queries": {
            "unlabelled": train_queries,
            "test": test_queries,
            "total_sent": train_queries["queried"] + (test_queries["queried"] if test_queries else 0),
        },
        "soft_labels": {"key": "query log", "cached": train_queries["from_log"] > 0, "time_s": label_time},
        "wall_time_s": time.perf_counter() - started,
        "environment": describe_environment(device),
    }
    write_json(out / "results.json", results)
    return results


_PRETRAINED_FORMS = {"torchscript": "TorchScript", "export": "torch.export", "entry_point": "entry point"}


def _teacher_architecture(spec: str) -> str:
    """The report's architecture cell for the teacher: what it is, as far as the spec says.

    ``resnet20 (pretrained checkpoint, queried)`` for ``ARCH:CHECKPOINT``; the kind of file for
    the other pretrained forms and for a run folder; ``black box (onnx|http|predictions)`` for
    the rest. mimic asks every teacher the same way (once per image), white-box or not.
    """
    kind = teacher_kind(spec)
    if kind == "pretrained":
        form = pretrained_kind(spec) or "model"
        arch = spec.partition(":")[0] if form == "checkpoint" else ""
        label = _PRETRAINED_FORMS.get(form, form)
        return f"{arch + ' ' if arch else ''}(pretrained {label}, queried)"
    if kind == "model":
        return "deepmimic run folder (queried)"
    return f"black box ({kind})"
