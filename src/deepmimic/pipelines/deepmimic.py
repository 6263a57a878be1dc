"""The DeepMimic pipeline (DeepMimic paper, sections 3-4).

data -> split (labelled 20% / unlabelled 80%, balanced) -> train the mentor on the
labelled part with cross-entropy -> label the unlabelled part once with the mentor's
softmax outputs (cached on disk) -> train each student on those soft labels only ->
evaluate mentor and students on the real test set -> results.json and table.md.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml

from deepmimic.config_schema import ModelStage
from deepmimic.data import load_dataset, read_image_pool
from deepmimic.data.batches import Normalizer, TrainingSet
from deepmimic.data.dataset import ImageDataset
from deepmimic.data.fingerprint import fingerprint
from deepmimic.data.rows import is_streamed
from deepmimic.data.splits import (
    MentorStudentSplit,
    UnlabeledImages,
    add_out_of_domain,
    evaluation_parts,
    remove_unbalanced,
    split_labeled_unlabeled,
)
from deepmimic.engine.optim import resolve_device
from deepmimic.engine.trainer import FitResult, check_fit, fit
from deepmimic.environment import describe_environment
from deepmimic.errors import ConfigError, TeacherError
from deepmimic.eval.examples import EXAMPLES_FILE, pick_examples, save_examples
from deepmimic.eval.metrics import agreement, confusion_matrix, relative_accuracy
from deepmimic.io_utils import check_output_dir, make_output_dir, slugify, write_json, write_text
from deepmimic.labelling.soft_label_cache import cached_soft_labels, soft_label_key
from deepmimic.labelling.white_box import label_images
from deepmimic.methods.base import Method
from deepmimic.methods.registry import create_method
from deepmimic.models import count_macs, count_parameters, create_model
from deepmimic.models.description import ModelDescription
from deepmimic.pipelines.deepmimic_config import MentorStage, PipelineConfig
from deepmimic.pipelines.deepmimic_view import DeepMimicView
from deepmimic.pipelines.pretrained_record import pretrained_record
from deepmimic.pipelines.resume_guard import Stage, check_resume, clear_stages, data_record, record_inputs, train_record
from deepmimic.teachers.cached import CachedTeacher
from deepmimic.teachers.module import ModuleTeacher
from deepmimic.teachers.pretrained import Renormalized, load_pretrained


@dataclass(frozen=True)
class PreparedData:
    """The data a DeepMimic run needs, after splitting."""

    split: MentorStudentSplit
    student_images: UnlabeledImages
    test: ImageDataset
    normalizer: Normalizer
    fingerprint: str  # SHA-256 of the training and test images and labels (after subsets)


def prepare_data(config: PipelineConfig) -> PreparedData:
    """Load the dataset, split it, and apply the unbalanced variants of section 4.3."""
    data = load_dataset(config.data.name, config.data.root, **config.data.options)
    train, test = evaluation_parts(data.train, data.test, **config.data.parts(), seed=config.split.seed)
    split = split_labeled_unlabeled(train, config.split.labeled_fraction, config.split.seed)
    student_images = split.unlabeled
    if config.split.removal_ratio_bound > 0:
        student_images = remove_unbalanced(student_images, config.split.removal_ratio_bound, config.split.seed)
    if config.split.out_of_domain is not None and config.split.out_of_domain.fraction > 0:
        pool = read_image_pool(config.split.out_of_domain.pool)
        student_images = add_out_of_domain(student_images, pool, config.split.out_of_domain.fraction, config.split.seed)
    # Normalisation statistics come from training images only (no labels involved).
    normalizer = Normalizer.fit(train.images)
    content = fingerprint(train.images, train.labels, test.images, test.labels)
    return PreparedData(
        split=split, student_images=student_images, test=test, normalizer=normalizer, fingerprint=content
    )


def _build(stage: ModelStage, data: PreparedData) -> torch.nn.Module:
    torch.manual_seed(stage.train.seed)  # initial weights depend on the stage's seed alone
    return create_model(stage.model, data.test.in_shape, data.test.num_classes, **stage.model_options)


def _load_pretrained_mentor(mentor: MentorStage, data: PreparedData) -> torch.nn.Module:
    """A pretrained mentor, fed the pipeline's normalised batches (:class:`Renormalized`), frozen, in eval mode."""
    options = {k: str(v) for k, v in mentor.pretrained_options.items()}
    loaded = load_pretrained(str(mentor.pretrained), options)
    test = data.test
    if loaded.num_classes != test.num_classes:
        raise ConfigError(
            f"mentor.pretrained '{mentor.pretrained}' answers for {loaded.num_classes} classes, "
            f"the data has {test.num_classes}"
        )
    if loaded.in_shape is not None and tuple(loaded.in_shape) != tuple(test.in_shape):
        raise ConfigError(
            f"mentor.pretrained '{mentor.pretrained}' expects images {loaded.in_shape}, the data has {test.in_shape}"
        )
    model = Renormalized(loaded.model, data.normalizer, loaded.normalizer).eval()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    return model


def _mentor_model(mentor: MentorStage, data: PreparedData) -> torch.nn.Module:
    """The mentor network: built fresh from its seed (trained next), or pretrained (used as it is)."""
    return _load_pretrained_mentor(mentor, data) if mentor.pretrained else _build(mentor, data)


def _model_info(stage: ModelStage, model: torch.nn.Module, in_shape: tuple[int, int, int]) -> dict[str, Any]:
    pretrained = getattr(stage, "pretrained", None)
    name = stage.model or pretrained
    info = {
        "name": stage.name,
        "model": name,
        "architecture": getattr(getattr(model, "model", model), "notation", None) or name,
        "method": "pretrained" if pretrained else stage.method,
        "parameters": count_parameters(model),
        "macs": count_macs(model, in_shape),
    }
    print(
        f"[model] {stage.name}: {info['architecture']}, {info['parameters']:,} parameters, "
        f"{info['macs']:,} MACs per image, method {info['method']}",
        flush=True,
    )
    return info


def _stage_record(stage: ModelStage) -> dict[str, Any]:
    """Model, method, targets and the training settings that change what a stage computes."""
    pretrained = getattr(stage, "pretrained", None)
    if pretrained:  # used as it is: what it is and the bytes it was read from
        return pretrained_record(pretrained, stage.pretrained_options)  # type: ignore[attr-defined]
    return {
        "model": stage.model,
        "model_options": stage.model_options,
        "method": stage.method,
        "method_options": stage.method_options,
        "teacher": stage.teacher,
        "train": train_record(stage.train),
    }


def stage_plan(config: PipelineConfig, data: PreparedData) -> list[Stage]:
    """The mentor and every student as :class:`Stage` records (what ``--resume`` compares)."""
    out = Path(config.output_dir)
    record = data_record(config.data, data.fingerprint)
    split = config.split.model_dump(mode="json")
    mentor_inputs = {
        "data": record,
        "split": {"labeled_fraction": split["labeled_fraction"], "seed": split["seed"]},
        **_stage_record(config.mentor),
    }
    pretrained = config.mentor.pretrained is not None
    # A pretrained mentor is not trained here: no stage folder; the students record what it was.
    mentor_stage = Stage(config.mentor.name, out / "mentor", mentor_inputs, epochs=config.mentor.train.epochs)
    stages = [] if pretrained else [mentor_stage]
    mentor_record = mentor_inputs if pretrained else {**mentor_inputs, "epochs": config.mentor.train.epochs}
    students = {**record, "student_images": fingerprint(data.student_images.images)}
    for stage in config.students:
        inputs = {
            "data": students,
            "split": split,
            **_stage_record(stage),
            # The soft labels come from the mentor: a mentor trained differently (or longer) makes them stale.
            "mentor": mentor_record,
        }
        stages.append(
            Stage(
                stage.name,
                out / "students" / slugify(stage.name),
                inputs,
                depends_on=() if pretrained else (config.mentor.name,),
                epochs=stage.train.epochs,
            )
        )
    return stages


def validate_stages(config: PipelineConfig, data: PreparedData) -> None:
    """Build every model and method once, so a bad model, option or device fails before any write.

    The objects are thrown away; training builds them again from their seeds.
    """
    mentor = _mentor_model(config.mentor, data)
    if not config.mentor.pretrained:
        mentor_method = create_method(config.mentor.method, mentor, **config.mentor.method_options)
        mentor_set = TrainingSet(data.split.labeled.images, {"labels": data.split.labeled.labels}, name="mentor")
        check_fit(mentor_method, mentor_set, config.mentor.train)
    k = data.test.num_classes
    placeholder = CachedTeacher(torch.full((len(data.student_images), k), 1.0 / k), source="soft-label cache")
    online = ModuleTeacher(mentor, k)
    for stage in config.students:
        method = _student_method(stage, _build(stage, data), placeholder, online)
        labels = method.labels_required()
        train_set = (
            _one_hot_baseline_set(stage, data.student_images)
            if labels
            else TrainingSet(data.student_images.images, {}, name="students")
        )
        check_fit(method, train_set, stage.train)


def run_pipeline(
    config: PipelineConfig,
    *,
    resume: bool = False,
    restart: Sequence[str] = (),
    progress: bool | None = None,
    command: str | None = None,
    resume_advice: str | None = None,
) -> dict[str, Any]:
    """Run the whole pipeline; returns the results dict also written to results.json.

    Everything is validated (output folder, data, every model and method, devices, and on
    ``resume`` that no finished stage was trained on other inputs) before the first file
    is written. ``restart`` names stages to retrain on resume (docs/reliability.md).
    ``command`` (the command line that started the run) is recorded for the report;
    ``resume_advice`` replaces the ``--restart-stage`` hint of a refused resume (callers
    such as ``reproduce`` that do not take that flag).
    """
    started = time.perf_counter()
    out = check_output_dir(config.output_dir)
    if config.cache_dir:
        check_output_dir(config.cache_dir, "cache_dir")
    data = prepare_data(config)
    validate_stages(config, data)
    plan = stage_plan(config, data)
    retrain = check_resume(plan, resume=resume, restart=restart, where=str(out), advice=resume_advice)
    resume = resume or bool(restart)  # --restart-stage resumes every other stage

    # From here on the run writes.
    make_output_dir(out)
    clear_stages(plan, retrain)
    write_text(out / "config.yaml", yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))
    write_json(out / "split.json", {**data.split.record(), "student_rows": len(data.student_images)})
    device = resolve_device(config.mentor.train.device)
    test = data.test
    print(
        f"[data] {config.data.name}: {len(data.split.labeled)} labelled (mentor), "
        f"{len(data.student_images)} unlabelled (students), {len(test)} test",
        flush=True,
    )

    # 1. Mentor: supervised on the labelled part (or a pretrained model, used as it is).
    mentor = _mentor_model(config.mentor, data)
    mentor_info = _model_info(config.mentor, mentor, test.in_shape)
    t0 = time.perf_counter()
    mentor_fit = FitResult()  # a pretrained mentor is evaluated as it is
    if not config.mentor.pretrained:
        mentor_method = create_method(config.mentor.method, mentor, **config.mentor.method_options)
        mentor_set = TrainingSet(data.split.labeled.images, {"labels": data.split.labeled.labels}, name="mentor")
        record_inputs(plan[0])
        mentor_fit = fit(
            mentor_method,
            mentor_set,
            data.normalizer,
            config.mentor.train,
            test=test,
            run_dir=plan[0].run_dir,
            resume=resume,
            label=config.mentor.name,
            progress=progress,
            description=ModelDescription.for_data(
                str(config.mentor.model),
                test,
                config.mentor.model_options,
                name=config.mentor.name,
                method=config.mentor.method,
            ),
        )
    mentor_time = time.perf_counter() - t0
    mentor_eval = mentor_fit.final_test(mentor, test, data.normalizer, device)

    # 2. Soft labels for the unlabelled part, computed once and cached.
    cache_dir = Path(config.cache_dir) if config.cache_dir else out / "soft-label-cache"
    unlabeled = data.student_images.images  # a tensor, or a streamed RowTable (issue 17)
    key = soft_label_key(mentor, unlabeled, data.normalizer)
    t0 = time.perf_counter()
    teacher = ModuleTeacher(mentor, test.num_classes)
    probs, was_cached = cached_soft_labels(  # large or streamed sets: labelled into a memory-mapped .npy
        cache_dir,
        key,
        lambda: label_images(teacher, unlabeled, data.normalizer, device),
        shape=(len(unlabeled), test.num_classes),
        compute_into=lambda out: label_images(teacher, unlabeled, data.normalizer, device, out=out),
        streamed=is_streamed(unlabeled),
    )
    label_time = time.perf_counter() - t0
    print(
        f"[labels] {len(probs)} soft labels {'read from cache' if was_cached else 'computed'} ({key[:12]})", flush=True
    )
    # Students see images only; their targets come from a teacher: the cached soft labels,
    # or the mentor itself (online) for methods that need more than probabilities.
    student_set = TrainingSet(data.student_images.images, {}, name="students")
    cached_teacher = CachedTeacher(probs, source="soft-label cache")

    results: dict[str, Any] = {
        "pipeline": "deepmimic",
        "name": config.name,
        "command": command,
        "data": {
            "name": config.data.name,
            "labeled": len(data.split.labeled),
            "unlabeled": len(data.student_images),
            "test": len(test),
            "train_subset": config.data.train_subset,
            "test_subset": config.data.test_subset,
            "validation_fraction": config.data.validation_fraction,
            "class_names": list(test.class_names),
            "in_shape": list(test.in_shape),
            "normalizer": data.normalizer.to_dict(),
        },
        "mentor": {
            **mentor_info,
            **mentor_eval.summary(),
            "train_time_s": mentor_time,
            "epochs": 0 if config.mentor.pretrained else config.mentor.train.epochs,
            "confusion": confusion_matrix(test.labels, mentor_eval.predictions, test.num_classes).tolist(),
        },
        "soft_labels": {"key": key, "cached": was_cached, "time_s": label_time},
        "students": [],
    }

    # 3. Students: soft labels only; labels never enter this training set, except for a
    # student whose method asks for them: the paper's one-hot baseline on the same 80%.
    picked: dict[str, tuple[torch.Tensor, dict[str, torch.Tensor]]] = {}
    for stage, planned in zip(config.students, plan[len(plan) - len(config.students) :]):
        student = _build(stage, data)
        student_info = _model_info(stage, student, test.in_shape)
        method = _student_method(stage, student, cached_teacher, teacher)
        uses_labels = method.labels_required()
        train_set = _one_hot_baseline_set(stage, data.student_images) if uses_labels else student_set
        record_inputs(planned)
        t0 = time.perf_counter()
        fitted = fit(
            method,
            train_set,
            data.normalizer,
            stage.train,
            test=test,
            run_dir=planned.run_dir,
            resume=resume,
            label=stage.name,
            progress=progress,
            description=ModelDescription.for_data(
                stage.model, test, stage.model_options, name=stage.name, method=stage.method
            ),
        )
        train_time = time.perf_counter() - t0
        ev = fitted.final_test(student, test, data.normalizer, device)
        results["students"].append(
            {
                **student_info,
                **ev.summary(),
                "relative_accuracy": relative_accuracy(ev.accuracy, mentor_eval.accuracy),
                "agreement": agreement(ev.predictions, mentor_eval.predictions),
                "uses_true_labels": uses_labels,
                "train_time_s": train_time,
                "epochs": stage.train.epochs,
                "confusion": confusion_matrix(test.labels, ev.predictions, test.num_classes).tolist(),
            }
        )
        if not uses_labels:
            picked[stage.name] = (
                ev.predictions,
                pick_examples(test.labels, mentor_eval.predictions, ev.predictions, seed=config.split.seed),
            )

    if picked:  # DeepMimic Figs. 6 and 7: images both got right / only the mentor got right
        save_examples(out / EXAMPLES_FILE, test.images, test.labels, mentor_eval.predictions, picked)
    results["wall_time_s"] = time.perf_counter() - started
    results["environment"] = describe_environment(device)
    if config.paper is not None:
        results["paper"] = config.paper.model_dump()
    write_json(out / "results.json", results)
    table = DeepMimicView().text_table(results)
    write_text(out / "table.md", table + "\n")
    return results


def _one_hot_baseline_set(stage: ModelStage, student_images: UnlabeledImages) -> TrainingSet:
    """The student images with their true labels: the paper's one-hot comparison (section 4.2).

    Only for a student whose method needs labels (e.g. ``supervised``); such a student is
    a baseline, not a DeepMimic student, and results.json marks it ``uses_true_labels``.
    """
    labels = student_images.reveal_labels_for_analysis()
    if (labels < 0).any():
        raise ConfigError(
            f"student '{stage.name}': method '{stage.method}' trains on true labels, but the student set "
            "holds out-of-domain images that have none"
        )
    return TrainingSet(student_images.images, {"labels": labels}, name=f"{stage.name} (true labels)")


def _student_method(
    stage: ModelStage, student: torch.nn.Module, cached: CachedTeacher, online: ModuleTeacher
) -> Method:
    """The stage's method with the cached teacher when it suffices (auto) or as configured."""
    if stage.teacher == "online":
        return create_method(stage.method, student, online, **stage.method_options)
    try:
        return create_method(stage.method, student, cached, **stage.method_options)
    except TeacherError:
        if stage.teacher == "cached":
            raise
        return create_method(stage.method, student, online, **stage.method_options)
