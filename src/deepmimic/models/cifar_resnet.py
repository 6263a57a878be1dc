"""CIFAR ResNets of He et al. 2016, "Deep Residual Learning for Image Recognition", Sec. 4.2.

ResNet-depth, depth = 6n + 2: a 3x3 conv with 16 channels (the stem), three stages of n
BasicBlocks with 16, 32 and 64 channels (the 2nd and 3rd start with a stride-2 block, so a
32x32 image gives 32x32, 16x16, 8x8 maps), global average pooling and a linear layer.
FEED (Park & Kwak 2019, Table 1) uses ResNet-56 (0.85M parameters for CIFAR-100) and
ResNet-110 (1.73M) as teachers and students.

Shortcuts: option A (the paper's CIFAR choice and the default) is the identity, with the
map subsampled and the new channels zero-padded where a stage widens, so the shortcuts add
no parameters; that gives the published counts (ResNet-56 859K, ResNet-110 1.74M for 100
classes). Option B is a 1x1 conv + BN projection where the shape changes (+2.8K parameters).

Attributes for feature hooks: ``stem``, ``layer1``, ``layer2``, ``layer3`` (nn.Sequential of
blocks), ``pool`` (global average pool + flatten) and ``fc``. ``model.feature_layer`` names
the module whose output is the last feature map: ``"layer3"``, (B, 64, 8, 8) for 32x32 input.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from deepmimic.errors import ModelSpecError
from deepmimic.models.registry import register_model

FEATURE_LAYER = "layer3"  # the last feature map, (B, 4 * width, H/4, W/4), before pooling
_REFERENCE = "He et al. 2016, Deep Residual Learning (CIFAR ResNets, Sec. 4.2)"


class PadShortcut(nn.Module):
    """Option-A shortcut: subsample by ``stride`` and zero-pad the channels (no parameters)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        self.pad_before = (out_channels - in_channels) // 2
        self.pad_after = out_channels - in_channels - self.pad_before

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, :: self.stride, :: self.stride]  # (B, C_in, H/s, W/s)
        return F.pad(x, (0, 0, 0, 0, self.pad_before, self.pad_after))  # (B, C_out, H/s, W/s)


class BasicBlock(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN, plus the shortcut, then ReLU (He et al. 2016, Fig. 2)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, shortcut: str) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.relu2 = nn.ReLU()
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            if shortcut == "A":
                self.shortcut = PadShortcut(in_channels, out_channels, stride)
            else:
                self.shortcut = nn.Sequential(
                    nn.Conv2d(in_channels, out_channels, 1, stride, bias=False), nn.BatchNorm2d(out_channels)
                )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu1(self.bn1(self.conv1(x)))  # (B, C_out, H/s, W/s)
        out = self.bn2(self.conv2(out))
        return self.relu2(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """ResNet-depth for small images: (B, C, H, W) -> (B, num_classes) logits."""

    feature_layer = FEATURE_LAYER

    def __init__(
        self, depth: int, in_shape: tuple[int, int, int], num_classes: int, width: int = 16, shortcut: str = "A"
    ) -> None:
        super().__init__()
        if not isinstance(depth, int) or depth < 8 or (depth - 2) % 6:
            raise ModelSpecError(
                f"CIFAR ResNet depth must be 6n+2 with n >= 1 (8, 14, 20, 32, 44, 56, 110, ...), got {depth}"
            )
        if shortcut not in ("A", "B"):
            raise ModelSpecError(
                f"CIFAR ResNet shortcut must be 'A' (zero-pad identity) or 'B' (1x1 conv), got {shortcut!r}"
            )
        if width < 1 or num_classes < 1:
            raise ModelSpecError(f"CIFAR ResNet needs width >= 1 and num_classes >= 1, got {width} and {num_classes}")
        n = (depth - 2) // 6
        self.depth, self.in_shape, self.num_classes = depth, tuple(in_shape), num_classes
        self.stem = nn.Sequential(  # (B, C, H, W) -> (B, w, H, W)
            nn.Conv2d(in_shape[0], width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU()
        )
        self.layer1 = self._stage(width, width, n, 1, shortcut)  # (B, w, H, W)
        self.layer2 = self._stage(width, 2 * width, n, 2, shortcut)  # (B, 2w, H/2, W/2)
        self.layer3 = self._stage(2 * width, 4 * width, n, 2, shortcut)  # (B, 4w, H/4, W/4)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())  # (B, 4w)
        self.fc = nn.Linear(4 * width, num_classes)  # (B, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    @staticmethod
    def _stage(in_channels: int, out_channels: int, blocks: int, stride: int, shortcut: str) -> nn.Sequential:
        layers = [BasicBlock(in_channels, out_channels, stride, shortcut)]
        layers += [BasicBlock(out_channels, out_channels, 1, shortcut) for _ in range(blocks - 1)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer3(self.layer2(self.layer1(self.stem(x))))  # (B, 4w, H/4, W/4)
        return self.fc(self.pool(x))  # (B, num_classes)


def cifar_resnet(
    depth: int,
    *,
    in_shape: tuple[int, int, int] = (3, 32, 32),
    num_classes: int = 10,
    width: int = 16,
    shortcut: str = "A",
) -> CifarResNet:
    """ResNet-``depth`` (6n+2) of He et al. 2016 for CIFAR; ``width`` is the first stage's
    channels (16 in the paper); ``shortcut`` "A" (zero-pad identity) or "B" (1x1 conv + BN).
    A bad depth raises :class:`ModelSpecError`."""
    return CifarResNet(depth, in_shape, num_classes, width=width, shortcut=shortcut)


def _register(depth: int) -> None:
    def build(*, in_shape: tuple[int, int, int], num_classes: int, width: int = 16, shortcut: str = "A") -> nn.Module:
        return cifar_resnet(depth, in_shape=in_shape, num_classes=num_classes, width=width, shortcut=shortcut)

    build.__name__ = f"resnet{depth}"
    register_model(
        f"resnet{depth}",
        build,
        in_shape=(3, 32, 32),
        num_classes=10,
        description=f"ResNet-{depth} for CIFAR (16/32/64 channels, option-A shortcuts)",
        reference=_REFERENCE,
    )


for _depth in (20, 32, 56, 110):
    _register(_depth)
