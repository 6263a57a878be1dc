"""The DeepMimic paper's architecture notation (Tables 1, 2 and 5).

    c-mp-c-mp-fc2-s          (c-bn-d)9-fc-bn-d-s          c:64x2-mp-fc:256-s

Symbols: ``c`` conv, ``mp`` 2x2 max-pool, ``ap`` 2x2 average pool, ``gap`` global average
pool, ``fc`` fully connected, ``bn`` batch norm, ``d`` dropout, ``s`` the softmax output
layer. ``θn`` (written ``c2``, ``c^2`` or ``(c-bn-d)9``) is n consecutive layers.

The paper gives layer types, not sizes, so these choices are ours:

* ``c`` is a ``kernel_size`` x ``kernel_size`` convolution with 'same' padding and ReLU.
  Channels start at ``conv_channels`` and double after each pooling layer, unless a
  sequence (one width per conv) or an inline width ``c:64`` is given.
* ``fc`` is a hidden fully connected layer with ReLU (``fc_units`` wide, or ``fc:256``).
* ``s`` is the classifier: a linear layer to ``num_classes``. The model returns logits;
  the softmax is applied by the losses and by evaluation. So ``fc2-s`` is two hidden
  layers plus the classifier.
* ``bn`` is BatchNorm2d after convs and BatchNorm1d after fully connected layers.
* ``d`` is Dropout(p=``dropout``).
* A flatten (or, with ``head="gap"``, a global average pool) is inserted before the first
  ``fc``/``s``. ``stride_every=k`` gives every k-th conv stride 2.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from deepmimic.errors import ModelSpecError

LAYER_KINDS = ("c", "mp", "ap", "gap", "fc", "bn", "d", "s")
_ATOM = re.compile(r"^(?P<kind>[a-z]+)(?::(?P<width>\d+))?(?:(?:\^|x)?(?P<count>\d+))?$")


@dataclass(frozen=True)
class LayerSpec:
    """One layer of a parsed notation; ``width`` is an explicit ``c:64`` / ``fc:256`` size."""

    kind: str
    width: int | None = None


def _split_top_level(text: str, notation: str) -> list[str]:
    """Split on '-' outside parentheses."""
    parts, depth, current = [], 0, []
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise ModelSpecError(f"notation '{notation}': unbalanced ')'")
        if ch == "-" and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    if depth != 0:
        raise ModelSpecError(f"notation '{notation}': unbalanced '('")
    parts.append("".join(current))
    return parts


def _parse(text: str, notation: str) -> list[LayerSpec]:
    layers: list[LayerSpec] = []
    for part in _split_top_level(text, notation):
        if not part:
            raise ModelSpecError(f"notation '{notation}': empty layer (doubled or trailing '-')")
        if part.startswith("("):
            close = part.rfind(")")
            inner, suffix = part[1:close], part[close + 1 :].lstrip("^")
            if not suffix.isdigit() or int(suffix) == 0:
                raise ModelSpecError(f"notation '{notation}': group '{part}' needs a positive repeat count after ')'")
            layers.extend(_parse(inner, notation) * int(suffix))
            continue
        match = _ATOM.match(part)
        if match is None:
            raise ModelSpecError(f"notation '{notation}': cannot read layer '{part}' (expected e.g. c, c2, c:64, c:64x2)")
        kind = match["kind"]
        if kind not in LAYER_KINDS:
            raise ModelSpecError(f"notation '{notation}': unknown layer '{kind}' (known: {', '.join(LAYER_KINDS)})")
        width = int(match["width"]) if match["width"] else None
        if width is not None and (kind not in ("c", "fc") or width == 0):
            raise ModelSpecError(f"notation '{notation}': a width ('{part}') is only allowed on c and fc, and must be > 0")
        count = int(match["count"]) if match["count"] else 1
        if count == 0:
            raise ModelSpecError(f"notation '{notation}': layer '{part}' repeated 0 times")
        layers.extend([LayerSpec(kind, width)] * count)
    return layers


def parse_notation(notation: str) -> list[LayerSpec]:
    """Expand a notation into a flat list of layers; errors name the notation and the problem."""
    text = notation.strip().replace(" ", "").replace("θ", "").lower()
    if not text:
        raise ModelSpecError("empty architecture notation")
    layers = _parse(text, notation)
    kinds = [layer.kind for layer in layers]
    if kinds[-1] != "s":
        raise ModelSpecError(f"notation '{notation}': must end with the output layer 's'")
    if kinds.count("s") != 1:
        raise ModelSpecError(f"notation '{notation}': 's' (the output layer) must appear exactly once, at the end")
    first_dense = next(i for i, k in enumerate(kinds) if k in ("fc", "s"))
    late = [k for k in kinds[first_dense:] if k in ("c", "mp", "ap", "gap")]
    if late:
        raise ModelSpecError(f"notation '{notation}': '{late[0]}' after a fully connected layer is not supported")
    return layers


def _widths(value: int | Sequence[int], count: int, what: str, notation: str) -> list[int] | None:
    if isinstance(value, int):
        return None
    values = list(value)
    if len(values) != count:
        raise ModelSpecError(f"notation '{notation}': {what} lists {len(values)} widths for {count} layers")
    return values


class NotationNet(nn.Module):
    """A CNN built from notation: ``features`` (convs/pools) then ``classifier``; returns logits."""

    def __init__(self, notation: str, features: nn.Sequential, classifier: nn.Sequential) -> None:
        super().__init__()
        self.notation = notation
        self.features = features
        self.classifier = classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))  # (B, C, H, W) -> (B, num_classes)


def build_from_notation(
    notation: str,
    in_shape: tuple[int, int, int],
    num_classes: int,
    *,
    conv_channels: int | Sequence[int] = 32,
    fc_units: int | Sequence[int] = 128,
    dropout: float = 0.25,
    kernel_size: int = 3,
    stride_every: int | None = None,
    head: str = "flatten",
) -> NotationNet:
    """Build the network a notation describes (see the module docstring for the choices)."""
    layers = parse_notation(notation)
    if head not in ("flatten", "gap"):
        raise ModelSpecError(f"head must be 'flatten' or 'gap', got '{head}'")
    if not 0 <= dropout < 1:
        raise ModelSpecError(f"dropout must lie in [0, 1), got {dropout}")
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ModelSpecError(f"kernel_size must be a positive odd number, got {kernel_size}")
    if num_classes < 1:
        raise ModelSpecError(f"num_classes must be positive, got {num_classes}")
    conv_list = _widths(conv_channels, sum(l.kind == "c" for l in layers), "conv_channels", notation)
    fc_list = _widths(fc_units, sum(l.kind == "fc" for l in layers), "fc_units", notation)
    channels, height, width = in_shape
    base = conv_channels if isinstance(conv_channels, int) else 0
    pools = n_conv = n_fc = 0
    features: list[nn.Module] = []
    classifier: list[nn.Module] = []
    flat: int | None = None  # features per sample once flattened
    for layer in layers:
        if layer.kind in ("fc", "s") and flat is None:
            if head == "gap" and height * width > 1:
                features.append(nn.AdaptiveAvgPool2d(1))
                height = width = 1
            classifier.append(nn.Flatten())
            flat = channels * height * width
        if layer.kind == "c":
            out = layer.width or (conv_list[n_conv] if conv_list else base * 2**pools)
            n_conv += 1
            stride = 2 if stride_every and n_conv % stride_every == 0 else 1
            features += [nn.Conv2d(channels, out, kernel_size, stride=stride, padding=kernel_size // 2), nn.ReLU(inplace=True)]
            channels = out
            if stride > 1:  # 'same' padding, stride 2: ceil(H / 2)
                height, width = (height + 1) // 2, (width + 1) // 2
        elif layer.kind in ("mp", "ap"):
            if height < 2 or width < 2:
                raise ModelSpecError(f"notation '{notation}': pooling shrinks a {height}x{width} map below 1x1 for input {in_shape}")
            features.append(nn.MaxPool2d(2) if layer.kind == "mp" else nn.AvgPool2d(2))
            height, width, pools = height // 2, width // 2, pools + 1
        elif layer.kind == "gap":
            features.append(nn.AdaptiveAvgPool2d(1))
            height = width = 1
        elif layer.kind == "bn":
            if flat is None:
                features.append(nn.BatchNorm2d(channels))
            else:
                classifier.append(nn.BatchNorm1d(flat))
        elif layer.kind == "d":
            (features if flat is None else classifier).append(nn.Dropout(dropout))
        elif layer.kind == "fc":
            assert flat is not None
            units = layer.width or (fc_list[n_fc] if fc_list else int(fc_units))  # type: ignore[arg-type]
            n_fc += 1
            classifier += [nn.Linear(flat, units), nn.ReLU(inplace=True)]
            flat = units
        else:  # "s": the classifier layer; logits out
            assert flat is not None
            classifier.append(nn.Linear(flat, num_classes))
    return NotationNet(notation, nn.Sequential(*features), nn.Sequential(*classifier))
