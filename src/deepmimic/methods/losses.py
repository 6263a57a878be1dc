"""Loss helpers shared by the methods: tempered distributions and their cross-entropy / KL.

Every helper takes the teacher's *probabilities* (not logits), so a cached or black-box
teacher that only answers softmax outputs serves. The temperature follows Hinton, Vinyals
and Dean (2015), "Distilling the Knowledge in a Neural Network", section 2:

    q_i = exp(z_i / T) / sum_j exp(z_j / T)

From probabilities p = softmax(z), softmax(log p / T) = softmax(z / T) (log p and z differ
by a per-row constant), which is how a probabilities-only teacher is re-tempered. Both
soft losses are scaled by T^2 so gradient magnitudes stay comparable across temperatures
(Hinton et al., end of section 2). Student log-probabilities are computed in float32, also
under autocast.

Used by :mod:`~deepmimic.methods.soft_label` (DeepMimic, section 3.2),
:mod:`~deepmimic.methods.kd` (Hinton KD; the FEED paper's KD baseline, T = 4) and
:mod:`~deepmimic.methods.imitation` (what the discriminator sees).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

PROB_FLOOR = 1e-12  # probabilities are clamped here before the log: an exact 0 would give -inf


def soften(probs: torch.Tensor, temperature: float) -> torch.Tensor:
    """softmax(log p / T) for (B, K) probabilities ``probs``: Hinton et al. (2015), section 2,
    from probabilities. Always computed, also at T = 1 (see :func:`temper`)."""
    return torch.softmax(torch.log(probs.clamp_min(PROB_FLOOR)) / temperature, dim=1)


def temper(probs: torch.Tensor, temperature: float) -> torch.Tensor:
    """The distribution a softmax at temperature T would have given: :func:`soften`, except
    that at T = 1 ``probs`` is returned unchanged (exactly the teacher's answer)."""
    if temperature == 1.0:
        return probs
    return soften(probs, temperature)


def tempered_log_softmax(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """log softmax(z / T) of (B, K) student logits, in float32 (also under autocast)."""
    return F.log_softmax(logits.float() / temperature, dim=1)


def soft_cross_entropy(
    student_logits: torch.Tensor, teacher_probs: torch.Tensor, temperature: float = 1.0
) -> torch.Tensor:
    """DeepMimic's soft-label loss (DeepMimic paper, section 3.2), tempered as in Hinton et al.:

        L = -(1/B) sum_i sum_k p_t^T[i, k] * log softmax(z_s[i] / T)[k]  * T^2

    with p_t^T = :func:`temper` (p_t, T). At T = 1 this is the plain cross-entropy between the
    mentor's softmax outputs and the student's. student_logits: (B, K) raw scores;
    teacher_probs: (B, K) rows summing to 1.
    """
    log_q = tempered_log_softmax(student_logits, temperature)
    return -(temper(teacher_probs, temperature) * log_q).sum(dim=1).mean() * (temperature**2)


def kd_loss(student_logits: torch.Tensor, teacher_probs: torch.Tensor, temperature: float) -> torch.Tensor:
    """Hinton KD's soft term (Hinton et al., 2015, section 2): T^2 * mean_i KL(p_t^T[i] || softmax(z_s[i] / T)).

    Zero when the distributions match; it differs from :func:`soft_cross_entropy` by the
    teacher's entropy (times T^2), which has no gradient for the student.
    """
    target = temper(teacher_probs, temperature)
    log_q = tempered_log_softmax(student_logits, temperature)
    return F.kl_div(log_q, target, reduction="batchmean") * temperature**2
