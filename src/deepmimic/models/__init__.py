"""The model zoo: the DeepMimic paper's notation (Tables 1, 2, 5), presets and a registry.

    create_model("cifar10-student-b")                      # a paper preset, defaults
    create_model("c2-mp-fc2-s", (3, 32, 32), 10)           # raw notation
    count_parameters(model), count_macs(model, (3, 32, 32)), describe_model(model, (3, 32, 32))

Every model maps (B, C, H, W) images to (B, num_classes) logits (no softmax inside).
"""

from deepmimic.models.notation import LayerSpec, NotationNet, build_from_notation, parse_notation
from deepmimic.models.presets import PRESETS, Preset, get_preset
from deepmimic.models.registry import create_model, list_presets, register_model
from deepmimic.models.stats import count_macs, count_parameters, describe_model

__all__ = [
    "PRESETS",
    "LayerSpec",
    "NotationNet",
    "Preset",
    "build_from_notation",
    "count_macs",
    "count_parameters",
    "create_model",
    "describe_model",
    "get_preset",
    "list_presets",
    "parse_notation",
    "register_model",
]
