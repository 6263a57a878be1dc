"""The paper's architecture notation: parsing, building, and errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from deepmimic.errors import ModelSpecError
from deepmimic.models import LayerSpec, build_from_notation, count_macs, count_parameters, parse_notation


def kinds(notation: str) -> list[str]:
    return [layer.kind for layer in parse_notation(notation)]


def modules_of(model: nn.Module, kind: type[nn.Module]) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, kind)]


def test_repetition_forms_are_equivalent() -> None:
    assert parse_notation("c2-mp-fc2-s") == parse_notation("c^2-mp-fc^2-s") == parse_notation("c-c-mp-fc-fc-s")
    assert parse_notation("c²-mp-s") == parse_notation("cx2-mp-s") == parse_notation("C - C - MP - S")
    assert kinds("c-mp-c-mp-fc2-s") == ["c", "mp", "c", "mp", "fc", "fc", "s"]


def test_groups_expand() -> None:
    layers = kinds("(c-bn-d)9-fc-bn-d-s")
    assert len(layers) == 9 * 3 + 3 + 1
    assert layers[:3] == ["c", "bn", "d"] and layers[-4:] == ["fc", "bn", "d", "s"]
    assert kinds("(c-bn-d)^2-s") == kinds("(c-bn-d)2-s") == ["c", "bn", "d", "c", "bn", "d", "s"]
    assert kinds("((c-d)2-bn)2-s") == ["c", "d", "c", "d", "bn"] * 2 + ["s"]


def test_explicit_widths() -> None:
    layers = parse_notation("c:16x2-mp-fc:40-s")
    assert layers == [LayerSpec("c", 16), LayerSpec("c", 16), LayerSpec("mp"), LayerSpec("fc", 40), LayerSpec("s")]
    model = build_from_notation("c:16x2-mp-fc:40-s", (1, 8, 8), 5)
    assert model(torch.zeros(2, 1, 8, 8)).shape == (2, 5)
    assert model.features[2].out_channels == 16 and model.classifier[1].out_features == 40
    # an inline width wins over the default doubling; the others still double after pooling
    model = build_from_notation("c-mp-c:7-mp-c-s", (1, 8, 8), 2, conv_channels=4)
    assert [c.out_channels for c in modules_of(model, nn.Conv2d)] == [4, 7, 16]


@pytest.mark.parametrize(
    "notation,needles",
    [
        ("", ["empty architecture notation"]),
        ("   ", ["empty architecture notation"]),
        ("c-xx-s", ["unknown layer 'xx'", "at character 3", "known: c, mp"]),
        ("c-(d-(bn-xx)2)3-s", ["unknown layer 'xx'", "at character 10"]),
        ("(c-bn-s", ["unbalanced '('", "character 1"]),
        ("c-bn)-s", ["unbalanced ')'", "character 5"]),
        ("(c-bn)-s", ["group '(c-bn)'", "needs a positive repeat count"]),
        ("(c-bn)0-s", ["needs a positive repeat count"]),
        ("(c-bn)^^2-s", ["needs a positive repeat count"]),
        ("c-mp-fc", ["must end with the output layer 's'", "ends with 'fc'"]),
        ("c-s-fc-s", ["exactly once", "layer 2 of 4"]),
        ("fc-c-s", ["'c' after a fully connected layer", "layer 2 of 3"]),
        ("c-fc-mp-s", ["'mp' after a fully connected layer"]),
        ("c--s", ["empty layer", "character 3"]),
        ("mp:3-s", ["bad width 'mp:3'", "only allowed on c and fc"]),
        ("c:0-s", ["bad width 'c:0'", "> 0"]),
        ("c:6x0-s", ["repeated 0 times"]),
        ("c:abc-s", ["cannot read layer 'c:abc'", "expected e.g."]),
    ],
)
def test_malformed_notation(notation: str, needles: list[str]) -> None:
    with pytest.raises(ModelSpecError) as info:
        parse_notation(notation)
    message = str(info.value)
    assert "\n" not in message
    assert f"'{notation}'" in message  # quotes the notation
    for needle in needles:
        assert needle in message


def test_pooling_below_one_pixel_is_rejected() -> None:
    with pytest.raises(ModelSpecError, match=r"'mp' \(layer 3 of 4\) shrinks a 1x1 map"):
        build_from_notation("mp-mp-mp-s", (1, 4, 4), 2)
    with pytest.raises(ModelSpecError, match="shrinks a 1x1 map"):
        build_from_notation("c-gap-ap-s", (1, 8, 8), 2)


@pytest.mark.parametrize(
    "options,needle",
    [
        ({"conv_channels": [5]}, "conv_channels lists 1 widths for 2 layers"),
        ({"fc_units": [3, 4]}, "fc_units lists 2 widths for 1 layers"),
        ({"conv_channels": 0}, "conv_channels must be positive"),
        ({"head": "avg"}, "head must be one of flatten, gap"),
        ({"dropout": 1.0}, "dropout must lie in [0, 1)"),
        ({"kernel_size": 4}, "kernel_size must be a positive odd number"),
        ({"stride_every": 0}, "stride_every must be a positive int"),
    ],
)
def test_bad_builder_options(options: dict, needle: str) -> None:
    with pytest.raises(ModelSpecError) as info:
        build_from_notation("c-mp-c-fc-s", (3, 16, 16), 10, **options)
    assert needle in str(info.value) and "'c-mp-c-fc-s'" in str(info.value)


def test_bad_in_shape() -> None:
    with pytest.raises(ModelSpecError, match="in_shape must be three positive ints"):
        build_from_notation("c-s", (16, 16), 2)  # type: ignore[arg-type]


def test_hand_computed_parameters_and_macs() -> None:
    # c (1->2, 3x3) on 4x4: 2*(9+1) = 20 params, MACs 2*4*4*9 = 288;
    # mp -> 2x2x2 = 8; fc 8->3: 27 params, 24 MACs; s 3->2: 8 params, 6 MACs.
    model = build_from_notation("c-mp-fc-s", (1, 4, 4), 2, conv_channels=2, fc_units=3)
    assert count_parameters(model) == 20 + 27 + 8
    assert count_macs(model, (1, 4, 4)) == 288 + 24 + 6


def test_channels_double_after_pooling_and_lists_override() -> None:
    model = build_from_notation("c-mp-c-ap-c-s", (3, 16, 16), 10, conv_channels=8)
    assert [c.out_channels for c in modules_of(model, nn.Conv2d)] == [8, 16, 32]
    assert isinstance(model.features[2], nn.MaxPool2d) and isinstance(model.features[5], nn.AvgPool2d)
    model = build_from_notation("c-mp-c-s", (3, 16, 16), 10, conv_channels=[5, 7])
    assert [m.out_channels for m in modules_of(model, nn.Conv2d)] == [5, 7]
    model = build_from_notation("c-fc2-s", (1, 4, 4), 3, conv_channels=2, fc_units=[6, 5])
    assert [m.out_features for m in modules_of(model, nn.Linear)] == [6, 5, 3]


def test_layers_follow_the_notation_literally() -> None:
    model = build_from_notation("c-bn-d-mp-fc-bn-d-s", (1, 8, 8), 4, conv_channels=2, fc_units=6, dropout=0.5)
    types = [type(m).__name__ for m in model.features] + [type(m).__name__ for m in model.classifier]
    assert types == [
        "Conv2d",
        "ReLU",
        "BatchNorm2d",
        "Dropout",
        "MaxPool2d",
        "Flatten",
        "Linear",
        "ReLU",
        "BatchNorm1d",
        "Dropout",
        "Linear",
    ]
    assert all(m.p == 0.5 for m in modules_of(model, nn.Dropout))
    assert model.classifier[3].num_features == 6  # BatchNorm1d over the fc's 6 units
    # no d in the notation: no dropout at all
    assert not modules_of(build_from_notation("c-mp-c-mp-fc2-s", (1, 28, 28), 10), nn.Dropout)


def test_stride_every_and_gap_head() -> None:
    model = build_from_notation("(c-bn-d)3-fc-s", (3, 16, 16), 4, conv_channels=4, stride_every=3, head="gap")
    convs = modules_of(model, nn.Conv2d)
    assert [c.stride for c in convs] == [(1, 1), (1, 1), (2, 2)]
    assert isinstance(model.features[-1], nn.AdaptiveAvgPool2d)
    assert model(torch.zeros(2, 3, 16, 16)).shape == (2, 4)
    assert model.classifier[1].in_features == 4  # gap: C features, not C*H*W
    assert not modules_of(model, nn.BatchNorm1d)  # the only bn layers here follow convs
    # widths double after each stride-2 conv; ceil halving on odd sizes
    model = build_from_notation("c6-s", (1, 9, 9), 2, conv_channels=4, stride_every=2)
    assert [c.out_channels for c in modules_of(model, nn.Conv2d)] == [4, 4, 8, 8, 16, 16]
    assert model.features(torch.zeros(1, 1, 9, 9)).shape == (1, 16, 2, 2)  # 9 -> 5 -> 3 -> 2
    assert model.classifier[1].in_features == 16 * 2 * 2  # flatten head: C*H*W


def test_flatten_head_sizes_by_shape_arithmetic() -> None:
    model = build_from_notation("c-mp-c-mp-fc2-s", (1, 28, 28), 10, conv_channels=32, fc_units=128)
    first_fc = modules_of(model, nn.Linear)[0]
    assert first_fc.in_features == 64 * 7 * 7  # parameters exist right after building
    assert not any(isinstance(p, nn.parameter.UninitializedParameter) for p in model.parameters())


def test_model_returns_logits_not_probabilities() -> None:
    model = build_from_notation("c-mp-fc-s", (1, 8, 8), 3)
    assert model.notation == "c-mp-fc-s" and model.in_shape == (1, 8, 8) and model.num_classes == 3
    out = model(torch.randn(4, 1, 8, 8) * 10)
    assert out.shape == (4, 3)
    assert not torch.allclose(out.sum(dim=1), torch.ones(4))
