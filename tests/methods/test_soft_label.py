"""Soft-label loss (DeepMimic section 3.2) and the supervised loss, against hand computations."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from deepmimic.data.batches import Batch
from deepmimic.errors import ConfigError, TeacherError
from deepmimic.methods import SoftLabel, Supervised, create_method, soft_cross_entropy
from deepmimic.teachers import CachedTeacher


def test_soft_cross_entropy_matches_hand_computation() -> None:
    logits = torch.tensor([[0.0, math.log(3.0)]])  # softmax = [0.25, 0.75]
    probs = torch.tensor([[0.5, 0.5]])
    expected = -(0.5 * math.log(0.25) + 0.5 * math.log(0.75))
    assert soft_cross_entropy(logits, probs).item() == pytest.approx(expected, rel=1e-6)


def test_soft_cross_entropy_with_one_hot_equals_cross_entropy() -> None:
    logits = torch.randn(5, 4)
    labels = torch.tensor([0, 3, 1, 2, 2])
    one_hot = torch.nn.functional.one_hot(labels, 4).float()
    assert soft_cross_entropy(logits, one_hot).item() == pytest.approx(
        torch.nn.functional.cross_entropy(logits, labels).item(), rel=1e-6
    )


def test_soft_cross_entropy_is_minimised_by_the_teacher_distribution() -> None:
    probs = torch.tensor([[0.2, 0.3, 0.5]])
    best = soft_cross_entropy(torch.log(probs), probs)
    entropy = -(probs * probs.log()).sum()
    assert best.item() == pytest.approx(entropy.item(), rel=1e-6)
    assert soft_cross_entropy(torch.zeros(1, 3), probs) > best


def test_temperature_scales_by_t_squared() -> None:
    logits = torch.tensor([[1.0, 2.0]])
    probs = torch.tensor([[0.3, 0.7]])
    t = 2.0
    tempered = torch.softmax(torch.log(probs) / t, dim=1)
    expected = -(tempered * torch.log_softmax(logits / t, dim=1)).sum() * t * t
    assert soft_cross_entropy(logits, probs, t).item() == pytest.approx(expected.item(), rel=1e-6)


def test_methods_return_named_losses_and_read_the_teacher_by_row() -> None:
    student = nn.Sequential(nn.Flatten(), nn.Linear(4, 3))
    x = torch.randn(2, 1, 2, 2)
    probs = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    method = SoftLabel(student, CachedTeacher(probs))
    soft = method.losses(Batch(x, {}, torch.tensor([0, 2])))
    # Rows 0 and 2 of the cache are one-hot: the soft loss equals CE against classes 0 and 1.
    expected = torch.nn.functional.cross_entropy(student(x), torch.tensor([0, 1]))
    assert set(soft) == {"soft_ce"} and soft["soft_ce"].item() == pytest.approx(expected.item(), rel=1e-6)
    sup = Supervised(student).losses(Batch(x, {"labels": torch.tensor([0, 2])}, torch.arange(2)))
    assert set(sup) == {"ce"}
    assert not method.labels_required() and Supervised(student).labels_required()


def test_soft_label_without_teacher_fails_clearly() -> None:
    with pytest.raises(TeacherError, match="SoftLabel needs probs from its teacher, but it has no teacher"):
        SoftLabel(nn.Linear(2, 2))


def test_create_method_validates_names_and_options() -> None:
    student = nn.Linear(2, 2)
    teacher = CachedTeacher(torch.full((3, 2), 0.5))
    assert isinstance(create_method("soft_label", student, teacher, temperature=2.0), SoftLabel)
    with pytest.raises(ConfigError, match="unknown method 'nope'"):
        create_method("nope", student)
    with pytest.raises(ConfigError, match="has no option"):
        create_method("soft_label", student, alpha=0.5)
