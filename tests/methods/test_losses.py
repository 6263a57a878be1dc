"""The shared loss helpers (methods/losses.py): hand computations and the exact bits of the
per-method code they replaced (soft_label.py, kd.py, imitation.py before issue 14)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from deepmimic.methods import kd, soft_label
from deepmimic.methods.losses import kd_loss, soft_cross_entropy, soften, temper, tempered_log_softmax


def _batch(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(16, 10, generator=g) * 3
    probs = torch.softmax(torch.randn(16, 10, generator=g) * 4, dim=1)
    probs[0] = F.one_hot(torch.tensor(3), 10).float()  # exact zeros: the 1e-12 floor matters
    return logits, probs


def test_temper_is_a_tempered_softmax_and_exact_at_t1() -> None:
    probs = torch.tensor([[0.2, 0.8]])
    a, b = math.sqrt(0.2), math.sqrt(0.8)  # softmax(log p / 2) = sqrt(p), normalised
    assert temper(probs, 2.0).tolist()[0] == pytest.approx([a / (a + b), b / (a + b)], rel=1e-6)
    assert temper(probs, 1.0) is probs  # the teacher's answer itself, not a recomputation
    assert torch.allclose(soften(probs, 1.0), probs, atol=1e-7)  # soften always recomputes
    logits = torch.randn(4, 6)
    assert torch.allclose(temper(torch.softmax(logits, 1), 4.0), torch.softmax(logits / 4.0, 1), atol=1e-6)


def test_helpers_are_bit_identical_to_the_code_they_replaced() -> None:
    logits, probs = _batch()
    for t in (1.0, 2.0, 4.0):
        old_target = probs if t == 1.0 else torch.softmax(torch.log(probs.clamp_min(1e-12)) / t, dim=1)
        old_log_q = F.log_softmax(logits.float() / t, dim=1)
        assert torch.equal(temper(probs, t), old_target)
        assert torch.equal(tempered_log_softmax(logits, t), old_log_q)
        assert torch.equal(soft_cross_entropy(logits, probs, t), -(old_target * old_log_q).sum(dim=1).mean() * (t**2))
        assert torch.equal(kd_loss(logits, probs, t), F.kl_div(old_log_q, old_target, reduction="batchmean") * t**2)
        # imitation.py's discriminator view: softmax(log p / T), also at T = 1
        assert torch.equal(soften(probs, t), torch.softmax(torch.log(probs.clamp_min(1e-12)) / t, dim=1))


def test_kd_and_soft_cross_entropy_differ_by_the_teachers_entropy() -> None:
    logits, probs = _batch(1)
    t = 3.0
    target = temper(probs, t)
    entropy = -(target * torch.log(target.clamp_min(1e-30))).sum(1).mean() * t * t
    assert (soft_cross_entropy(logits, probs, t) - kd_loss(logits, probs, t)).item() == pytest.approx(
        entropy.item(), rel=1e-4
    )


def test_student_log_probs_are_float32_under_low_precision() -> None:
    logits, probs = _batch(2)
    assert tempered_log_softmax(logits.bfloat16(), 4.0).dtype == torch.float32
    assert kd_loss(logits.bfloat16(), probs, 4.0).dtype == torch.float32


def test_the_method_modules_use_the_shared_helpers() -> None:
    assert soft_label.soft_cross_entropy is soft_cross_entropy and kd.kd_loss is kd_loss
