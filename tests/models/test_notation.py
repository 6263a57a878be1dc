"""The paper's architecture notation: parsing, building, and errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from deepmimic.errors import ModelSpecError
from deepmimic.models import build_from_notation, count_macs, count_parameters, create_model, parse_notation


def kinds(notation: str) -> list[str]:
    return [layer.kind for layer in parse_notation(notation)]


def test_repetition_forms_are_equivalent() -> None:
    assert kinds("c2-mp-fc2-s") == kinds("c^2-mp-fc^2-s") == kinds("c-c-mp-fc-fc-s")


def test_groups_expand() -> None:
    layers = kinds("(c-bn-d)9-fc-bn-d-s")
    assert len(layers) == 9 * 3 + 3 + 1
    assert layers[:3] == ["c", "bn", "d"] and layers[-4:] == ["fc", "bn", "d", "s"]
    assert kinds("(c-bn-d)^2-s") == ["c", "bn", "d", "c", "bn", "d", "s"]


def test_explicit_widths() -> None:
    layers = parse_notation("c:16x2-mp-fc:40-s")
    assert [(l.kind, l.width) for l in layers] == [("c", 16), ("c", 16), ("mp", None), ("fc", 40), ("s", None)]
    model = build_from_notation("c:16x2-mp-fc:40-s", (1, 8, 8), 5)
    assert model(torch.zeros(2, 1, 8, 8)).shape == (2, 5)
    assert model.features[2].out_channels == 16 and model.classifier[1].out_features == 40


@pytest.mark.parametrize(
    "notation,needle",
    [
        ("", "empty architecture notation"),
        ("c-xx-s", "unknown layer 'xx'"),
        ("(c-bn-s", "unbalanced '('"),
        ("c-bn)-s", "unbalanced ')'"),
        ("(c-bn)-s", "needs a positive repeat count"),
        ("(c-bn)0-s", "needs a positive repeat count"),
        ("c-mp-fc", "must end with the output layer 's'"),
        ("c-s-fc-s", "exactly once"),
        ("fc-c-s", "'c' after a fully connected layer"),
        ("c--s", "empty layer"),
        ("mp:3-s", "only allowed on c and fc"),
        ("c:6x0-s", "repeated 0 times"),
        ("c:abc-s", "cannot read layer"),
    ],
)
def test_malformed_notation(notation: str, needle: str) -> None:
    with pytest.raises(ModelSpecError) as info:
        parse_notation(notation)
    assert needle in str(info.value)


def test_pooling_below_one_pixel_is_rejected() -> None:
    with pytest.raises(ModelSpecError, match="shrinks a 1x1 map"):
        build_from_notation("mp-mp-mp-s", (1, 4, 4), 2)


def test_hand_computed_parameters_and_macs() -> None:
    # c (1->2, 3x3) on 4x4: 2*(9+1) = 20 params, MACs 2*4*4*9 = 288;
    # mp -> 2x2x2 = 8; fc 8->3: 27 params, 24 MACs; s 3->2: 8 params, 6 MACs.
    model = build_from_notation("c-mp-fc-s", (1, 4, 4), 2, conv_channels=2, fc_units=3)
    assert count_parameters(model) == 20 + 27 + 8
    assert count_macs(model, (1, 4, 4)) == 288 + 24 + 6


def test_channels_double_after_pooling_and_lists_override() -> None:
    model = build_from_notation("c-mp-c-mp-c-s", (3, 16, 16), 10, conv_channels=8)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [8, 16, 32]
    model = build_from_notation("c-mp-c-s", (3, 16, 16), 10, conv_channels=[5, 7])
    assert [m.out_channels for m in model.modules() if isinstance(m, nn.Conv2d)] == [5, 7]
    with pytest.raises(ModelSpecError, match="lists 1 widths for 2 layers"):
        build_from_notation("c-mp-c-s", (3, 16, 16), 10, conv_channels=[5])


def test_stride_every_and_gap_head() -> None:
    model = build_from_notation("(c-bn-d)3-fc-s", (3, 16, 16), 4, conv_channels=4, stride_every=3, head="gap")
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert [c.stride for c in convs] == [(1, 1), (1, 1), (2, 2)]
    assert isinstance(model.features[-1], nn.AdaptiveAvgPool2d)
    assert model(torch.zeros(2, 3, 16, 16)).shape == (2, 4)
    bn1d = [m for m in model.modules() if isinstance(m, nn.BatchNorm1d)]
    assert not bn1d  # the only bn layers here follow convs


def test_model_returns_logits_not_probabilities() -> None:
    model = create_model("c-mp-fc-s", (1, 8, 8), 3)
    out = model(torch.randn(4, 1, 8, 8) * 10)
    assert not torch.allclose(out.sum(dim=1), torch.ones(4))
