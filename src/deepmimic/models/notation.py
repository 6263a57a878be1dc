"""The DeepMimic paper's architecture notation (DeepMimic paper, Tables 1, 2 and 5).

    c-mp-c-mp-fc2-s          (c-bn-d)9-fc-bn-d-s          c:64x2-mp-fc:256-s

Symbols: ``c`` conv, ``mp`` 2x2 max-pool, ``ap`` 2x2 average pool, ``gap`` global average
pool, ``fc`` fully connected, ``bn`` batch norm, ``d`` dropout, ``s`` the softmax output
layer. ``θn`` (written ``c2``, ``c^2``, ``c²`` or, for a group, ``(c-bn-d)9`` /
``(c-bn-d)^9``) is n consecutive layers. An explicit width is ``c:64`` or ``fc:256``, and
``c:64x2`` repeats it. Case and spaces are ignored.

The paper gives layer types, not sizes, so these choices are ours:

* ``c`` is a ``kernel_size`` x ``kernel_size`` convolution with 'same' padding and ReLU.
  Its width is, in order of precedence: an inline ``c:64``; the matching entry of a
  ``conv_channels`` sequence (one per conv, in order); else ``conv_channels`` doubled
  after each downsampling layer (``mp``, ``ap`` or a stride-2 conv), i.e. 32, then 64
  after the first pooling, and so on.
* ``stride_every=k`` gives every k-th conv (1-based count) stride 2, which halves the
  map (ceil). It is meant for deep stacks without pooling, like the Tiny ImageNet nets.
* ``fc`` is a hidden fully connected layer with ReLU, ``fc_units`` wide (an int for all,
  a sequence per layer, or inline ``fc:256``).
* ``s`` is the classifier: a linear layer to ``num_classes``. The model returns LOGITS;
  the softmax is applied by the losses and by evaluation. So ``fc2-s`` is two hidden
  layers plus the classifier.
* ``bn`` is BatchNorm2d after convs/pools and BatchNorm1d after fully connected layers.
* ``d`` is plain ``Dropout(p=dropout)`` (not Dropout2d), wherever it appears.
* No layer is added that the notation does not name, except the flatten inserted before
  the first ``fc``/``s`` (with ``head="gap"``, a global average pool, then the flatten).

Rules checked, each failing with a one-line :class:`ModelSpecError` that quotes the
notation and says what is wrong and where: non-empty; known symbols; balanced
parentheses with a positive count after ``)``; ``s`` exactly once and last; no conv or
pooling after a fully connected layer; pooling never shrinks the map below 1x1.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from deepmimic.errors import ModelSpecError

LAYER_KINDS = ("c", "mp", "ap", "gap", "fc", "bn", "d", "s")
_SPATIAL = ("c", "mp", "ap", "gap")  # layers that need a (C, H, W) map
_ATOM = re.compile(r"^(?P<kind>[a-z]+?)(?::(?P<width>\d+))?(?:(?:\^|x)?(?P<count>\d+))?$")
_GROUP_COUNT = re.compile(r"^(?:\^|x)?(?P<count>\d+)$")
_SUPERSCRIPTS = str.maketrans("⁰¹²³⁴⁵⁶⁷⁸⁹", "0123456789")
_HEADS = ("flatten", "gap")


@dataclass(frozen=True)
class LayerSpec:
    """One layer of a parsed notation.

    ``kind`` is one of :data:`LAYER_KINDS`; ``width`` is an explicit ``c:64`` / ``fc:256``
    size (None: the builder chooses it).
    """

    kind: str
    width: int | None = None


def _normalise(notation: str) -> str:
    """Lower case, no spaces, superscript digits as '^n', the paper's 'θ' dropped."""
    text = "".join(notation.split()).lower().replace("θ", "")
    return re.sub(r"[⁰¹²³⁴⁵⁶⁷⁸⁹]+", lambda m: "^" + m.group().translate(_SUPERSCRIPTS), text)


def _split_top_level(text: str, offset: int, notation: str) -> list[tuple[str, int]]:
    """Split on '-' outside parentheses; each part with its 1-based character position."""
    parts: list[tuple[str, int]] = []
    opened: list[int] = []  # 0-based indices of the '(' not closed yet
    start = 0
    for i, ch in enumerate(text):
        if ch == "(":
            opened.append(i)
        elif ch == ")":
            if not opened:
                raise ModelSpecError(f"notation '{notation}': unbalanced ')' at character {offset + i + 1}")
            opened.pop()
        elif ch == "-" and not opened:
            parts.append((text[start:i], offset + start + 1))
            start = i + 1
    if opened:
        raise ModelSpecError(
            f"notation '{notation}': unbalanced '(' at character {offset + opened[0] + 1} is never closed"
        )
    parts.append((text[start:], offset + start + 1))
    return parts


def _parse(text: str, offset: int, notation: str) -> list[LayerSpec]:
    """Expand ``text`` (which starts at 0-based ``offset`` of the normalised notation)."""
    layers: list[LayerSpec] = []
    for part, pos in _split_top_level(text, offset, notation):
        where = f"at character {pos}"
        if not part:
            raise ModelSpecError(f"notation '{notation}': empty layer {where} (doubled, leading or trailing '-')")
        if part.startswith("("):
            close = part.rfind(")")  # balanced, so this closes the group opened at `pos`
            inner, suffix = part[1:close], part[close + 1 :]
            group = _GROUP_COUNT.match(suffix)
            if group is None or int(group["count"]) == 0:
                raise ModelSpecError(
                    f"notation '{notation}': group '{part}' {where} needs a positive repeat count after ')', "
                    "e.g. '(c-bn-d)9'"
                )
            repeated = _parse(inner, pos, notation)
            _check_layer_count(len(layers) + len(repeated) * int(group["count"]), notation)
            layers.extend(repeated * int(group["count"]))
            continue
        match = _ATOM.match(part)
        if match is None:
            raise ModelSpecError(
                f"notation '{notation}': cannot read layer '{part}' {where} (expected e.g. c, c2, c^2, c:64, c:64x2)"
            )
        kind = match["kind"]
        if kind not in LAYER_KINDS:
            raise ModelSpecError(
                f"notation '{notation}': unknown layer '{kind}' {where} (known: {', '.join(LAYER_KINDS)})"
            )
        width = int(match["width"]) if match["width"] else None
        if match["width"] is not None and (kind not in ("c", "fc") or width == 0):
            raise ModelSpecError(
                f"notation '{notation}': bad width '{part}' {where}: "
                "widths are only allowed on c and fc, and must be > 0"
            )
        count = int(match["count"]) if match["count"] else 1
        if count == 0:
            raise ModelSpecError(f"notation '{notation}': layer '{part}' {where} is repeated 0 times")
        _check_layer_count(len(layers) + count, notation)
        layers.extend([LayerSpec(kind, width)] * count)
    return layers


MAX_LAYERS = 10_000  # far beyond any network here; keeps "c999999999-s" from expanding into memory


def _check_layer_count(count: int, notation: str) -> None:
    if count > MAX_LAYERS:
        raise ModelSpecError(
            f"notation '{notation}': expands to {count:,} layers, more than the limit of {MAX_LAYERS:,}"
        )


def parse_notation(notation: str) -> list[LayerSpec]:
    """Expand a notation into a flat list of layers (DeepMimic paper, Tables 1, 2 and 5).

    ``"(c-bn-d)9-fc-bn-d-s"`` gives 9 * 3 + 3 + 1 = 31 :class:`LayerSpec`; ``"c2"``,
    ``"c^2"`` and ``"c-c"`` are the same. Raises :class:`ModelSpecError` (one line, quoting
    the notation, saying what and where) for malformed text.
    """
    text = _normalise(notation)
    if not text:
        raise ModelSpecError(f"empty architecture notation '{notation}' (expected e.g. 'c-mp-fc2-s')")
    layers = _parse(text, 0, notation)
    kinds = [layer.kind for layer in layers]
    if "s" not in kinds or kinds[-1] != "s":
        raise ModelSpecError(f"notation '{notation}': must end with the output layer 's' (it ends with '{kinds[-1]}')")
    if kinds.count("s") != 1:
        first = kinds.index("s") + 1
        raise ModelSpecError(
            f"notation '{notation}': 's' (the output layer) must appear exactly once, at the end; "
            f"layer {first} of {len(kinds)} is also 's'"
        )
    first_dense = next(i for i, k in enumerate(kinds) if k in ("fc", "s"))
    for i in range(first_dense, len(kinds)):
        if kinds[i] in _SPATIAL:
            raise ModelSpecError(
                f"notation '{notation}': '{kinds[i]}' after a fully connected layer "
                f"(layer {i + 1} of {len(kinds)}) is not supported"
            )
    return layers


def _widths(value: int | Sequence[int], count: int, what: str, notation: str) -> list[int] | None:
    """A per-layer width list (checked), or None when ``value`` is one int for all layers."""
    if isinstance(value, int):
        if value < 1:
            raise ModelSpecError(f"notation '{notation}': {what} must be positive, got {value}")
        return None
    values = list(value)
    if len(values) != count:
        raise ModelSpecError(f"notation '{notation}': {what} lists {len(values)} widths for {count} layers")
    if not all(isinstance(v, int) and v > 0 for v in values):
        raise ModelSpecError(f"notation '{notation}': {what} widths must be positive integers, got {values}")
    return values


def _check_in_shape(in_shape: Sequence[int], notation: str) -> tuple[int, int, int]:
    shape = tuple(in_shape)
    if len(shape) != 3 or not all(isinstance(d, int) and d > 0 for d in shape):
        raise ModelSpecError(f"notation '{notation}': in_shape must be three positive ints (C, H, W), got {in_shape}")
    return shape  # type: ignore[return-value]


class NotationNet(nn.Module):
    """A CNN built from notation: ``features`` (convs/pools) then ``classifier``; returns logits.

    Attributes: ``notation`` (the text it was built from), ``in_shape`` (C, H, W) and
    ``num_classes``.
    """

    def __init__(
        self,
        notation: str,
        features: nn.Sequential,
        classifier: nn.Sequential,
        in_shape: tuple[int, int, int],
        num_classes: int,
    ) -> None:
        super().__init__()
        self.notation = notation
        self.in_shape = in_shape
        self.num_classes = num_classes
        self.features = features
        self.classifier = classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (B, C, H, W) -> features (B, C', H', W') -> classifier (B, num_classes) logits
        return self.classifier(self.features(x))


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
    """Build the network a notation describes (DeepMimic paper, Tables 1, 2 and 5).

    See the module docstring for how widths, strides, heads and each symbol are read.
    ``in_shape`` is one image (C, H, W); the result maps (B, C, H, W) to (B, num_classes)
    logits. Every parameter exists on return (sizes come from shape arithmetic, not lazy
    layers). Raises :class:`ModelSpecError` for bad notation or options.
    """
    layers = parse_notation(notation)
    shape = _check_in_shape(in_shape, notation)
    if head not in _HEADS:
        raise ModelSpecError(f"notation '{notation}': head must be one of {', '.join(_HEADS)}, got '{head}'")
    if not 0 <= dropout < 1:
        raise ModelSpecError(f"notation '{notation}': dropout must lie in [0, 1), got {dropout}")
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ModelSpecError(f"notation '{notation}': kernel_size must be a positive odd number, got {kernel_size}")
    if stride_every is not None and stride_every < 1:
        raise ModelSpecError(f"notation '{notation}': stride_every must be a positive int or None, got {stride_every}")
    if num_classes < 1:
        raise ModelSpecError(f"notation '{notation}': num_classes must be positive, got {num_classes}")
    conv_list = _widths(conv_channels, sum(layer.kind == "c" for layer in layers), "conv_channels", notation)
    fc_list = _widths(fc_units, sum(layer.kind == "fc" for layer in layers), "fc_units", notation)

    channels, height, width = shape  # the running map is (B, channels, height, width)
    downsamplings = n_conv = n_fc = 0
    features: list[nn.Module] = []
    classifier: list[nn.Module] = []
    flat: int | None = None  # features per sample once flattened: (B, flat)
    for index, layer in enumerate(layers, start=1):
        if layer.kind in ("fc", "s") and flat is None:
            if head == "gap" and height * width > 1:
                features.append(nn.AdaptiveAvgPool2d(1))  # (B, C, H, W) -> (B, C, 1, 1)
                height = width = 1
            classifier.append(nn.Flatten())  # (B, C, H, W) -> (B, C*H*W)
            flat = channels * height * width
        if layer.kind == "c":
            if layer.width is not None:
                out = layer.width
            elif conv_list is not None:
                out = conv_list[n_conv]
            else:
                out = int(conv_channels) * 2**downsamplings  # type: ignore[arg-type]
            n_conv += 1
            stride = 2 if stride_every and n_conv % stride_every == 0 else 1
            features += [
                nn.Conv2d(channels, out, kernel_size, stride=stride, padding=kernel_size // 2),
                nn.ReLU(inplace=True),
            ]
            channels = out
            if stride > 1:  # 'same' padding, stride 2: (H, W) -> (ceil(H/2), ceil(W/2))
                height, width, downsamplings = (height + 1) // 2, (width + 1) // 2, downsamplings + 1
        elif layer.kind in ("mp", "ap"):
            if height < 2 or width < 2:
                raise ModelSpecError(
                    f"notation '{notation}': pooling '{layer.kind}' (layer {index} of {len(layers)}) shrinks a "
                    f"{height}x{width} map below 1x1 for input {shape}"
                )
            features.append(nn.MaxPool2d(2) if layer.kind == "mp" else nn.AvgPool2d(2))  # (H, W) -> (H//2, W//2)
            height, width, downsamplings = height // 2, width // 2, downsamplings + 1
        elif layer.kind == "gap":
            features.append(nn.AdaptiveAvgPool2d(1))  # (B, C, H, W) -> (B, C, 1, 1)
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
            if layer.width is not None:
                units = layer.width
            elif fc_list is not None:
                units = fc_list[n_fc]
            else:
                units = int(fc_units)  # type: ignore[arg-type]
            n_fc += 1
            classifier += [nn.Linear(flat, units), nn.ReLU(inplace=True)]  # (B, flat) -> (B, units)
            flat = units
        else:  # "s": the classifier layer, (B, flat) -> (B, num_classes) logits
            assert flat is not None
            classifier.append(nn.Linear(flat, num_classes))
    return NotationNet(notation, nn.Sequential(*features), nn.Sequential(*classifier), shape, num_classes)
