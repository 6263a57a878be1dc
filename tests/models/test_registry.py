"""Presets of the paper's tables, the registry and model descriptions."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from deepmimic.errors import ModelSpecError
from deepmimic.models import PRESETS, count_macs, create_model, describe_model, list_presets, register_model


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_builds_and_returns_logits(name: str) -> None:
    preset = PRESETS[name]
    model = create_model(name)
    assert model.notation == preset.notation
    assert model(torch.zeros(2, *preset.in_shape)).shape == (2, preset.num_classes)


@pytest.mark.parametrize("dataset", ["mnist", "cifar10", "tinyimagenet"])
def test_students_are_cheaper_than_the_mentor(dataset: str) -> None:
    mentor = PRESETS[f"{dataset}-mentor"]
    mentor_macs = count_macs(create_model(mentor.name), mentor.in_shape)
    students = [p for p in PRESETS.values() if p.name.startswith(f"{dataset}-student") and not p.name.endswith("-a")]
    assert students
    for student in students:
        assert count_macs(create_model(student.name), student.in_shape) < mentor_macs
    student_a = create_model(f"{dataset}-student-a")
    assert student_a.notation == mentor.notation


def test_preset_defaults_are_overridable() -> None:
    model = create_model("mnist-mentor", (1, 32, 32), 7, fc_units=16)
    assert model(torch.zeros(1, 1, 32, 32)).shape == (1, 7)


def test_create_model_errors() -> None:
    with pytest.raises(ModelSpecError, match="unknown model option"):
        create_model("c-s", (1, 4, 4), 2, widht=3)
    with pytest.raises(ModelSpecError, match="needs in_shape and num_classes"):
        create_model("c-s")
    with pytest.raises(ModelSpecError, match="mnist-mentor"):
        create_model("mnist-mentor", colour=True)


def test_register_model_adds_a_name() -> None:
    def build(*, in_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
        return nn.Sequential(nn.Flatten(), nn.Linear(in_shape[0] * in_shape[1] * in_shape[2], num_classes))

    register_model("test-linear", build, in_shape=(1, 2, 2), num_classes=3, description="linear probe")
    assert create_model("test-linear")(torch.zeros(1, 1, 2, 2)).shape == (1, 3)
    assert any(row["name"] == "test-linear" and row["params"] == 15 for row in list_presets())
    with pytest.raises(ValueError):
        register_model("test-linear", build, in_shape=(1, 2, 2), num_classes=3)


def test_describe_model_lists_layers_and_totals() -> None:
    text = describe_model(create_model("c-mp-fc-s", (1, 4, 4), 2, conv_channels=2, fc_units=3), (1, 4, 4))
    assert "Conv2d" in text and "2x4x4" in text
    assert text.splitlines()[-1] == "total: 55 parameters, 318 MACs per image"
