"""Factor transfer (Kim et al., 2018; FEED paper section 3, eqs. 1-3).

    L_student = ce_weight * CE(z_s, y) + beta * sum_j L_FT(F_T^j, T_j(F_S))

L_FT is eq. 3 with an element-mean reduction by default, the scale the paper's beta
(500 for ResNets, 2,000 for wide nets) works with; see
:func:`~deepmimic.methods.factor_modules.factor_transfer_loss` for the sum reduction.

A paraphraser P_j is pre-trained on teacher feature map j (setup stage, reconstruction
loss, then frozen) and its encoding is the teacher factor F_T^j; with ``paraphraser=False``
the teacher's raw map is the target (FEED's choice). A translator T_j, trained jointly
with the student, maps the student's feature map to the factor's shape. Translators and
paraphrasers are submodules of the method: saved in the training checkpoint, absent from
the student's weights (no cost at test time).

Paraphraser options and the papers' values (FEED paper section 5.4, "Paraphraser", and
"CIFAR-100"; FT = Kim et al., 2018):

* ``rate`` (k, factor channels = C * k): default 0.5, FT's value on CIFAR; FEED's Table 2
  uses k = 1 ("since the teacher network and student networks are the same kind").
* ``paraphraser_epochs``: default 10, FEED's ("training it over 10 epochs was unnecessary";
  FT trains 30).
* ``paraphraser_optimizer`` and ``paraphraser_lr``: FEED trains the paraphrasers with
  learning rate 0.1 and uses SGD (momentum 0.9, weight decay 5e-4) for all its experiments:
  ``paraphraser_optimizer="sgd"``, ``paraphraser_lr=0.1``. The defaults, Adam at 1e-3, are
  this package's earlier behaviour, kept bit-identical; a config that follows the paper
  writes FEED's values (``configs/feed-cifar10.yaml`` does).

Feature maps are captured with forward hooks: ``student_layer`` of the student (default:
its last 4-D feature map) and the teacher's maps named in its ``features`` output (every
map the teacher returns: one per ensemble member for parallel FEED).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from deepmimic.data.batches import Batch, Normalizer, TrainingSet
from deepmimic.errors import ConfigError, TeacherError
from deepmimic.methods.base import Method, check_option
from deepmimic.methods.factor_modules import REDUCTIONS, Paraphraser, Translator, factor_channels, factor_transfer_loss
from deepmimic.models.features import FeatureCapture, last_feature_layer
from deepmimic.teachers.base import Teacher

PARAPHRASER_OPTIMIZERS = ("adam", "sgd")
SGD_MOMENTUM, SGD_WEIGHT_DECAY = 0.9, 5e-4  # FEED section 5.4: SGD, momentum 0.9, weight decay 5e-4


class FactorTransfer(Method):
    """FT with one translator (and optionally one paraphraser) per teacher feature map."""

    needs = frozenset({"features"})

    def __init__(
        self,
        student: nn.Module,
        teacher: Teacher | None = None,
        *,
        beta: float = 500.0,
        p: int = 1,
        rate: float = 0.5,
        paraphraser: bool = True,
        paraphraser_epochs: int = 10,
        paraphraser_lr: float = 1e-3,
        paraphraser_optimizer: str = "adam",
        student_layer: str | None = None,
        ce_weight: float = 1.0,
        reduction: str = "mean",
    ) -> None:
        if reduction not in REDUCTIONS:
            raise ConfigError(f"factor transfer: reduction must be one of {', '.join(REDUCTIONS)}, got '{reduction}'")
        if p not in (1, 2):
            raise ConfigError(f"factor transfer: p must be 1 or 2, got {p}")
        if beta < 0 or ce_weight < 0 or not 0 < rate <= 4:
            raise ConfigError("factor transfer: beta and ce_weight must be >= 0 and rate in (0, 4]")
        check_option("factor transfer", "beta", beta, at_least=0)
        check_option("factor transfer", "ce_weight", ce_weight, at_least=0)
        check_option("factor transfer", "paraphraser_epochs", paraphraser_epochs, at_least=0)
        check_option("factor transfer", "paraphraser_lr", paraphraser_lr, above=0)
        if paraphraser_optimizer not in PARAPHRASER_OPTIMIZERS:
            raise ConfigError(
                f"factor transfer: paraphraser_optimizer must be one of {', '.join(PARAPHRASER_OPTIMIZERS)}, "
                f"got '{paraphraser_optimizer}'"
            )
        super().__init__(student, teacher)
        self.beta, self.p, self.rate = beta, p, rate
        self.use_paraphraser, self.paraphraser_epochs, self.paraphraser_lr = (
            paraphraser,
            paraphraser_epochs,
            paraphraser_lr,
        )
        self.paraphraser_optimizer = paraphraser_optimizer
        self.student_layer = student_layer  # None: the student's last feature map, found in setup()
        self.ce_weight = ce_weight
        self.reduction = reduction
        self.keys: list[str] = []
        self.translators = nn.ModuleDict()
        self.paraphrasers = nn.ModuleDict()
        self._capture: FeatureCapture | None = None

    def labels_required(self) -> bool:
        return self.ce_weight > 0

    def has_unused_parameters(self) -> bool:
        return self.ce_weight == 0  # the layers after student_layer then get no gradient

    @staticmethod
    def _module_key(key: str) -> str:
        return key.replace(".", "__")  # ModuleDict keys cannot contain dots

    def _teacher_maps(self, batch: Batch) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            features = self.ask_teacher(batch).features
        if not features:
            raise TeacherError("factor transfer: the teacher returned no feature maps")
        return features

    def setup(
        self, data: TrainingSet, normalizer: Normalizer, device: torch.device, batch_size: int, pretrain: bool
    ) -> None:
        """Build translators/paraphrasers from one batch's shapes; pre-train the paraphrasers."""
        if self.student_layer is None:
            self.student_layer = last_feature_layer(self.student, tuple(data.images.shape[1:]))
        if self._capture is None:
            self._capture = FeatureCapture(self.student, [self.student_layer])
        probe = Batch(
            normalizer(data.images[: min(len(data), batch_size)].to(device)),
            {},
            torch.arange(min(len(data), batch_size)),
        )
        teacher_maps = self._teacher_maps(probe)
        was_training = self.student.training
        self.student.eval()
        with torch.no_grad():
            self.student(probe.x)
        self.student.train(was_training)
        student_channels = self._capture[self.student_layer].shape[1]
        self.keys = sorted(teacher_maps)
        for key in self.keys:
            channels = teacher_maps[key].shape[1]
            target = factor_channels(channels, self.rate) if self.use_paraphraser else channels
            self.translators[self._module_key(key)] = Translator(student_channels, target).to(device)
            if self.use_paraphraser:
                self.paraphrasers[self._module_key(key)] = Paraphraser(channels, self.rate).to(device)
        if self.use_paraphraser and pretrain:
            self._pretrain_paraphrasers(data, normalizer, device, batch_size)
        for parameter in self.paraphrasers.parameters():
            parameter.requires_grad_(False)  # frozen after pre-training: F_T is a fixed target
        self.paraphrasers.eval()

    def _pretrain_paraphrasers(
        self, data: TrainingSet, normalizer: Normalizer, device: torch.device, batch_size: int
    ) -> None:
        optimizer: torch.optim.Optimizer
        if self.paraphraser_optimizer == "sgd":  # FEED section 5.4
            optimizer = torch.optim.SGD(
                self.paraphrasers.parameters(),
                lr=self.paraphraser_lr,
                momentum=SGD_MOMENTUM,
                weight_decay=SGD_WEIGHT_DECAY,
            )
        else:
            optimizer = torch.optim.Adam(self.paraphrasers.parameters(), lr=self.paraphraser_lr)
        generator = torch.Generator().manual_seed(0)
        self.paraphrasers.train()
        for epoch in range(self.paraphraser_epochs):
            order = torch.randperm(len(data), generator=generator)
            total, batches = 0.0, 0
            for start in range(0, len(data), batch_size):
                idx = order[start : start + batch_size]
                maps = self._teacher_maps(Batch(normalizer(data.images[idx].to(device)), {}, idx))
                loss = sum(self.paraphrasers[self._module_key(k)].reconstruction_loss(maps[k]) for k in self.keys)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total, batches = total + float(loss.detach()), batches + 1
            print(
                f"[paraphraser] epoch {epoch + 1}/{self.paraphraser_epochs} "
                f"reconstruction={total / max(batches, 1):.4f}",
                flush=True,
            )

    def losses(self, batch: Batch) -> dict[str, torch.Tensor]:
        if not self.keys or self._capture is None or self.student_layer is None:
            raise TeacherError("factor transfer: setup() has not run (the engine calls it before training)")
        logits = self.student(batch.x)
        student_map = self._capture[self.student_layer]  # (B, C_s, H, W), with gradients
        teacher_maps = self._teacher_maps(batch)
        ft = student_map.new_zeros(())
        for key in self.keys:
            target = teacher_maps[key]
            if self.use_paraphraser:
                with torch.no_grad():
                    target = self.paraphrasers[self._module_key(key)].encode(target)
            factor = self.translators[self._module_key(key)](student_map, size=tuple(target.shape[-2:]))
            ft = ft + factor_transfer_loss(target, factor, self.p, self.reduction)
        out = {"ft": self.beta * ft}
        if self.ce_weight > 0:
            out["ce"] = self.ce_weight * F.cross_entropy(logits, batch.targets["labels"])
        return out
