"""Presets of the paper's tables and the registry."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

from deepmimic.errors import ModelSpecError
from deepmimic.models import PRESETS, count_parameters, create_model, get_preset, list_presets, register_model

PAPER_PRESETS = {
    "mnist-mentor": ("c-mp-c-mp-fc2-s", "Table 1"),
    "mnist-student-a": ("c-mp-c-mp-fc2-s", "Table 1"),
    "mnist-student-b": ("c-mp-fc2-s", "Table 1"),
    "cifar10-mentor": ("c2-mp-c2-mp-c2-mp-fc2-s", "Table 2"),
    "cifar10-student-a": ("c2-mp-c2-mp-c2-mp-fc2-s", "Table 2"),
    "cifar10-student-b": ("c2-mp-c-fc2-s", "Table 2"),
    "cifar10-student-c": ("c2-mp-fc2-s", "Table 2"),
    "tinyimagenet-mentor": ("(c-bn-d)9-fc-bn-d-s", "Table 5"),
    "tinyimagenet-student-a": ("(c-bn-d)9-fc-bn-d-s", "Table 5"),
    "tinyimagenet-student-b": ("(c-bn-d)6-fc-bn-d-s", "Table 5"),
    "tinyimagenet-student-c": ("(c-bn-d)3-fc-bn-d-s", "Table 5"),
}


def _linear_probe(*, in_shape: tuple[int, int, int], num_classes: int, bias: bool = True) -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(in_shape[0] * in_shape[1] * in_shape[2], num_classes, bias=bias))


register_model("test-linear", _linear_probe, in_shape=(1, 2, 2), num_classes=3, description="linear probe")


@register_model("test-decorated", in_shape=(1, 3, 3), num_classes=2, description="decorated probe")
def _decorated(*, in_shape: tuple[int, int, int], num_classes: int, **options: Any) -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(in_shape[0] * in_shape[1] * in_shape[2], num_classes))


@pytest.fixture(scope="module")
def rows() -> dict[str, dict[str, Any]]:
    """list_presets() once for the module (it builds every registered model)."""
    return {row["name"]: row for row in list_presets()}


@pytest.mark.parametrize("name", sorted(PAPER_PRESETS))
def test_paper_presets_match_the_tables(name: str) -> None:
    preset = get_preset(name)
    notation, table = PAPER_PRESETS[name]
    assert preset.notation == notation and preset.reference == f"DeepMimic {table}" and preset.description


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_builds_and_returns_logits(name: str) -> None:
    preset = PRESETS[name]
    model = create_model(name)
    assert model.notation == preset.notation
    with torch.no_grad():  # (2, C, H, W) -> (2, num_classes)
        assert model(torch.zeros(2, *preset.in_shape)).shape == (2, preset.num_classes)


def test_preset_widths() -> None:
    def convs(name: str) -> list[int]:
        return [m.out_channels for m in create_model(name).modules() if isinstance(m, nn.Conv2d)]

    assert convs("mnist-mentor") == [32, 64]
    assert convs("cifar10-mentor") == [32, 32, 64, 64, 128, 128]
    assert convs("tinyimagenet-mentor") == [32] * 3 + [64] * 3 + [128] * 3
    assert convs("cifar10-student-150k-bn") == convs("cifar10-student-150k") == [32, 32, 64, 64, 128]
    bn = [m for m in create_model("cifar10-student-150k-bn").modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(bn) == 5 and 140_000 <= count_parameters(create_model("cifar10-student-150k-bn")) <= 150_000
    mnist_dropout = [m for m in create_model("mnist-mentor").modules() if isinstance(m, nn.Dropout)]
    assert not mnist_dropout  # no 'd' in Table 1's notation: no hidden dropout


@pytest.mark.parametrize("dataset", ["mnist", "cifar10", "tinyimagenet"])
def test_students_are_cheaper_than_the_mentor(rows: dict[str, dict[str, Any]], dataset: str) -> None:
    mentor = rows[f"{dataset}-mentor"]
    student_a = rows[f"{dataset}-student-a"]
    assert (student_a["notation"], student_a["params"], student_a["macs"]) == (
        mentor["notation"],
        mentor["params"],
        mentor["macs"],
    )
    students = [r for n, r in rows.items() if n.startswith(f"{dataset}-student") and not n.endswith("-a")]
    assert students
    for student in students:
        assert student["macs"] < mentor["macs"]
    if dataset == "tinyimagenet":  # GAP head: fewer parameters too (flatten heads can grow the first fc)
        assert rows["tinyimagenet-student-c"]["params"] < rows["tinyimagenet-student-b"]["params"] < mentor["params"]


def test_preset_defaults_are_overridable() -> None:
    model = create_model("mnist-mentor", (1, 32, 32), 7, fc_units=16)
    assert model(torch.zeros(1, 1, 32, 32)).shape == (1, 7)
    assert model.classifier[1].out_features == 16


def test_create_model_errors() -> None:
    with pytest.raises(ModelSpecError, match="notation 'c-s': unknown model option.*widht"):
        create_model("c-s", (1, 4, 4), 2, widht=3)
    with pytest.raises(ModelSpecError, match=r"needs in_shape and num_classes \(missing in_shape and num_classes"):
        create_model("c-s")
    with pytest.raises(ModelSpecError, match=r"missing num_classes"):
        create_model("c-s", (1, 4, 4))
    with pytest.raises(ModelSpecError, match="model 'mnist-mentor': unknown model option.*colour"):
        create_model("mnist-mentor", colour=True)
    with pytest.raises(ModelSpecError, match="model 'test-linear': unknown model option.*width.*known: bias"):
        create_model("test-linear", width=3)
    with pytest.raises(ModelSpecError, match="unknown layer 'mnist'"):  # a typo'd name reads as notation
        create_model("mnist-mentr", (1, 28, 28), 10)
    with pytest.raises(ModelSpecError, match="unknown preset 'nope'.*mnist-mentor"):
        get_preset("nope")


def test_register_model_adds_a_name(rows: dict[str, dict[str, Any]]) -> None:
    assert create_model("test-linear")(torch.zeros(1, 1, 2, 2)).shape == (1, 3)
    assert count_parameters(create_model("test-linear", bias=False)) == 12
    assert rows["test-linear"]["params"] == 15 and rows["test-linear"]["notation"] == "linear probe"
    assert rows["test-linear"]["macs"] == 12 and rows["test-linear"]["in_shape"] == (1, 2, 2)
    with pytest.raises(ValueError):
        register_model("test-linear", _linear_probe, in_shape=(1, 2, 2), num_classes=3)


def test_register_model_as_decorator(rows: dict[str, dict[str, Any]]) -> None:
    assert callable(_decorated)  # the decorator returns the function unchanged
    assert create_model("test-decorated", (1, 4, 4), 5, anything=1)(torch.zeros(2, 1, 4, 4)).shape == (2, 5)
    assert rows["test-decorated"]["params"] == 9 * 2 + 2


def test_list_presets_rows(rows: dict[str, dict[str, Any]]) -> None:
    assert set(PRESETS) <= set(rows)
    row = rows["cifar10-student-c"]
    assert row["notation"] == "c2-mp-fc2-s" and row["in_shape"] == (3, 32, 32) and row["num_classes"] == 10
    assert row["reference"] == "DeepMimic Table 2"
    assert row["params"] == count_parameters(create_model("cifar10-student-c"))
