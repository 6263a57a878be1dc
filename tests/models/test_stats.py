"""Parameter and MAC counts and the layer table."""

from __future__ import annotations

import torch
from torch import nn

from deepmimic.models import build_from_notation, count_macs, count_parameters, describe_model


def tiny() -> nn.Module:
    # c (1->2, 3x3) on 4x4, mp, fc 8->3, s 3->2
    return build_from_notation("c-mp-fc-s", (1, 4, 4), 2, conv_channels=2, fc_units=3)


def test_hand_computed_counts_with_batch_norm() -> None:
    # c: 2*(9+1) = 20 params, 2*4*4*9 = 288 MACs; bn(2): 4 params, 0 MACs;
    # fc 8->3: 27 params, 24 MACs; bn1d(3): 6 params; s 3->2: 8 params, 6 MACs.
    model = build_from_notation("c-bn-mp-fc-bn-s", (1, 4, 4), 2, conv_channels=2, fc_units=3)
    assert count_parameters(model) == 20 + 4 + 27 + 6 + 8
    assert count_macs(model, (1, 4, 4)) == 288 + 24 + 6


def test_stride_and_gap_macs() -> None:
    # c 1->2 stride 1 on 4x4: 288; c 2->2 stride 2 -> 2x2: 2*2*2*18 = 144; gap; s 2->3: 6
    model = build_from_notation("c2-s", (1, 4, 4), 3, conv_channels=2, stride_every=2, head="gap")
    assert count_macs(model, (1, 4, 4)) == 288 + 144 + 6


def test_counting_keeps_the_training_flag_and_parameters() -> None:
    model = tiny()
    before = [p.clone() for p in model.parameters()]
    model.train()
    count_macs(model, (1, 4, 4))
    describe_model(model, (1, 4, 4))
    assert model.training and all(m.training for m in model.modules())
    model.eval()
    count_macs(model, (1, 4, 4))
    assert not model.training
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert not any(m._forward_hooks for m in model.modules())  # hooks removed


def test_trainable_only() -> None:
    model = tiny()
    model.features[0].requires_grad_(False)  # freeze the conv's 20 parameters
    assert count_parameters(model) == 55
    assert count_parameters(model, trainable_only=True) == 35


def test_models_without_parameters_and_other_dtypes() -> None:
    assert count_macs(nn.Sequential(nn.Flatten()), (1, 2, 2)) == 0
    model = tiny().double()
    assert count_macs(model, (1, 4, 4)) == 318


def test_describe_model_lists_layers_and_totals() -> None:
    text = describe_model(tiny(), (1, 4, 4))
    lines = text.splitlines()
    assert lines[0].split() == ["layer", "type", "output", "params"]
    assert lines[1].split() == ["features.0", "Conv2d", "2x4x4", "20"]
    assert any(line.split() == ["classifier.3", "Linear", "2", "8"] for line in lines)
    assert lines[-1] == "total: 55 parameters, 318 MACs per image"
