"""The model zoo: the paper's notation, presets and a registry."""

from deepmimic.models.notation import LayerSpec, NotationNet, build_from_notation, parse_notation
from deepmimic.models.presets import PRESETS, Preset
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
    "list_presets",
    "parse_notation",
    "register_model",
]
