"""Wide ResNets of Zagoruyko & Komodakis 2016, "Wide Residual Networks" (WRN-depth-k).

depth = 6n + 4: a 3x3 conv with 16 channels (the stem), three stages of n pre-activation
blocks (BN-ReLU-conv3x3-BN-ReLU-dropout-conv3x3) with 16k, 32k and 64k channels (stride 1,
2, 2), a final BN-ReLU, global average pooling and a linear layer. Where a block changes
the shape, its shortcut is a 1x1 conv of the block's activated input (no BN), as in the
authors' code. FEED (Park & Kwak 2019, Table 1) uses WRN-28-10 (36.5M parameters for
CIFAR-100).

Attributes for feature hooks: ``stem``, ``layer1``, ``layer2``, ``layer3`` (nn.Sequential of
blocks), ``final`` (the last BN + ReLU), ``pool`` and ``fc``. With pre-activation blocks the
stages' outputs are not normalized, so the last feature map is ``final``'s output:
``model.feature_layer == "final"``, (B, 64k, 8, 8) for 32x32 input.
"""

from __future__ import annotations

import torch
from torch import nn

from deepmimic.errors import ModelSpecError
from deepmimic.models.registry import register_model

FEATURE_LAYER = "final"  # the last feature map, after the final BN + ReLU: (B, 64k, H/4, W/4)
_REFERENCE = "Zagoruyko & Komodakis 2016, Wide Residual Networks"


class PreActBlock(nn.Module):
    """Pre-activation basic block with optional dropout between the two 3x3 convs."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, dropout: float) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.relu1 = nn.ReLU()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.relu2 = nn.ReLU()
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.equal = stride == 1 and in_channels == out_channels
        self.shortcut = nn.Identity() if self.equal else nn.Conv2d(in_channels, out_channels, 1, stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        o = self.relu1(self.bn1(x))  # (B, C_in, H, W)
        out = self.conv1(o)  # (B, C_out, H/s, W/s)
        out = self.conv2(self.dropout(self.relu2(self.bn2(out))))
        return out + (x if self.equal else self.shortcut(o))


class WideResNet(nn.Module):
    """WRN-depth-k: (B, C, H, W) -> (B, num_classes) logits."""

    feature_layer = FEATURE_LAYER

    def __init__(
        self, depth: int, width: int, in_shape: tuple[int, int, int], num_classes: int, dropout: float = 0.0
    ) -> None:
        super().__init__()
        if not isinstance(depth, int) or depth < 10 or (depth - 4) % 6:
            raise ModelSpecError(f"Wide ResNet depth must be 6n+4 with n >= 1 (10, 16, 22, 28, 40, ...), got {depth}")
        if not isinstance(width, int) or width < 1 or num_classes < 1:
            raise ModelSpecError(
                f"Wide ResNet needs width (k) >= 1 and num_classes >= 1, got {width} and {num_classes}"
            )
        if not 0.0 <= dropout < 1.0:
            raise ModelSpecError(f"Wide ResNet dropout must be in [0, 1), got {dropout}")
        n = (depth - 4) // 6
        c1, c2, c3 = 16 * width, 32 * width, 64 * width
        self.depth, self.width, self.in_shape, self.num_classes = depth, width, tuple(in_shape), num_classes
        self.stem = nn.Conv2d(in_shape[0], 16, 3, 1, 1, bias=False)  # (B, 16, H, W)
        self.layer1 = self._stage(16, c1, n, 1, dropout)  # (B, 16k, H, W)
        self.layer2 = self._stage(c1, c2, n, 2, dropout)  # (B, 32k, H/2, W/2)
        self.layer3 = self._stage(c2, c3, n, 2, dropout)  # (B, 64k, H/4, W/4)
        self.final = nn.Sequential(nn.BatchNorm2d(c3), nn.ReLU())  # (B, 64k, H/4, W/4): the last feature map
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())  # (B, 64k)
        self.fc = nn.Linear(c3, num_classes)  # (B, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    @staticmethod
    def _stage(in_channels: int, out_channels: int, blocks: int, stride: int, dropout: float) -> nn.Sequential:
        layers = [PreActBlock(in_channels, out_channels, stride, dropout)]
        layers += [PreActBlock(out_channels, out_channels, 1, dropout) for _ in range(blocks - 1)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer3(self.layer2(self.layer1(self.stem(x))))  # (B, 64k, H/4, W/4)
        return self.fc(self.pool(self.final(x)))  # (B, num_classes)


def wide_resnet(
    depth: int, width: int, *, in_shape: tuple[int, int, int] = (3, 32, 32), num_classes: int = 10, dropout: float = 0.0
) -> WideResNet:
    """WRN-``depth``-``width`` (depth 6n+4, widening factor k = ``width``) of Zagoruyko &
    Komodakis 2016; ``dropout`` between each block's convs (0.3 in the paper's dropout runs).
    A bad depth or width raises :class:`ModelSpecError`."""
    return WideResNet(depth, width, in_shape, num_classes, dropout=dropout)


def _register(depth: int, width: int) -> None:
    def build(*, in_shape: tuple[int, int, int], num_classes: int, dropout: float = 0.0) -> nn.Module:
        return wide_resnet(depth, width, in_shape=in_shape, num_classes=num_classes, dropout=dropout)

    build.__name__ = f"wrn{depth}_{width}"
    register_model(
        f"wrn{depth}_{width}",
        build,
        in_shape=(3, 32, 32),
        num_classes=10,
        description=f"WRN-{depth}-{width} (pre-activation Wide ResNet)",
        reference=_REFERENCE,
    )


for _depth, _width in ((16, 2), (40, 2), (28, 10)):
    _register(_depth, _width)
