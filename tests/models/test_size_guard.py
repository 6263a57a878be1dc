"""The model-size guard: too large for memory is refused on the meta device, with the numbers."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from deepmimic.errors import ModelSpecError
from deepmimic.models import create_model
from deepmimic.models.notation import build_from_notation
from deepmimic.models.size_guard import check_model_fits


def test_parameters_beyond_memory_are_refused_with_the_numbers() -> None:
    with pytest.raises(
        ModelSpecError, match=r"notation 'c:99999999-s': 784,999,992,160 parameters need about .* GiB to train"
    ):
        create_model("c:99999999-s", (1, 28, 28), 10)


def test_activations_beyond_a_quarter_of_memory_are_refused() -> None:
    build = lambda: build_from_notation("c:8-c:8-s", (1, 64, 64), 2)  # noqa: E731 - small weights, large maps
    check_model_fits("small", build, (1, 64, 64), memory=10**9)  # fits a GB
    with pytest.raises(ModelSpecError, match=r"one 1x64x64 image needs about .* of activations, more than a quarter"):
        check_model_fits(
            "small", build, (1, 64, 64), memory=4 * 2**20 + 10**6
        )  # weights fit 4 MB, one image's maps do not


def test_a_builder_that_cannot_run_on_meta_is_left_to_the_real_build() -> None:
    def build() -> nn.Module:
        if torch.get_default_device().type == "meta":
            raise RuntimeError("needs real memory")
        return nn.Linear(2, 2)

    check_model_fits("custom", build, (1, 1, 2), memory=1)  # skipped, not refused


def test_known_layers_are_bounded_without_the_slow_probe(monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 18: plain conv/linear models skip the meta forward (1.4 s per process); the bound is an upper bound."""
    from deepmimic.models import size_guard

    for name, shape in (("mnist-student-b", (1, 28, 28)), ("cifar10-mentor-dropout", (3, 32, 32))):
        model = create_model(name)
        bound = size_guard._activation_bound(model, shape)
        assert bound is not None and bound >= size_guard._activation_elements(model, shape)
    padded = nn.Sequential(nn.Conv2d(1, 4, 3, padding=5), nn.AdaptiveAvgPool2d(40), nn.Flatten(), nn.Linear(6400, 3))
    assert size_guard._activation_bound(padded, (1, 8, 8)) >= size_guard._activation_elements(padded, (1, 8, 8))
    assert size_guard._activation_bound(nn.Sequential(nn.Upsample(scale_factor=4)), (1, 8, 8)) is None

    probes: list[object] = []
    monkeypatch.setattr(size_guard, "_activation_elements", lambda *args: probes.append(args) or 0)
    create_model("mnist-student-b")  # small: the bound decides
    assert probes == []
    create_model("c:8-c:8-s", (1, 64, 64), 2)  # also bounded; a custom module would be probed:
    check_model_fits("custom", lambda: nn.Sequential(nn.Upsample(scale_factor=2)), (1, 8, 8), memory=10**9)
    assert len(probes) == 1
