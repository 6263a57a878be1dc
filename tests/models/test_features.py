"""Feature capture by module name (forward hooks), layer tables, the last feature layer."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from deepmimic.errors import ModelSpecError
from deepmimic.models import (
    FeatureCapture,
    create_model,
    format_layer_table,
    last_feature_layer,
    layer_shapes,
    resnext29,
    wide_resnet,
)

ZOO = {  # builder, the layers to hook and their (C, H, W) outputs for a 32x32 image
    "resnet20": (lambda: create_model("resnet20"), {"layer1": (16, 32, 32), "layer3": (64, 8, 8), "pool": (64,)}),
    "wrn16_2": (lambda: create_model("wrn16_2"), {"layer2": (64, 16, 16), "layer3": (128, 8, 8), "final": (128, 8, 8)}),
    "resnext29_2x4d": (lambda: resnext29(2, 4), {"stem": (64, 32, 32), "layer3": (1024, 8, 8), "fc": (10,)}),
}


@pytest.mark.parametrize("name", sorted(ZOO))
def test_hooks_capture_expected_shapes_on_the_zoo(name: str) -> None:
    build, expected = ZOO[name]
    model = build()
    with FeatureCapture(model, list(expected)) as cap:
        model(torch.randn(2, 3, 32, 32))
    assert {n: tuple(cap[n].shape) for n in expected} == {n: (2, *s) for n, s in expected.items()}
    assert last_feature_layer(model) == model.feature_layer


def test_hooks_on_a_notation_preset() -> None:
    model = create_model("mnist-mentor")
    with FeatureCapture(model, "features") as cap:
        model(torch.randn(3, 1, 28, 28))
    assert cap["features"].shape == (3, 64, 7, 7)
    assert last_feature_layer(model) == "features"
    # gap head: the last map is the layer before the global pooling, not the pooled (C, 1, 1)
    gap = create_model("cifar10-student-150k")
    name = last_feature_layer(gap)
    assert name.startswith("features.") and isinstance(gap.get_submodule(name), nn.ReLU)


def test_captured_features_carry_gradients_and_hooks_go_away() -> None:
    torch.manual_seed(0)
    model = create_model("resnet20")
    with FeatureCapture(model, ["layer3"]) as cap:
        logits = model(torch.randn(2, 3, 32, 32))
        assert cap.active and cap["layer3"].requires_grad
        cap["layer3"].pow(2).mean().backward()  # a feature-level loss alone
    grad = model.stem[0].weight.grad
    assert grad is not None and grad.abs().sum() > 0
    assert model.fc.weight.grad is None  # the head is not on the feature path
    assert logits.shape == (2, 10)
    assert not cap.active and not model.layer3._forward_hooks
    cap.clear()
    model(torch.randn(1, 3, 32, 32))
    assert cap.captured == {}  # removed hooks no longer record
    with pytest.raises(KeyError, match="no output yet"):
        cap["layer3"]


def test_detach_for_a_teacher() -> None:
    model = wide_resnet(10, 1)
    with FeatureCapture(model, ["final"], detach=True) as cap:
        model(torch.randn(2, 3, 16, 16))
    assert cap["final"].shape == (2, 64, 4, 4) and not cap["final"].requires_grad


def test_unknown_name_suggests_close_ones() -> None:
    model = create_model("resnet20")
    with pytest.raises(ModelSpecError, match=r"no module named 'layer4' \(closest: .*layer1") as info:
        FeatureCapture(model, ["layer3", "layer4"])
    assert "\n" not in str(info.value)
    assert not model.layer3._forward_hooks  # nothing hooked when a name is bad
    with pytest.raises(ModelSpecError, match="top-level modules: stem, layer1"):
        FeatureCapture(model, ["zzzz"])


class _Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2))
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(0.5), nn.Linear(4 * 4 * 4, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def test_layer_shapes_and_table() -> None:
    model = _Tiny().train()
    rows = layer_shapes(model, (1, 8, 8))
    assert model.training  # the flag is restored
    assert rows[:2] == [("features", "Sequential", (4, 4, 4), 48), ("features.0", "Conv2d", (4, 8, 8), 40)]
    assert [r[0] for r in rows] == [
        "features",
        *(f"features.{i}" for i in range(4)),
        "head",
        *(f"head.{i}" for i in range(3)),
    ]
    assert rows[-1] == ("head.2", "Linear", (3,), 195)
    table = format_layer_table(rows)
    lines = table.splitlines()
    assert lines[0].split() == ["layer", "type", "output", "params"] and len(lines) == len(rows) + 1
    assert lines[1].split() == ["features", "Sequential", "4x4x4", "48"]
    assert "  features.0" in lines[2] and "4x8x8" in lines[2]
    assert last_feature_layer(model, (1, 8, 8)) == "features"
    with pytest.raises(ModelSpecError, match="pass in_shape"):
        last_feature_layer(model)
    with pytest.raises(ModelSpecError, match="no module with a 4-D"):
        last_feature_layer(nn.Sequential(nn.Flatten(), nn.Linear(4, 2)), (1, 2, 2))


def test_last_feature_layer_without_declaration_finds_the_stage() -> None:
    model = create_model("wrn16_2")
    model.feature_layer = None  # the dry-run fallback: the last 4-D output before pooling
    assert last_feature_layer(model, (3, 32, 32)) == "final"
    rows = {r[0]: r for r in layer_shapes(model, (3, 32, 32))}
    assert rows["layer3"][2] == (128, 8, 8) and rows["pool"][2] == (128,)
