"""Input-Jacobian matching for the imitation game's derivative loss (Sobolev training).

For outputs z(x) in R^K and inputs x in R^D, the loss is the mean squared difference of
the Jacobians, averaged over the batch:

    L_D = (1/B) sum_i || J_s(x_i) - J_t(x_i) ||_F^2 / (K * D)

Exact mode builds J row by row (K vector-Jacobian products). Projected mode uses random
Rademacher vectors v in R^K (E[v v^T] = I), so E_v || v^T (J_s - J_t) ||^2 equals
|| J_s - J_t ||_F^2: the estimate is unbiased and costs one double-backward product per
projection, whatever K is (Czarnecki et al., "Sobolev Training", 2017).
"""

from __future__ import annotations

import torch


def _vjp_difference(
    student_out: torch.Tensor, teacher_out: torch.Tensor, x: torch.Tensor, v: torch.Tensor
) -> torch.Tensor:
    """sum_i || v_i^T J_s(x_i) - v_i^T J_t(x_i) ||^2 for v (B, K); differentiable for the student only."""
    (g_student,) = torch.autograd.grad((student_out * v).sum(), x, create_graph=True)  # (B, C, H, W)
    (g_teacher,) = torch.autograd.grad((teacher_out * v).sum(), x, retain_graph=True)  # detached: teacher is frozen
    return ((g_student - g_teacher) ** 2).sum()


def jacobian_mse(
    student_out: torch.Tensor,
    teacher_out: torch.Tensor,
    x: torch.Tensor,
    *,
    projections: int = 1,
    exact: bool = False,
) -> torch.Tensor:
    """(1/B) sum_i ||J_s - J_t||_F^2 / (K * D); exact, or unbiased with ``projections`` random vectors.

    student_out, teacher_out: (B, K), both computed from ``x`` (B, ...), which must require grad.
    The random vectors come from torch's global RNG (seeded per epoch by the engine).
    """
    b, k = student_out.shape
    d = x[0].numel()
    total = student_out.new_zeros(())
    if exact:
        for cls in range(k):
            v = torch.zeros_like(student_out)
            v[:, cls] = 1.0
            total = total + _vjp_difference(student_out, teacher_out, x, v)
    else:
        for _ in range(projections):
            v = torch.randint(0, 2, student_out.shape, device=student_out.device).to(student_out.dtype) * 2 - 1
            total = total + _vjp_difference(student_out, teacher_out, x, v)
        total = total / projections
    return total / (b * k * d)
