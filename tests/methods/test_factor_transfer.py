"""Factor transfer, paraphraser, pFEED (FEED paper eqs. 1-5)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from deepmimic.data.batches import Batch, Normalizer, TrainingSet
from deepmimic.errors import TeacherError
from deepmimic.methods import FactorTransfer, ParallelFeed
from deepmimic.methods.factor_modules import Paraphraser, factor_transfer_loss
from deepmimic.teachers import CachedTeacher, EnsembleTeacher, ModuleTeacher
from synthetic import make_blobs_dataset


class TinyConvNet(nn.Module):
    def __init__(self, seed: int, width: int = 4) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.features = nn.Sequential(nn.Conv2d(1, width, 3, padding=1), nn.ReLU())
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def test_ft_loss_matches_hand_computation() -> None:
    t = torch.tensor([[[[3.0]], [[4.0]]]])  # (1, 2, 1, 1): normalised [0.6, 0.8]
    s = torch.tensor([[[[1.0]], [[0.0]]]])  # normalised [1, 0]
    assert factor_transfer_loss(t, s, p=1, reduction="sum").item() == pytest.approx(0.4 + 0.8, rel=1e-6)
    assert factor_transfer_loss(t, s, p=2, reduction="sum").item() == pytest.approx(0.4**2 + 0.8**2, rel=1e-6)
    assert factor_transfer_loss(t, s, p=1).item() == pytest.approx((0.4 + 0.8) / 2, rel=1e-6)  # mean over C*H*W = 2
    assert factor_transfer_loss(t, 2 * t, p=1).item() == pytest.approx(0.0, abs=1e-6)  # scale-invariant


def test_paraphraser_reconstruction_decreases_on_a_fixed_batch() -> None:
    torch.manual_seed(0)
    para = Paraphraser(channels=8, rate=0.5)
    x = torch.randn(16, 8, 4, 4)
    optimizer = torch.optim.Adam(para.parameters(), lr=1e-2)
    first = para.reconstruction_loss(x).item()
    for _ in range(60):
        loss = para.reconstruction_loss(x)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert para.reconstruction_loss(x).item() < 0.5 * first
    assert para.encode(x).shape == (16, 4, 4, 4)


def setup_method(method: FactorTransfer, n: int = 16) -> tuple[TrainingSet, Normalizer]:
    ds = make_blobs_dataset(n_per_class=n // 4)
    data = TrainingSet(ds.images, {"labels": ds.labels})
    norm = Normalizer.fit(ds.images)
    method.setup(data, norm, torch.device("cpu"), batch_size=8, pretrain=True)
    return data, norm


def test_pfeed_with_one_teacher_equals_ft_without_paraphraser() -> None:
    teacher_net = TinyConvNet(1, width=6)
    single = ModuleTeacher(teacher_net, 4, feature_layers=["features"])
    ft = FactorTransfer(TinyConvNet(0), single, paraphraser=False, beta=10.0)
    pfeed = ParallelFeed(
        TinyConvNet(0), EnsembleTeacher([ModuleTeacher(teacher_net, 4, feature_layers=["features"])]), beta=10.0
    )
    torch.manual_seed(5)
    data, norm = setup_method(ft)
    torch.manual_seed(5)
    setup_method(pfeed)
    batch = Batch(norm(data.images[:8]), {"labels": data.targets["labels"][:8]}, torch.arange(8))
    a, b = ft.losses(batch), pfeed.losses(batch)
    assert set(a) == set(b) == {"ft", "ce"}
    assert a["ft"].item() == pytest.approx(b["ft"].item(), rel=1e-6)
    assert a["ce"].item() == pytest.approx(b["ce"].item(), rel=1e-6)


def test_pfeed_sums_one_term_per_teacher_and_gradients_reach_student_and_translators() -> None:
    teachers = EnsembleTeacher(
        [ModuleTeacher(TinyConvNet(s, width=5), 4, feature_layers=["features"]) for s in (1, 2, 3)]
    )
    student = TinyConvNet(0)
    method = ParallelFeed(student, teachers, beta=1.0, ce_weight=0.0)
    data, norm = setup_method(method)
    assert len(method.translators) == 3 and len(method.paraphrasers) == 0
    losses = method.losses(Batch(norm(data.images[:8]), {}, torch.arange(8)))
    assert set(losses) == {"ft"} and not method.labels_required()
    losses["ft"].backward()
    assert all(p.grad is not None for p in student.features.parameters())
    assert all(p.grad is not None for p in method.translators.parameters())
    assert all(p.grad is None for m in teachers.members for p in m.module.parameters())


def test_ft_pretrains_and_freezes_the_paraphraser_and_excludes_it_from_the_optimiser() -> None:
    method = FactorTransfer(
        TinyConvNet(0),
        ModuleTeacher(TinyConvNet(1, width=8), 4, feature_layers=["features"]),
        paraphraser=True,
        paraphraser_epochs=2,
        rate=0.5,
    )
    setup_method(method)
    assert len(method.paraphrasers) == 1
    para_ids = {id(p) for p in method.paraphrasers.parameters()}
    assert all(not p.requires_grad for p in method.paraphrasers.parameters())
    trainable = {id(p) for p in method.optimized_parameters() if p.requires_grad}
    assert not trainable & para_ids
    # The translator outputs the paraphraser's factor shape: 8 channels * rate 0.5 = 4.
    translator = next(iter(method.translators.values()))
    assert translator.net[-3].out_channels == 4


def test_student_weights_exclude_translators_and_paraphrasers() -> None:
    student = TinyConvNet(0)
    method = FactorTransfer(
        student, ModuleTeacher(TinyConvNet(1), 4, feature_layers=["features"]), paraphraser_epochs=1
    )
    setup_method(method)
    student_keys = set(student.state_dict())
    method_keys = set(method.state_dict())
    assert {f"student.{k}" for k in student_keys} < method_keys
    assert any(k.startswith("translators.") for k in method_keys) and any(
        k.startswith("paraphrasers.") for k in method_keys
    )
    assert not any("translator" in k or "paraphraser" in k for k in student_keys)


def test_ft_needs_a_teacher_with_features() -> None:
    with pytest.raises(TeacherError, match="needs features"):
        FactorTransfer(TinyConvNet(0), CachedTeacher(torch.full((4, 4), 0.25)))


def test_paraphraser_optimizer_sgd_follows_feed_and_a_bad_name_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """FEED section 5.4: the paraphraser pre-trained with SGD (momentum 0.9, weight decay 5e-4) at lr 0.1."""
    from deepmimic.errors import ConfigError  # noqa: PLC0415

    made: list[torch.optim.Optimizer] = []
    real_sgd = torch.optim.SGD

    def recording(*args: object, **kwargs: object) -> torch.optim.Optimizer:
        made.append(real_sgd(*args, **kwargs))  # type: ignore[arg-type]
        return made[-1]

    monkeypatch.setattr(torch.optim, "SGD", recording)
    teacher = ModuleTeacher(TinyConvNet(1, width=8), 4, feature_layers=["features"])
    method = FactorTransfer(
        TinyConvNet(0), teacher, paraphraser_epochs=1, paraphraser_optimizer="sgd", paraphraser_lr=0.1, rate=1.0
    )
    setup_method(method)
    assert len(made) == 1 and made[0].defaults["lr"] == 0.1
    assert (made[0].defaults["momentum"], made[0].defaults["weight_decay"]) == (0.9, 5e-4)
    assert next(iter(method.translators.values())).net[-3].out_channels == 8  # rate k = 1: as many channels
    with pytest.raises(ConfigError, match="paraphraser_optimizer must be one of adam, sgd, got 'rmsprop'"):
        FactorTransfer(TinyConvNet(0), teacher, paraphraser_optimizer="rmsprop")
