"""The Method contract: a method turns a batch into named losses.

The engine sums the losses, steps one optimiser over ``method.optimized_parameters()``,
calls ``method.auxiliary_step(batch)`` (a no-op unless the method trains a second player,
such as the imitation game's discriminator, with its own optimiser), and never branches
on which method it runs.

A method owns the student (``self.student``) and any extra trainable modules as
submodules, so ``method.state_dict()`` is exactly what a checkpoint saves. The teacher is
*not* a submodule: it is frozen, is moved to the device with the method, and answers
through the Teacher contract. What a method needs from its teacher (``required()``) is
checked at construction, so "derivative loss with a predictions-only teacher" fails
before any training with a message naming both.

Constructors take keyword hyperparameters, store them under the same names and do no
work, so a YAML block maps 1:1 onto a call and unknown keys fail early. The constructor's
keyword defaults are the method's only defaults: every pipeline passes ``method_options``
through :func:`deepmimic.methods.registry.create_method` and re-declares none of them.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import ClassVar

import torch
from torch import nn

from deepmimic.data.batches import Batch, Normalizer, TrainingSet
from deepmimic.errors import ConfigError, TeacherError
from deepmimic.teachers.base import Teacher, TeacherOutput, describe_teacher


class Method(nn.Module):
    """Base class for training methods.

    Class attributes:
        needs: what the method reads from its teacher (``"probs"``, ``"logits"``,
            ``"input_grad"``); subclasses whose needs depend on options override
            :meth:`required`.
        uses_labels: True when the method reads ground-truth labels from the batch
            (``batch.targets["labels"]``); DeepMimic students never do.
    """

    needs: ClassVar[frozenset[str]] = frozenset()
    uses_labels: ClassVar[bool] = False

    def __init__(self, student: nn.Module, teacher: Teacher | None = None) -> None:
        super().__init__()
        self.student = student
        object.__setattr__(self, "_teacher", teacher)  # not a submodule: never optimised or saved
        missing = self.required() - (frozenset(teacher.provides) if teacher is not None else frozenset())
        if missing:
            have = describe_teacher(teacher) if teacher is not None else "no teacher"
            raise TeacherError(
                f"method {type(self).__name__} needs {', '.join(sorted(missing))} from its teacher, but it has {have}"
            )

    @property
    def teacher(self) -> Teacher:
        if self._teacher is None:
            raise TeacherError(f"method {type(self).__name__} has no teacher")
        return self._teacher

    def required(self) -> frozenset[str]:
        """Teacher capabilities this configured method needs."""
        return self.needs

    def labels_required(self) -> bool:
        """Whether batches must carry ground-truth ``labels``."""
        return self.uses_labels

    def ask_teacher(self, batch: Batch, x: torch.Tensor | None = None) -> TeacherOutput:
        """The teacher's answer for ``batch`` (or for ``x``, e.g. an input that requires grad)."""
        return self.teacher.predict(batch.x if x is None else x, batch.index)

    def losses(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Named scalar losses for ``batch``; the engine minimises their sum."""
        raise NotImplementedError

    def forward(self, batch: Batch) -> dict[str, torch.Tensor]:
        """``losses(batch)``: what a module wrapper (DistributedDataParallel) calls."""
        return self.losses(batch)

    def setup(
        self, data: TrainingSet, normalizer: Normalizer, device: torch.device, batch_size: int, pretrain: bool
    ) -> None:
        """A setup stage before the optimisers are built (e.g. factor transfer builds its
        translators from the feature shapes and pre-trains its paraphraser). ``pretrain`` is
        False when the run resumes from a checkpoint, which restores what pre-training made."""

    def optimized_parameters(self) -> Iterator[nn.Parameter]:
        """Parameters the engine's optimiser steps: by default every trainable submodule."""
        return self.parameters()

    def auxiliary_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """Optimisers the method steps itself (checkpointed by the engine); none by default."""
        return {}

    def auxiliary_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Runs after the engine's optimiser step on every batch; returns losses to log."""
        return {}

    def has_unused_parameters(self) -> bool:
        """True when some trainable parameter gets no gradient from ``losses`` (e.g. a student
        head whose logits no loss term uses); DDP must then look for them every step."""
        return False

    def supports_compile(self) -> bool:
        """Whether the student may be compiled (torch.compile has no double backward)."""
        return True

    def compile_for_speed(self, *, student: bool, teacher: bool) -> None:
        """torch.compile the student and/or a white-box teacher in place (parameter names stay)."""
        if student:
            self.student.compile()
        compile_teacher = getattr(self._teacher, "compile", None)
        if teacher and callable(compile_teacher):
            compile_teacher()

    def to_device(self, device: torch.device) -> Method:
        """Move the method (student and extra modules) and its teacher to ``device``."""
        self.to(device)
        if self._teacher is not None:
            self._teacher.to(device)
        return self


def check_option(
    method: str, name: str, value: float, *, above: float | None = None, at_least: float | None = None
) -> None:
    """Refuse a non-finite option, or one not ``> above`` / ``>= at_least``, with a one-line ConfigError."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{method}: {name} must be a finite number, got {value!r}")
    if above is not None and not value > above:
        raise ConfigError(f"{method}: {name} must be > {above:g}, got {value:g}")
    if at_least is not None and not value >= at_least:
        raise ConfigError(f"{method}: {name} must be >= {at_least:g}, got {value:g}")
