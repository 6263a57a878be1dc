"""ResNeXt-29 for CIFAR of Xie et al. 2017, "Aggregated Residual Transformations for Deep
Neural Networks" (Sec. 5.3; the "C x Dd" templates, e.g. 16x64d).

A 3x3 conv with 64 channels (the stem), three stages of 3 bottleneck blocks
(conv1x1-BN-ReLU, grouped conv3x3 with ``cardinality`` groups-BN-ReLU, conv1x1-BN, shortcut,
ReLU), 29 = 3 x 3 x 3 + 2 layers. Stage i (0, 1, 2) has output width 256 * 2^i and
bottleneck width cardinality * base_width * 2^i (16x64d: 1024, 2048, 4096); strides 1, 2,
2. Shortcuts are identity, or a 1x1 conv + BN where the shape changes. Global average
pooling and a linear layer close. FEED (Park & Kwak 2019, Table 1) uses ResNeXt-29 16x64d
(68.1M parameters for CIFAR-100); Table 6 cites 8x64d (34.4M).

Attributes for feature hooks: ``stem``, ``layer1``, ``layer2``, ``layer3`` (nn.Sequential of
blocks), ``pool`` and ``fc``; ``model.feature_layer == "layer3"``, (B, 1024, 8, 8) for 32x32
input (with the default widen_factor 4).
"""

from __future__ import annotations

import torch
from torch import nn

from deepmimic.errors import ModelSpecError
from deepmimic.models.registry import register_model

FEATURE_LAYER = "layer3"  # the last feature map: (B, 256 * widen_factor, H/4, W/4) before pooling
_REFERENCE = "Xie et al. 2017, Aggregated Residual Transformations (ResNeXt-29 for CIFAR)"


class Bottleneck(nn.Module):
    """ResNeXt block (Xie et al. 2017, Fig. 3c): 1x1 reduce, grouped 3x3, 1x1 expand."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, cardinality: int, bottleneck: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, bottleneck, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(bottleneck)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(bottleneck, bottleneck, 3, stride, 1, groups=cardinality, bias=False)
        self.bn2 = nn.BatchNorm2d(bottleneck)
        self.relu2 = nn.ReLU()
        self.conv3 = nn.Conv2d(bottleneck, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.relu3 = nn.ReLU()
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False), nn.BatchNorm2d(out_channels)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu1(self.bn1(self.conv1(x)))  # (B, D, H, W)
        out = self.relu2(self.bn2(self.conv2(out)))  # (B, D, H/s, W/s), D = cardinality * group width
        out = self.bn3(self.conv3(out))  # (B, C_out, H/s, W/s)
        return self.relu3(out + self.shortcut(x))


class ResNeXt29(nn.Module):
    """ResNeXt-29 (cardinality x base_width d): (B, C, H, W) -> (B, num_classes) logits."""

    feature_layer = FEATURE_LAYER

    def __init__(
        self, cardinality: int, base_width: int, in_shape: tuple[int, int, int], num_classes: int, widen_factor: int = 4
    ) -> None:
        super().__init__()
        for what, value in (("cardinality", cardinality), ("base_width", base_width), ("widen_factor", widen_factor)):
            if not isinstance(value, int) or value < 1:
                raise ModelSpecError(f"ResNeXt-29 {what} must be a positive integer, got {value!r}")
        if num_classes < 1:
            raise ModelSpecError(f"ResNeXt-29 needs num_classes >= 1, got {num_classes}")
        self.cardinality, self.base_width = cardinality, base_width
        self.in_shape, self.num_classes = tuple(in_shape), num_classes
        widths = [64 * widen_factor * 2**i for i in range(3)]  # 256, 512, 1024
        self.stem = nn.Sequential(  # (B, C, H, W) -> (B, 64, H, W)
            nn.Conv2d(in_shape[0], 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU()
        )
        in_channels = 64
        for i, (out_channels, stride) in enumerate(zip(widths, (1, 2, 2))):
            bottleneck = cardinality * base_width * 2**i
            blocks = [Bottleneck(in_channels, out_channels, stride, cardinality, bottleneck)]
            blocks += [Bottleneck(out_channels, out_channels, 1, cardinality, bottleneck) for _ in range(2)]
            setattr(
                self, f"layer{i + 1}", nn.Sequential(*blocks)
            )  # layer1 (B, 256, H, W) ... layer3 (B, 1024, H/4, W/4)
            in_channels = out_channels
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())  # (B, 1024)
        self.fc = nn.Linear(in_channels, num_classes)  # (B, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer3(self.layer2(self.layer1(self.stem(x))))  # (B, 1024, H/4, W/4)
        return self.fc(self.pool(x))  # (B, num_classes)


def resnext29(
    cardinality: int,
    base_width: int,
    *,
    in_shape: tuple[int, int, int] = (3, 32, 32),
    num_classes: int = 10,
    widen_factor: int = 4,
) -> ResNeXt29:
    """ResNeXt-29 ``cardinality`` x ``base_width``d of Xie et al. 2017 (e.g. 16, 64 for
    16x64d); stage outputs 64 * widen_factor * (1, 2, 4). Bad sizes raise :class:`ModelSpecError`."""
    return ResNeXt29(cardinality, base_width, in_shape, num_classes, widen_factor=widen_factor)


def _register(cardinality: int, base_width: int) -> None:
    name = f"resnext29_{cardinality}x{base_width}d"

    def build(*, in_shape: tuple[int, int, int], num_classes: int, widen_factor: int = 4) -> nn.Module:
        return resnext29(cardinality, base_width, in_shape=in_shape, num_classes=num_classes, widen_factor=widen_factor)

    build.__name__ = name
    register_model(
        name,
        build,
        in_shape=(3, 32, 32),
        num_classes=10,
        description=f"ResNeXt-29 {cardinality}x{base_width}d for CIFAR",
        reference=_REFERENCE,
    )


for _cardinality, _base_width in ((16, 64), (8, 64), (2, 64)):
    _register(_cardinality, _base_width)
