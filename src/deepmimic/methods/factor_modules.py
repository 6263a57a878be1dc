"""Paraphraser, translator and the factor-transfer loss (Kim et al., 2018; FEED paper eqs. 1-3)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _conv_block(in_ch: int, out_ch: int) -> list[nn.Module]:
    return [nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=False), nn.BatchNorm2d(out_ch), nn.LeakyReLU(0.1)]


def _deconv_block(in_ch: int, out_ch: int) -> list[nn.Module]:
    return [nn.ConvTranspose2d(in_ch, out_ch, 3, padding=1, bias=False), nn.BatchNorm2d(out_ch), nn.LeakyReLU(0.1)]


def factor_channels(channels: int, rate: float) -> int:
    """Channels of a factor for a C-channel feature map at paraphrase rate k (at least 1)."""
    return max(1, int(round(channels * rate)))


class Paraphraser(nn.Module):
    """Autoencoder on the teacher's feature map (FEED eq. 1): 3 convs down to C*k channels, 3 transposed convs back.

    Spatial size is kept (3x3, stride 1, padding 1); ``encode`` gives the teacher factor F_T.
    """

    def __init__(self, channels: int, rate: float = 0.5) -> None:
        super().__init__()
        mid = factor_channels(channels, rate)
        self.encoder = nn.Sequential(
            *_conv_block(channels, channels), *_conv_block(channels, mid), *_conv_block(mid, mid)
        )
        self.decoder = nn.Sequential(
            *_deconv_block(mid, mid), *_deconv_block(mid, channels), *_deconv_block(channels, channels)
        )

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)  # (B, C, H, W) -> (B, C*k, H, W)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))  # reconstruction, (B, C, H, W)

    def reconstruction_loss(self, x: torch.Tensor) -> torch.Tensor:
        """L_rec = ||x - P(x)||^2, averaged over elements (FEED eq. 1)."""
        return F.mse_loss(self(x), x)


class Translator(nn.Module):
    """3 conv layers from the student's feature map (C_s channels) to a factor of ``out_channels``.

    When the student map's spatial size differs from the target's, the factor is average-pooled
    to the target size.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            *_conv_block(in_channels, in_channels),
            *_conv_block(in_channels, out_channels),
            *_conv_block(out_channels, out_channels),
        )

    def forward(self, x: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:
        factor = self.net(x)
        if size is not None and tuple(factor.shape[-2:]) != tuple(size):
            factor = F.adaptive_avg_pool2d(factor, size)
        return factor


REDUCTIONS = ("mean", "sum")


def factor_transfer_loss(
    teacher_factor: torch.Tensor, student_factor: torch.Tensor, p: int = 1, reduction: str = "mean"
) -> torch.Tensor:
    """|| F_T/||F_T||_2 - F_S/||F_S||_2 ||_p^p (FEED eq. 3), averaged over the batch.

    Both factors (B, C, H, W) are flattened per sample and L2-normalised. ``reduction``:

    * ``"sum"``: eq. 3 literally, the p-norm^p summed over each sample's factor.
    * ``"mean"`` (default): the same divided by the factor size C*H*W (an element mean).

    The paper's beta (500 for ResNets, 2,000 for wide nets) is meant for the element mean:
    with ``"sum"`` and beta = 500 a ResNet-20 factor of 64x8x8 gives an FT term of about
    2.7e4 against a cross-entropy near 2, and the student ends far below one trained from
    scratch (measured: 34.0% vs 48.5-54.1% on our CPU-scale CIFAR-10, docs/results/feed-cifar10.md).
    To use ``"sum"``, divide beta by C*H*W.
    """
    # float32 whatever autocast chose for the convolutions: the norms of C*H*W-element
    # factors lose their small differences in bf16.
    t = F.normalize(teacher_factor.flatten(1).float(), dim=1)
    s = F.normalize(student_factor.flatten(1).float(), dim=1)
    per_sample = (t - s).abs().pow(p).sum(dim=1)  # (B,)
    if reduction == "mean":
        per_sample = per_sample / t.shape[1]
    return per_sample.mean()
