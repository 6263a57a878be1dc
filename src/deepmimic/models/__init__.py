"""The model zoo: the DeepMimic paper's notation (Tables 1, 2, 5), presets and a registry.

    create_model("cifar10-student-b")                      # a paper preset, defaults
    create_model("c2-mp-fc2-s", (3, 32, 32), 10)           # raw notation
    create_model("resnet56", num_classes=100)              # CIFAR zoo: resnet*, wrn*, resnext29_*
    count_parameters(model), count_macs(model, (3, 32, 32)), describe_model(model, (3, 32, 32))

Every model maps (B, C, H, W) images to (B, num_classes) logits (no softmax inside).
"""

# CIFAR model zoo (FEED paper); importing registers resnet20..110, wrn*, resnext29_* by name.
from deepmimic.models.cifar_resnet import CifarResNet, cifar_resnet  # noqa: E402
from deepmimic.models.features import FeatureCapture, format_layer_table, last_feature_layer, layer_shapes  # noqa: E402
from deepmimic.models.notation import LayerSpec, NotationNet, build_from_notation, parse_notation
from deepmimic.models.presets import PRESETS, Preset, get_preset
from deepmimic.models.registry import create_model, list_presets, register_model
from deepmimic.models.resnext import ResNeXt29, resnext29  # noqa: E402
from deepmimic.models.stats import count_macs, count_parameters, describe_model
from deepmimic.models.wide_resnet import WideResNet, wide_resnet  # noqa: E402

__all__ = [
    "PRESETS",
    "CifarResNet",
    "FeatureCapture",
    "LayerSpec",
    "NotationNet",
    "Preset",
    "ResNeXt29",
    "WideResNet",
    "build_from_notation",
    "cifar_resnet",
    "count_macs",
    "count_parameters",
    "create_model",
    "describe_model",
    "format_layer_table",
    "get_preset",
    "last_feature_layer",
    "layer_shapes",
    "list_presets",
    "parse_notation",
    "register_model",
    "resnext29",
    "wide_resnet",
]
