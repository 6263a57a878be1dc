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
