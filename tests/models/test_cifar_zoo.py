"""The CIFAR model zoo of the FEED paper: ResNets, Wide ResNets, ResNeXt-29."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from deepmimic.errors import ModelSpecError
from deepmimic.models import cifar_resnet, count_parameters, create_model, resnext29, wide_resnet

# FEED (Park & Kwak 2019), Table 1: parameters for CIFAR-100, in millions.
PUBLISHED_CIFAR100 = {"resnet56": 0.85e6, "resnet110": 1.73e6, "wrn28_10": 36.5e6, "resnext29_16x64d": 68.1e6}


@pytest.mark.parametrize("name", sorted(PUBLISHED_CIFAR100))
def test_parameter_counts_match_the_paper(name: str) -> None:
    params = count_parameters(create_model(name, num_classes=100))  # built only, no forward pass
    assert params == pytest.approx(PUBLISHED_CIFAR100[name], rel=0.02)


def test_option_a_shortcuts_have_no_parameters() -> None:
    a = count_parameters(cifar_resnet(20, shortcut="A"))
    b = count_parameters(cifar_resnet(20, shortcut="B"))
    assert a == 269_722  # the paper's 0.27M
    assert b - a == (16 * 32 + 2 * 32) + (32 * 64 + 2 * 64)  # two 1x1 conv + BN projections


@pytest.mark.parametrize(
    "build, feature_layer, feature_shape",
    [
        (lambda: create_model("resnet20"), "layer3", (64, 8, 8)),
        (lambda: create_model("wrn16_2"), "final", (128, 8, 8)),
        (lambda: resnext29(2, 4), "layer3", (1024, 8, 8)),
        (lambda: wide_resnet(10, 1, dropout=0.3), "final", (64, 8, 8)),
    ],
    ids=["resnet20", "wrn16_2", "resnext29_2x4d", "wrn10_1_dropout"],
)
def test_forward_gives_logits_and_names_its_stages(build, feature_layer: str, feature_shape: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    model = build()
    assert model.feature_layer == feature_layer
    for attr in ("stem", "layer1", "layer2", "layer3", "pool", "fc"):
        assert isinstance(getattr(model, attr), nn.Module)
    assert all(isinstance(getattr(model, f"layer{i}"), nn.Sequential) for i in (1, 2, 3))
    x = torch.randn(2, 3, 32, 32)
    logits = model(x)
    assert logits.shape == (2, 10) and torch.isfinite(logits).all()
    body = nn.Sequential(
        *[getattr(model, n) for n in ("stem", "layer1", "layer2", "layer3", "final") if hasattr(model, n)]
    )
    assert body(x).shape == (2, *feature_shape)


def test_registry_names_and_options() -> None:
    model = create_model("resnet20")
    assert isinstance(model, nn.Module) and model.depth == 20
    assert create_model("resnet32", num_classes=100).fc.out_features == 100
    assert create_model("resnet20", in_shape=(1, 28, 28))(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    assert create_model("wrn16_2", dropout=0.3).layer1[0].dropout.p == 0.3
    with pytest.raises(ModelSpecError, match="unknown model option"):
        create_model("resnet20", depth=44)


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: cifar_resnet(21), "depth must be 6n\\+2.*got 21"),
        (lambda: cifar_resnet(20, shortcut="C"), "shortcut must be 'A'"),
        (lambda: wide_resnet(27, 10), "depth must be 6n\\+4.*got 27"),
        (lambda: wide_resnet(28, 0), "width"),
        (lambda: resnext29(0, 64), "cardinality must be a positive integer"),
    ],
)
def test_bad_sizes_raise_one_line_errors(build, message: str) -> None:
    with pytest.raises(ModelSpecError, match=message) as info:
        build()
    assert "\n" not in str(info.value)
