"""The imitation game (../shared/papers/imitation-game.md): learn from a teacher with no labels.

    L_student = lambda_R * L_R + lambda_D * L_D + lambda_A * L_A

* Reconstruction L_R: mean squared error between student and teacher outputs
  (logits by default; probabilities as an option).
* Derivative L_D: mean squared error between the input-Jacobians of those outputs
  (see :mod:`deepmimic.methods.jacobian`; projected or exact). ``der_samples`` = m computes
  it on the first m samples of each (shuffled) batch only: an unbiased estimate of the same
  mean over inputs, with more variance, at about m / B of the double-backward cost (which is
  ~5x a plain step on a CPU: measured 62 against about 310 images/s). The sub-batch gets its own
  student forward; batch-norm running statistics are left as the full batch set them.
* Adversarial L_A = -log D(f(x) | y) for the student, while the discriminator minimises
  L_disc = -log D(t(x) | y) - log(1 - D(f(x) | y)) with its own optimiser, stepped after
  the student on every batch (Algorithm 1 of the paper). y is the teacher's predicted class,
  so the student never sees a label; ``adv_condition="label"`` uses the ground truth instead,
  for comparison.

What D sees: temperature-softened probabilities softmax(z / T) by default (T = 4). Raw
softmax outputs are near one-hot for a confident teacher, so D could tell teacher from
student by entropy alone; logits are the other option (``adv_input="logits"``). The
student's view is computed from its logits, so no probability floor cuts its gradient.
``adv_input="standardized"`` gives D each logit vector shifted and scaled to zero mean and unit
spread, (z - mean(z)) / std(z): D can then tell teacher from student only by the pattern of an
output (which class leads, by how much relative to the rest), not by its scale, which a student
can match without learning any class.

``adv_noise`` > 0 adds Gaussian instance noise of that standard deviation to both views before
D scores them (Sønderby et al., 2017; Arjovsky and Bottou, 2017), in D's step and in the
student's adversarial term alike, so D cannot separate the two perfectly and keeps a gradient.

``adv_class_weight`` > 0 gives D a class head, after the paper's Algorithm 1, where the
adversary returns ``isStud, y_pred``: D's head learns y from the teacher's outputs,
CE(head(t(x)), y), and the student adds adv_class_weight * CE(head(f(x)), y), so it must
look like the teacher's class y to D's classifier as well as like a teacher output at all.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from deepmimic import distributed
from deepmimic.data.batches import Batch
from deepmimic.errors import ConfigError
from deepmimic.methods.base import Method, check_option
from deepmimic.methods.discriminator import ConditionalDiscriminator
from deepmimic.methods.jacobian import jacobian_mse
from deepmimic.methods.losses import soften
from deepmimic.teachers.base import Teacher, TeacherOutput


@contextmanager
def frozen_batch_norm_statistics(module: nn.Module) -> Iterator[None]:
    """Within the block, batch-norm layers in training mode still normalise with the batch's
    statistics but leave their running mean, variance and batch count as they were (an extra
    forward on part of a batch must not count as another batch)."""
    layers = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [(m.momentum, None if m.num_batches_tracked is None else m.num_batches_tracked.clone()) for m in layers]
    for m in layers:
        m.momentum = 0.0  # running = (1 - 0) * running + 0 * batch
    try:
        yield
    finally:
        for m, (momentum, tracked) in zip(layers, saved, strict=True):
            m.momentum = momentum
            if tracked is not None and m.num_batches_tracked is not None:
                m.num_batches_tracked.copy_(tracked)


def standardize(logits: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """(B, K) logits -> (z - mean(z)) / std(z) per row, in float32: the output's pattern
    without its offset or scale (both of which a softmax ignores or a student can copy freely)."""
    z = logits.float()
    centred = z - z.mean(dim=1, keepdim=True)
    return centred / (centred.pow(2).mean(dim=1, keepdim=True) + eps).sqrt()


class Imitation(Method):
    """Reconstruction, derivative and adversarial losses, each switchable and weighted."""

    def __init__(
        self,
        student: nn.Module,
        teacher: Teacher | None = None,
        *,
        rec_weight: float = 1.0,
        der_weight: float = 0.0,
        adv_weight: float = 0.0,
        output: Literal["logits", "probs"] = "logits",
        projections: int = 1,
        exact_jacobian: bool = False,
        adv_input: Literal["logits", "probs", "standardized"] = "probs",
        adv_temperature: float = 4.0,
        adv_condition: Literal["teacher", "label"] = "teacher",
        disc_hidden: int = 128,
        disc_lr: float = 2e-4,
        adv_class_weight: float = 0.0,
        adv_noise: float = 0.0,
        der_samples: int | None = None,
    ) -> None:
        for name, value, allowed in (
            ("output", output, ("logits", "probs")),
            ("adv_input", adv_input, ("logits", "probs", "standardized")),
            ("adv_condition", adv_condition, ("teacher", "label")),
        ):
            if value not in allowed:
                raise ConfigError(f"imitation: {name} must be one of {', '.join(allowed)}, got '{value}'")
        if min(rec_weight, der_weight, adv_weight) < 0 or rec_weight + der_weight + adv_weight == 0:
            raise ConfigError("imitation: weights must be >= 0 and at least one of rec/der/adv_weight positive")
        if projections < 1:
            raise ConfigError(f"imitation: projections must be >= 1, got {projections}")
        for name, value in (("rec_weight", rec_weight), ("der_weight", der_weight), ("adv_weight", adv_weight)):
            check_option("imitation", name, value, at_least=0)
        check_option("imitation", "adv_temperature", adv_temperature, above=0)
        check_option("imitation", "disc_lr", disc_lr, above=0)
        check_option("imitation", "disc_hidden", disc_hidden, at_least=1)
        check_option("imitation", "adv_class_weight", adv_class_weight, at_least=0)
        check_option("imitation", "adv_noise", adv_noise, at_least=0)
        if der_samples is not None:
            check_option("imitation", "der_samples", der_samples, at_least=2)  # batch norm needs 2
        if adv_class_weight > 0 and adv_weight == 0:
            raise ConfigError("imitation: adv_class_weight needs the discriminator: set adv_weight > 0")
        self.rec_weight, self.der_weight, self.adv_weight = rec_weight, der_weight, adv_weight
        self.output, self.projections, self.exact_jacobian = output, projections, exact_jacobian
        self.adv_input, self.adv_temperature, self.adv_condition = adv_input, adv_temperature, adv_condition
        self.disc_hidden, self.disc_lr, self.adv_class_weight = disc_hidden, disc_lr, adv_class_weight
        self.adv_noise, self.der_samples = adv_noise, der_samples
        super().__init__(student, teacher)
        self.discriminator: ConditionalDiscriminator | None = None
        self._disc_optimizer: torch.optim.Optimizer | None = None
        if adv_weight > 0:
            self.discriminator = ConditionalDiscriminator(
                self.teacher.num_classes, disc_hidden, class_head=adv_class_weight > 0
            )
            self._disc_optimizer = torch.optim.Adam(self.discriminator.parameters(), lr=disc_lr, betas=(0.5, 0.999))
        self._pending: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None

    def required(self) -> frozenset[str]:
        needs = {"probs"}
        if (self.rec_weight > 0 or self.der_weight > 0) and self.output == "logits":
            needs.add("logits")
        if self.der_weight > 0:
            needs.add("input_grad")
        if self.adv_weight > 0 and self.adv_input in ("logits", "standardized"):
            needs.add("logits")
        return frozenset(needs)

    def labels_required(self) -> bool:
        return self.adv_weight > 0 and self.adv_condition == "label"

    def _pick(self, logits: torch.Tensor, teacher: TeacherOutput | None = None) -> torch.Tensor:
        if teacher is not None:
            return teacher.logits if self.output == "logits" else teacher.probs
        return logits if self.output == "logits" else torch.softmax(logits, dim=1)

    def _disc_view(self, logits: torch.Tensor | None, probs: torch.Tensor) -> torch.Tensor:
        """What D sees of the teacher: logits (raw or standardized), or probabilities softened
        at adv_temperature."""
        if self.adv_input == "probs":
            return soften(probs, self.adv_temperature)
        assert logits is not None
        return standardize(logits) if self.adv_input == "standardized" else logits

    def _student_disc_view(self, logits: torch.Tensor) -> torch.Tensor:
        """What D sees of the student: the same view, softmax(z / T) straight from its logits
        (equal to soften(softmax(z), T), but with no probability floor to zero its gradient)."""
        if self.adv_input == "logits":
            return logits
        if self.adv_input == "standardized":
            return standardize(logits)
        return torch.softmax(logits.float() / self.adv_temperature, dim=1)

    def _noisy(self, view: torch.Tensor) -> torch.Tensor:
        """Instance noise: view + N(0, adv_noise^2), fresh on every call (identity at 0)."""
        return view + self.adv_noise * torch.randn_like(view) if self.adv_noise > 0 else view

    def losses(self, batch: Batch) -> dict[str, torch.Tensor]:
        if self.der_weight > 0:
            # The derivative loss compares input-gradients from a double backward pass; in
            # bf16 they lose most of their digits, so this method opts out of autocast.
            with torch.autocast(batch.x.device.type, enabled=False):
                return self._losses(batch)
        return self._losses(batch)

    def supports_compile(self) -> bool:
        return self.der_weight == 0  # the derivative loss needs a double backward through the student

    def _losses(self, batch: Batch) -> dict[str, torch.Tensor]:
        sub = self._derivative_subset(batch)  # the derivative term's own sub-batch, or None
        derivative = self.der_weight > 0 and sub is None  # the derivative on the whole batch
        x = batch.x.detach().requires_grad_(True) if derivative else batch.x
        student_logits = self.student(x)  # (B, K)
        if derivative:
            teacher = self.ask_teacher(batch, x)  # keeps the graph to x for input-gradients
        else:
            with torch.no_grad():
                teacher = self.ask_teacher(batch)
        out: dict[str, torch.Tensor] = {}
        student_view = self._pick(student_logits)
        if self.rec_weight > 0:
            out["rec"] = self.rec_weight * F.mse_loss(student_view, self._pick(student_logits, teacher).detach())
        if derivative:
            out["der"] = self.der_weight * jacobian_mse(
                student_view,
                self._pick(student_logits, teacher),
                x,
                projections=self.projections,
                exact=self.exact_jacobian,
            )
        elif sub is not None:
            out["der"] = self.der_weight * self._subset_derivative(sub)
        if self.adv_weight > 0:
            assert self.discriminator is not None
            condition = batch.targets["labels"] if self.adv_condition == "label" else teacher.probs.argmax(dim=1)
            fake = self._student_disc_view(student_logits)
            real = self._disc_view(teacher.logits, teacher.probs).detach()
            score, class_logits = self.discriminator.score_and_class(self._noisy(fake), condition)
            out["adv"] = self.adv_weight * F.binary_cross_entropy_with_logits(score, torch.ones_like(score))
            if class_logits is not None:  # (B, K): D's class head on the student's view
                out["adv_class"] = self.adv_class_weight * F.cross_entropy(class_logits, condition)
            # float32: the discriminator's step runs outside autocast
            self._pending = (fake.detach().float(), real.float(), condition)
        return out

    def _derivative_subset(self, batch: Batch) -> Batch | None:
        """The first ``der_samples`` rows of ``batch`` when the derivative term is on and that is
        fewer than the batch; else None (the derivative, if on, uses the whole batch)."""
        if self.der_weight == 0 or self.der_samples is None or self.der_samples >= batch.x.shape[0]:
            return None
        m = self.der_samples
        targets = {name: value[:m] for name, value in batch.targets.items()}
        return Batch(batch.x[:m], targets, batch.index[:m], batch.global_size)

    def _subset_derivative(self, sub: Batch) -> torch.Tensor:
        """L_D on the sub-batch: a second student forward (m, K) with its own input graph."""
        x = sub.x.detach().requires_grad_(True)
        with frozen_batch_norm_statistics(self.student):
            student_logits = self.student(x)
        teacher = self.ask_teacher(sub, x)
        return jacobian_mse(
            self._pick(student_logits),
            self._pick(student_logits, teacher),
            x,
            projections=self.projections,
            exact=self.exact_jacobian,
        )

    def optimized_parameters(self) -> Iterator[nn.Parameter]:
        """Everything but the discriminator, which has its own optimiser."""
        skip = {id(p) for p in self.discriminator.parameters()} if self.discriminator is not None else set()
        return (p for p in self.parameters() if id(p) not in skip)

    def auxiliary_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"discriminator": self._disc_optimizer} if self._disc_optimizer is not None else {}

    def auxiliary_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        """One discriminator update on the batch's (teacher, student) outputs: L_disc, plus
        CE(head(t(x)), y) when D has a class head.

        Also logged, for diagnosing the game (never part of the student's loss): the share of
        teacher outputs D calls real (``disc_real_acc``) and of student outputs it calls fake
        (``disc_fake_acc``) before its step, and how often the student's top class is the
        condition y (``adv_agreement``: the teacher's top class, or the label).
        """
        if self._pending is None or self.discriminator is None or self._disc_optimizer is None:
            return {}
        fake, real, condition = self._pending
        self._pending = None
        real_score, real_class = self.discriminator.score_and_class(self._noisy(real), condition)
        fake_score = self.discriminator(self._noisy(fake), condition)
        loss = F.binary_cross_entropy_with_logits(
            real_score, torch.ones_like(real_score)
        ) + F.binary_cross_entropy_with_logits(fake_score, torch.zeros_like(fake_score))
        if real_class is not None:  # the class head learns y from teacher outputs only
            loss = loss + F.cross_entropy(real_class, condition)
        self._disc_optimizer.zero_grad(set_to_none=True)  # also clears grads the student's adv term left on D
        loss.backward()
        distributed.average_gradients(self.discriminator.parameters())  # D is stepped outside DDP
        self._disc_optimizer.step()
        with torch.no_grad():  # (B,) scores and (B, K) outputs -> shares in [0, 1]
            diagnostics = {
                "disc_real_acc": (real_score > 0).float().mean(),
                "disc_fake_acc": (fake_score < 0).float().mean(),
                "adv_agreement": (fake.argmax(dim=1) == condition).float().mean(),
            }
        return {"disc": loss.detach(), **diagnostics}
