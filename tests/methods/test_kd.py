"""Hinton KD against hand computations."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from deepmimic.data.batches import Batch
from deepmimic.methods import KnowledgeDistillation, kd_loss
from deepmimic.teachers import CachedTeacher


def test_kd_matches_hand_computation_with_t_squared() -> None:
    student_logits = torch.tensor([[0.0, 0.0]])  # softmax at any T: [0.5, 0.5]
    teacher_probs = torch.tensor([[0.2, 0.8]])
    t = 2.0
    # Tempered teacher: softmax(log p / 2) = sqrt(p) normalised.
    a, b = math.sqrt(0.2), math.sqrt(0.8)
    p = [a / (a + b), b / (a + b)]
    kl = sum(pi * math.log(pi / 0.5) for pi in p)
    assert kd_loss(student_logits, teacher_probs, t).item() == pytest.approx(kl * t * t, rel=1e-5)


def test_kd_is_zero_for_identical_distributions() -> None:
    logits = torch.randn(6, 5)
    probs = torch.softmax(logits, dim=1)
    for t in (1.0, 4.0):
        assert kd_loss(logits, probs, t).item() == pytest.approx(0.0, abs=1e-6)


def test_kd_gradient_scale_is_t_independent_to_first_order() -> None:
    # The T^2 factor keeps gradients comparable across temperatures (Hinton et al.).
    logits = torch.tensor([[0.1, -0.1]], requires_grad=True)
    probs = torch.tensor([[0.45, 0.55]])
    grads = []
    for t in (2.0, 8.0):
        (g,) = torch.autograd.grad(kd_loss(logits, probs, t), logits)
        grads.append(g.abs().sum().item())
    assert grads[0] == pytest.approx(grads[1], rel=0.1)


def test_hard_label_term_is_optional() -> None:
    student = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
    teacher = CachedTeacher(torch.tensor([[0.3, 0.7], [0.9, 0.1]]))
    x = torch.randn(2, 1, 2, 2)
    soft_only = KnowledgeDistillation(student, teacher, temperature=3.0)
    assert not soft_only.labels_required()
    assert set(soft_only.losses(Batch(x, {}, torch.arange(2)))) == {"kd"}
    with_labels = KnowledgeDistillation(student, teacher, temperature=3.0, alpha=0.5)
    assert with_labels.labels_required()
    losses = with_labels.losses(Batch(x, {"labels": torch.tensor([1, 0])}, torch.arange(2)))
    expected_ce = 0.5 * torch.nn.functional.cross_entropy(student(x), torch.tensor([1, 0]))
    assert losses["ce"].item() == pytest.approx(expected_ce.item(), rel=1e-6)
