"""Teachers: module (frozen), cached (by row), ensemble (averaged), and output validation."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from deepmimic.errors import TeacherError
from deepmimic.teachers import CachedTeacher, EnsembleTeacher, ModuleTeacher, validate_probs


def test_module_teacher_is_frozen_and_in_eval_mode() -> None:
    module = nn.Sequential(nn.Linear(3, 2), nn.Dropout(0.5)).train()
    teacher = ModuleTeacher(module, 2)
    assert not module.training and all(not p.requires_grad for p in module.parameters())
    x = torch.randn(4, 3)
    out = teacher.predict(x)
    assert torch.allclose(out.probs.sum(1), torch.ones(4)) and out.logits is not None
    assert torch.equal(teacher.predict(x).probs, out.probs)  # dropout off: deterministic


def test_cached_teacher_answers_by_row_and_needs_an_index() -> None:
    probs = torch.tensor([[0.1, 0.9], [0.6, 0.4], [0.5, 0.5]])
    teacher = CachedTeacher(probs)
    assert torch.equal(teacher.predict(torch.zeros(2, 1), torch.tensor([2, 0])).probs, probs[[2, 0]])
    assert teacher.provides == frozenset({"probs"})
    with pytest.raises(TeacherError, match="by row index"):
        teacher.predict(torch.zeros(2, 1))


def test_ensemble_averages_probabilities_and_intersects_capabilities() -> None:
    a = ModuleTeacher(nn.Linear(3, 2), 2)
    b = ModuleTeacher(nn.Linear(3, 2), 2)
    x = torch.randn(5, 3)
    ensemble = EnsembleTeacher([a, b])
    expected = (a.predict(x).probs + b.predict(x).probs) / 2
    out = ensemble.predict(x)
    assert torch.allclose(out.probs, expected) and torch.allclose(torch.softmax(out.logits, 1), expected, atol=1e-6)
    assert "input_grad" in ensemble.provides
    mixed = EnsembleTeacher([a, CachedTeacher(torch.full((5, 2), 0.5))])
    assert mixed.provides == frozenset({"probs"})
    with pytest.raises(TeacherError, match="disagree on the number of classes"):
        EnsembleTeacher([a, ModuleTeacher(nn.Linear(3, 4), 4)])


@pytest.mark.parametrize(
    "probs,needle",
    [
        (torch.tensor([[0.5, 0.5, 0.0]]), "shape"),
        (torch.tensor([[float("nan"), 1.0]]), "NaN"),
        (torch.tensor([[-0.5, 1.5]]), "negative"),
        (torch.tensor([[0.2, 0.2]]), "sum to 1"),
    ],
)
def test_garbage_probabilities_are_rejected(probs: torch.Tensor, needle: str) -> None:
    with pytest.raises(TeacherError, match=needle):
        validate_probs(probs, 2, "test teacher")
