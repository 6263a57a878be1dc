"""The imitation game: derivative-loss estimator, gradient flow, discriminator alternation."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from deepmimic.data.batches import Batch
from deepmimic.errors import ConfigError, TeacherError
from deepmimic.methods import Imitation
from deepmimic.methods.jacobian import jacobian_mse
from deepmimic.teachers import CachedTeacher, ModuleTeacher


def small_net(seed: int, bn: bool = False) -> nn.Module:
    torch.manual_seed(seed)
    layers: list[nn.Module] = [nn.Conv2d(1, 3, 3, padding=1), nn.Tanh()]
    if bn:
        layers.append(nn.BatchNorm2d(3))
    layers += [nn.Flatten(), nn.Linear(3 * 4 * 4, 5)]
    return nn.Sequential(*layers)


def exact_jacobian_mse(student: nn.Module, teacher: nn.Module, x: torch.Tensor) -> float:
    """Reference: full Jacobians with torch.autograd.functional, per sample."""
    total = 0.0
    for i in range(x.shape[0]):
        xi = x[i : i + 1]
        js = torch.autograd.functional.jacobian(lambda v: student(v), xi).reshape(5, -1)
        jt = torch.autograd.functional.jacobian(lambda v: teacher(v), xi).reshape(5, -1)
        total += ((js - jt) ** 2).sum().item()
    return total / (x.shape[0] * 5 * x[0].numel())


def test_exact_mode_equals_full_jacobian() -> None:
    student, teacher = small_net(0).eval(), small_net(1).eval()
    x = torch.randn(3, 1, 4, 4, requires_grad=True)
    got = jacobian_mse(student(x), teacher(x), x, exact=True).item()
    assert got == pytest.approx(exact_jacobian_mse(student, teacher, x.detach()), rel=1e-5)


def test_projected_estimate_is_unbiased() -> None:
    """Mean of 400 one-projection estimates lies within 5 standard errors of the exact value."""
    student, teacher = small_net(0).eval(), small_net(1).eval()
    x = torch.randn(4, 1, 4, 4, requires_grad=True)
    exact = jacobian_mse(student(x), teacher(x), x, exact=True).item()
    torch.manual_seed(123)
    samples = torch.tensor([jacobian_mse(student(x), teacher(x), x, projections=1).item() for _ in range(400)])
    stderr = samples.std().item() / 20
    assert abs(samples.mean().item() - exact) < 5 * stderr
    assert samples.std().item() > 0  # it really is random


def test_gradients_reach_student_and_never_teacher_with_batchnorm_in_training_mode() -> None:
    student = small_net(0, bn=True).train()
    teacher_module = small_net(1, bn=True)
    teacher = ModuleTeacher(teacher_module, 5)
    before = {k: v.clone() for k, v in teacher_module.state_dict().items()}
    method = Imitation(student, teacher, rec_weight=1.0, der_weight=1.0, adv_weight=0.5, projections=2)
    method.train()
    batch = Batch(torch.randn(6, 1, 4, 4), {}, torch.arange(6))
    losses = method.losses(batch)
    assert set(losses) == {"rec", "der", "adv"}
    sum(losses.values()).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in student.parameters())
    assert all(p.grad is None for p in teacher_module.parameters())
    assert not teacher_module.training  # the teacher stays in eval mode (BN statistics untouched)
    for k, v in teacher_module.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_discriminator_and_student_optimizers_touch_only_their_own_parameters() -> None:
    student = small_net(0)
    method = Imitation(student, ModuleTeacher(small_net(1), 5), rec_weight=0.0, adv_weight=1.0)
    disc_ids = {id(p) for p in method.discriminator.parameters()}
    student_ids = {id(p) for p in student.parameters()}
    main_ids = {id(p) for p in method.optimized_parameters()}
    assert main_ids == student_ids and not main_ids & disc_ids
    aux = method.auxiliary_optimizers()["discriminator"]
    assert {id(p) for g in aux.param_groups for p in g["params"]} == disc_ids

    # One alternation, as the engine runs it: student step, then discriminator step.
    student_opt = torch.optim.SGD(method.optimized_parameters(), lr=0.1)
    batch = Batch(torch.randn(8, 1, 4, 4), {}, torch.arange(8))
    disc_before = [p.clone() for p in method.discriminator.parameters()]
    student_before = [p.clone() for p in student.parameters()]
    loss = sum(method.losses(batch).values())
    student_opt.zero_grad()
    loss.backward()
    student_opt.step()
    assert all(torch.equal(a, b) for a, b in zip(disc_before, method.discriminator.parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(student_before, student.parameters()))
    student_after = [p.clone() for p in student.parameters()]
    logged = method.auxiliary_step(batch)
    assert set(logged) == {"disc", "disc_real_acc", "disc_fake_acc", "adv_agreement"}
    assert torch.isfinite(logged["disc"]) and all(0 <= float(logged[k]) <= 1 for k in set(logged) - {"disc"})
    assert any(not torch.equal(a, b) for a, b in zip(disc_before, method.discriminator.parameters()))
    assert all(torch.equal(a, b) for a, b in zip(student_after, student.parameters()))
    assert method.auxiliary_step(batch) == {}  # nothing pending: one D step per student step


def test_teacher_capabilities_are_checked_with_a_clear_message() -> None:
    predictions_only = CachedTeacher(torch.full((4, 5), 0.2))
    with pytest.raises(
        TeacherError,
        match=r"Imitation needs input_grad, logits from its teacher, but it has CachedTeacher \(provides probs\)",
    ):
        Imitation(small_net(0), predictions_only, der_weight=1.0)
    # Adversarial on softened probabilities and reconstruction of probabilities need only probs.
    Imitation(small_net(0), predictions_only, rec_weight=1.0, output="probs", adv_weight=1.0)


def test_imitation_validates_options() -> None:
    teacher = ModuleTeacher(small_net(1), 5)
    with pytest.raises(ConfigError, match="output must be one of"):
        Imitation(small_net(0), teacher, output="features")
    with pytest.raises(ConfigError, match="at least one"):
        Imitation(small_net(0), teacher, rec_weight=0.0)
    assert Imitation(small_net(0), teacher, adv_weight=1.0, adv_condition="label").labels_required()


def test_student_view_comes_from_logits_and_equals_softened_probabilities() -> None:
    """softmax(z / T) from logits equals soften(softmax(z), T) where nothing is clamped, and
    keeps a gradient where a probability is below the floor (there soften's clamp zeroes it)."""
    from deepmimic.methods.losses import soften

    method = Imitation(small_net(0), ModuleTeacher(small_net(1), 5), rec_weight=0.0, adv_weight=1.0)
    z = torch.randn(4, 5)
    assert torch.allclose(method._student_disc_view(z), soften(torch.softmax(z, dim=1), 4.0), atol=1e-6)
    far = torch.tensor([[0.0, -40.0, 0.0, 0.0, 0.0]], requires_grad=True)  # p_1 ~ 4e-18 < 1e-12
    method._student_disc_view(far)[0, 1].backward()
    assert far.grad[0, 1] > 0


def test_class_head_adds_a_student_term_and_trains_on_teacher_outputs_only() -> None:
    student = small_net(0)
    method = Imitation(student, ModuleTeacher(small_net(1), 5), rec_weight=0.0, adv_weight=1.0, adv_class_weight=0.5)
    head = method.discriminator.class_head
    assert head is not None and head.out_features == 5
    batch = Batch(torch.randn(8, 1, 4, 4), {}, torch.arange(8))
    losses = method.losses(batch)
    assert set(losses) == {"adv", "adv_class"}
    sum(losses.values()).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in student.parameters())
    before = head.weight.clone()
    _, real, condition = method._pending
    reference = copy.deepcopy(method.discriminator)  # D before its step
    F.cross_entropy(reference.score_and_class(real, condition)[1], condition).backward()
    # D's step: its class head moves, and its gradient is that of CE(head(t(x)), y) alone:
    # the student's views never train the head.
    method.auxiliary_step(batch)
    assert not torch.equal(before, head.weight)
    assert torch.allclose(head.weight.grad, reference.class_head.weight.grad, atol=1e-6)
    # Without the option, D has no head and the student no class term.
    plain = Imitation(small_net(0), ModuleTeacher(small_net(1), 5), rec_weight=0.0, adv_weight=1.0)
    assert plain.discriminator.class_head is None and set(plain.losses(batch)) == {"adv"}
    with pytest.raises(ConfigError, match="adv_class_weight needs the discriminator"):
        Imitation(small_net(0), ModuleTeacher(small_net(1), 5), rec_weight=1.0, adv_class_weight=1.0)


def test_standardized_view_ignores_offset_and_scale_and_asks_for_logits() -> None:
    """adv_input='standardized': D sees (z - mean) / std of each row, so a shifted or rescaled
    logit vector looks the same to it, and the teacher must answer with logits."""
    from deepmimic.methods.imitation import standardize

    method = Imitation(
        small_net(0), ModuleTeacher(small_net(1), 5), rec_weight=0.0, adv_weight=1.0, adv_input="standardized"
    )
    assert "logits" in method.required()
    z = torch.randn(4, 5)
    view = method._student_disc_view(z)
    assert torch.allclose(view, method._student_disc_view(3.0 * z + 7.0), atol=1e-5)
    assert torch.allclose(view.mean(dim=1), torch.zeros(4), atol=1e-6)
    assert torch.allclose(view.pow(2).mean(dim=1), torch.ones(4), atol=1e-4)
    assert torch.equal(method._disc_view(z, torch.softmax(z, dim=1)), standardize(z))


def test_instance_noise_reaches_both_views_and_is_off_by_default() -> None:
    teacher = ModuleTeacher(small_net(1), 5)
    noisy = Imitation(small_net(0), teacher, rec_weight=0.0, adv_weight=1.0, adv_input="logits", adv_noise=0.5)
    view = torch.randn(64, 5)
    torch.manual_seed(0)
    first = noisy._noisy(view)
    assert (first - view).std().item() == pytest.approx(0.5, rel=0.2)
    assert not torch.equal(first, noisy._noisy(view))  # fresh noise on every call
    plain = Imitation(small_net(0), teacher, rec_weight=0.0, adv_weight=1.0, adv_input="logits")
    assert torch.equal(plain._noisy(view), view)
    with pytest.raises(ConfigError, match="adv_noise"):
        Imitation(small_net(0), teacher, rec_weight=0.0, adv_weight=1.0, adv_noise=-1.0)
    # The student's adversarial term and D's step both run with noise and stay finite.
    batch = Batch(torch.randn(8, 1, 4, 4), {}, torch.arange(8))
    losses = noisy.losses(batch)
    sum(losses.values()).backward()
    assert torch.isfinite(noisy.auxiliary_step(batch)["disc"])


def test_der_samples_takes_the_derivative_on_the_first_rows_only() -> None:
    """der_samples = m: L_D is the derivative loss of the first m rows (the same value a
    whole-batch method gives on those rows alone), while Rec still uses every row."""
    teacher = ModuleTeacher(small_net(1), 5)
    x = torch.randn(8, 1, 4, 4)
    batch = Batch(x, {}, torch.arange(8))
    part = Batch(x[:3], {}, torch.arange(3))
    subset = Imitation(small_net(0), teacher, rec_weight=1.0, der_weight=10.0, der_samples=3)
    whole = Imitation(small_net(0), teacher, rec_weight=1.0, der_weight=10.0)
    torch.manual_seed(5)
    sub_losses = subset.losses(batch)
    torch.manual_seed(5)
    assert sub_losses["der"].item() == pytest.approx(whole.losses(part)["der"].item(), rel=1e-5)
    assert sub_losses["rec"].item() == pytest.approx(whole.losses(batch)["rec"].item(), rel=1e-5)
    sum(sub_losses.values()).backward()
    assert all(p.grad is not None for p in subset.student.parameters())
    # m >= B: the whole batch, as without the option
    big = Imitation(small_net(0), teacher, rec_weight=1.0, der_weight=10.0, der_samples=64)
    torch.manual_seed(5)
    big_der = big.losses(batch)["der"].item()
    torch.manual_seed(5)
    assert big_der == pytest.approx(whole.losses(batch)["der"].item(), rel=1e-5)
    with pytest.raises(ConfigError, match="der_samples"):
        Imitation(small_net(0), teacher, der_weight=1.0, der_samples=1)


def test_der_samples_leaves_batch_norm_running_statistics_to_the_full_batch() -> None:
    """The sub-batch's extra forward must not count as another batch for batch norm."""
    teacher = ModuleTeacher(small_net(1), 5)
    method = Imitation(small_net(0, bn=True), teacher, rec_weight=1.0, der_weight=10.0, der_samples=3)
    reference = copy.deepcopy(method.student)
    x = torch.randn(8, 1, 4, 4)
    method.losses(Batch(x, {}, torch.arange(8)))
    reference(x)  # one forward of the full batch in training mode
    bn, ref_bn = method.student[2], reference[2]
    assert torch.allclose(bn.running_mean, ref_bn.running_mean) and torch.allclose(bn.running_var, ref_bn.running_var)
    assert int(bn.num_batches_tracked) == int(ref_bn.num_batches_tracked) == 1
    assert bn.momentum == ref_bn.momentum == 0.1
