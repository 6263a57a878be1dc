"""Speed switches: how "auto" resolves per device, and that bf16 autocast, channels_last and
compile train correctly; losses that need float32 stay float32 under autocast."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from deepmimic.data.batches import Batch, Normalizer, TrainingSet
from deepmimic.engine.checkpoint import load_weights
from deepmimic.engine.settings import TrainSettings
from deepmimic.engine.trainer import WEIGHTS_NAME, SpeedPlan, fit
from deepmimic.methods import Imitation, Supervised
from deepmimic.methods.factor_modules import factor_transfer_loss
from deepmimic.methods.soft_label import soft_cross_entropy
from deepmimic.teachers import ModuleTeacher
from synthetic import make_blobs_dataset


def test_auto_means_on_for_cuda_and_off_for_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    auto = TrainSettings()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    cuda = SpeedPlan.resolve(auto, torch.device("cuda", 0))
    assert cuda.autocast_dtype is torch.bfloat16 and cuda.memory_format is torch.channels_last and cuda.data_on_device
    cpu = SpeedPlan.resolve(auto, torch.device("cpu"))
    assert cpu.autocast_dtype is None and cpu.memory_format is torch.contiguous_format and not cpu.data_on_device
    # Issue 13, item 2: on the CPU "auto" takes channels_last for a conv net (measured faster), not for an MLP.
    assert SpeedPlan.resolve(auto, torch.device("cpu"), tiny_cnn()).memory_format is torch.channels_last
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(64, 4))
    assert SpeedPlan.resolve(auto, torch.device("cpu"), mlp).memory_format is torch.contiguous_format
    # Issue 18: one conv layer before the linear ones (mnist-student-b) measured 4-8% slower in channels_last.
    one_conv = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten(), nn.Linear(144, 4))
    assert SpeedPlan.resolve(auto, torch.device("cpu"), one_conv).memory_format is torch.contiguous_format
    assert (
        SpeedPlan.resolve(TrainSettings(channels_last=False), torch.device("cpu"), tiny_cnn()).memory_format
        is torch.contiguous_format
    )
    forced = SpeedPlan.resolve(
        TrainSettings(precision="bf16", channels_last=True, data_on_device=True), torch.device("cpu")
    )
    assert forced.autocast_dtype is torch.bfloat16 and forced.memory_format is torch.channels_last
    assert not forced.data_on_device  # the CPU's memory is already where the data are
    off = SpeedPlan.resolve(
        TrainSettings(precision="fp32", channels_last=False, data_on_device=False), torch.device("cuda", 0)
    )
    assert off.autocast_dtype is None and off.memory_format is torch.contiguous_format and not off.data_on_device
    # A GPU that only emulates bf16 (pre-Ampere) keeps float32 under "auto".
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: including_emulation)
    assert SpeedPlan.resolve(auto, torch.device("cuda", 0)).autocast_dtype is None


def tiny_cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(4, 4, 3, padding=1),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(4 * 16, 4),
    )


@pytest.mark.parametrize(
    "switches", [{"precision": "bf16"}, {"channels_last": True}, {"precision": "bf16", "channels_last": True}]
)
def test_training_with_switches_learns(switches: dict, tmp_path: Path) -> None:
    torch.manual_seed(0)
    ds, test = make_blobs_dataset(n_per_class=30), make_blobs_dataset(n_per_class=10, seed=1)
    model = tiny_cnn()
    settings = TrainSettings(batch_size=16, lr=0.1, epochs=4, device="cpu", **switches)
    result = fit(
        Supervised(model),
        TrainingSet(ds.images, {"labels": ds.labels}),
        Normalizer.fit(ds.images),
        settings,
        test=test,
        run_dir=tmp_path,
        progress=False,
    )
    assert result.final["test_accuracy"] >= 0.9
    assert all(p.dtype == torch.float32 for p in model.parameters())  # autocast never changes the weights' dtype
    fresh = tiny_cnn()
    load_weights(tmp_path / WEIGHTS_NAME, fresh)  # saved weights load into a plain (contiguous) model
    x = torch.randn(2, 1, 8, 8)
    assert torch.allclose(fresh(x), model.to(memory_format=torch.contiguous_format)(x), atol=1e-6)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch.jit internals imported by the compiler
def test_compile_trains_and_keeps_parameter_names(tmp_path: Path) -> None:
    torch.manual_seed(0)
    ds = make_blobs_dataset(n_per_class=20)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 4))
    names = list(model.state_dict())
    settings = TrainSettings(batch_size=16, lr=0.1, epochs=2, device="cpu", compile=True)
    result = fit(
        Supervised(model),
        TrainingSet(ds.images, {"labels": ds.labels}),
        Normalizer.fit(ds.images),
        settings,
        run_dir=tmp_path,
        progress=False,
    )
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    assert list(model.state_dict()) == names  # nn.Module.compile keeps names: checkpoints stay portable


def test_float32_losses_under_bf16_autocast() -> None:
    torch.manual_seed(0)
    logits, probs = torch.randn(6, 5), torch.softmax(torch.randn(6, 5), dim=1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        soft = soft_cross_entropy(logits.bfloat16(), probs)
        factor = factor_transfer_loss(torch.randn(6, 3, 4, 4).bfloat16(), torch.randn(6, 3, 4, 4).bfloat16())
    assert soft.dtype == torch.float32 and factor.dtype == torch.float32
    assert soft.item() == pytest.approx(soft_cross_entropy(logits.bfloat16().float(), probs).item(), rel=1e-6)


def test_derivative_loss_is_computed_in_float32_under_autocast() -> None:
    def net(seed: int) -> nn.Module:
        torch.manual_seed(seed)
        return nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.Tanh(), nn.Flatten(), nn.Linear(48, 5))

    x = torch.randn(4, 1, 4, 4)
    batch = Batch(x=x, targets={}, index=torch.arange(4))
    method = Imitation(
        net(0), ModuleTeacher(net(1), 5), rec_weight=1.0, der_weight=1.0, adv_weight=0.0, exact_jacobian=True
    )
    plain = method.losses(batch)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = method.losses(batch)
    assert mixed["der"].dtype == torch.float32
    assert mixed["der"].item() == pytest.approx(plain["der"].item(), rel=1e-6)
    assert mixed["rec"].item() == pytest.approx(plain["rec"].item(), rel=1e-6)


def test_compile_is_refused_for_a_derivative_loss() -> None:
    from deepmimic.errors import ConfigError

    torch.manual_seed(0)
    ds = make_blobs_dataset(n_per_class=4)
    teacher = ModuleTeacher(nn.Sequential(nn.Flatten(), nn.Linear(64, 4)), 4)
    method = Imitation(nn.Sequential(nn.Flatten(), nn.Linear(64, 4)), teacher, der_weight=1.0)
    with pytest.raises(ConfigError, match="cannot be compiled"):
        fit(
            method,
            TrainingSet(ds.images, {}),
            Normalizer.fit(ds.images),
            TrainSettings(epochs=1, compile=True, device="cpu"),
            progress=False,
        )


def test_read_ahead_auto_needs_cuda_or_a_spare_core(monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 17: a reader thread on cores the compute threads fill measured slower (docs/scaling.md)."""
    import os

    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    assert not SpeedPlan.resolve(TrainSettings(), torch.device("cpu")).read_ahead
    assert SpeedPlan.resolve(TrainSettings(), torch.device("cuda", 0)).read_ahead
    assert SpeedPlan.resolve(TrainSettings(read_ahead=True), torch.device("cpu")).read_ahead
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    assert SpeedPlan.resolve(TrainSettings(), torch.device("cpu")).read_ahead
    assert not SpeedPlan.resolve(TrainSettings(read_ahead=False), torch.device("cpu")).read_ahead


def test_denormals_read_as_zero_while_a_cpu_epoch_trains_and_not_after(tmp_path: Path) -> None:
    """flush_denormal "auto" is on for the CPU, off for CUDA; the mode holds during the epoch only."""
    assert SpeedPlan.resolve(TrainSettings(), torch.device("cpu")).flush_denormal
    assert not SpeedPlan.resolve(TrainSettings(flush_denormal=False), torch.device("cpu")).flush_denormal
    assert not SpeedPlan.resolve(TrainSettings(), torch.device("cuda", 0)).flush_denormal
    seen: list[float] = []

    class Probe(Supervised):
        def losses(self, batch: Batch) -> dict[str, torch.Tensor]:
            seen.append(float(torch.tensor([1e-40]) * 1.0))  # a denormal float32 product
            return super().losses(batch)

    ds = make_blobs_dataset(n_per_class=8)
    for flush, expect_zero in ((True, True), (False, False)):
        seen.clear()
        fit(
            Probe(tiny_cnn()),
            TrainingSet(ds.images, {"labels": ds.labels}),
            Normalizer.fit(ds.images),
            TrainSettings(batch_size=16, epochs=1, device="cpu", flush_denormal=flush),
        )
        if torch.set_flush_denormal(False):  # the CPU supports the mode (x86 with SSE3)
            assert seen and all((v == 0.0) is expect_zero for v in seen)
        assert float(torch.tensor([1e-40]) * 1.0) > 0  # off again after fit
