"""The DeepMimic paper's Mentor and Student-A/B/C architectures as presets.

Notation from the DeepMimic paper, Tables 1 (MNIST), 2 (CIFAR-10) and 5 (Tiny ImageNet);
widths are ours (see :mod:`deepmimic.models.notation`): MNIST convs 32/64 and fc 128;
CIFAR-10 convs 32/64/128 and fc 256; Tiny ImageNet convs from 32 (doubling after each
stride-2 conv, every 3rd conv), a global-average-pool head, fc 256 and dropout 0.25.
Dropout appears only where the notation has ``d``. Student-A always has the mentor's
architecture; the ``-dropout`` mentors add dropout after each block, which the paper says
it "vastly used" for mentors (section 3.2) without placing it (our placement and rate).
Presets are plain data; :mod:`deepmimic.models.registry` registers them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from deepmimic.errors import ModelSpecError


@dataclass(frozen=True)
class Preset:
    """A named architecture: notation, default input (C, H, W) and classes, builder options
    (keyword arguments of :func:`~deepmimic.models.notation.build_from_notation`), the
    paper table it comes from and a one-line description."""

    name: str
    notation: str
    in_shape: tuple[int, int, int]
    num_classes: int
    options: dict[str, Any] = field(default_factory=dict)
    reference: str = ""
    description: str = ""


_MNIST = dict(in_shape=(1, 28, 28), num_classes=10, options={"conv_channels": 32, "fc_units": 128})
_CIFAR = dict(in_shape=(3, 32, 32), num_classes=10, options={"conv_channels": 32, "fc_units": 256})
_TINY = dict(
    in_shape=(3, 64, 64),
    num_classes=200,
    options={"conv_channels": 32, "fc_units": 256, "dropout": 0.25, "stride_every": 3, "head": "gap"},
)
_T1, _T2, _T5 = "DeepMimic Table 1", "DeepMimic Table 2", "DeepMimic Table 5"

PRESETS: dict[str, Preset] = {
    p.name: p
    for p in [
        Preset("mnist-mentor", "c-mp-c-mp-fc2-s", **_MNIST, reference=_T1, description="MNIST mentor"),
        Preset(
            "mnist-mentor-dropout",
            "c-mp-d-c-mp-d-fc-d-fc-d-s",
            in_shape=(1, 28, 28),
            num_classes=10,
            options={**_MNIST["options"], "dropout": 0.25},
            reference=_T1 + ", section 3.2",  # type: ignore[dict-item]
            description="MNIST mentor with dropout 0.25 after each block "
            "(the paper: dropout 'vastly used' for the mentor)",
        ),
        Preset(
            "mnist-student-a",
            "c-mp-c-mp-fc2-s",
            **_MNIST,
            reference=_T1,
            description="MNIST Student-A (mentor's architecture)",
        ),
        Preset(
            "mnist-student-b", "c-mp-fc2-s", **_MNIST, reference=_T1, description="MNIST Student-B (one conv block)"
        ),
        Preset("cifar10-mentor", "c2-mp-c2-mp-c2-mp-fc2-s", **_CIFAR, reference=_T2, description="CIFAR-10 mentor"),
        Preset(
            "cifar10-mentor-dropout",
            "c2-mp-d-c2-mp-d-c2-mp-d-fc-d-fc-d-s",
            in_shape=(3, 32, 32),
            num_classes=10,
            options={**_CIFAR["options"], "dropout": 0.25},
            reference=_T2 + ", section 3.2",  # type: ignore[dict-item]
            description="CIFAR-10 mentor with dropout 0.25 after each block "
            "(the paper: dropout 'vastly used' for the mentor)",
        ),
        Preset(
            "cifar10-student-a", "c2-mp-c2-mp-c2-mp-fc2-s", **_CIFAR, reference=_T2, description="CIFAR-10 Student-A"
        ),
        Preset("cifar10-student-b", "c2-mp-c-fc2-s", **_CIFAR, reference=_T2, description="CIFAR-10 Student-B"),
        Preset("cifar10-student-c", "c2-mp-fc2-s", **_CIFAR, reference=_T2, description="CIFAR-10 Student-C"),
        Preset(
            "cifar10-student-150k",
            "c:32x2-mp-c:64x2-mp-c:128-gap-s",
            **_CIFAR,
            reference="Imitation game, Tables 1-2",
            description="~150K-parameter CIFAR-10 student (the imitation game's size)",
        ),
        Preset(
            "cifar10-student-150k-bn",
            "(c:32-bn)2-mp-(c:64-bn)2-mp-c:128-bn-gap-s",
            **_CIFAR,
            reference="Imitation game, Tables 1-2",
            description="the ~150K student with batch norm after every conv (141K parameters); "
            "the paper gives no architecture, and without batch norm the student trains far slower",
        ),
        Preset(
            "tinyimagenet-mentor", "(c-bn-d)9-fc-bn-d-s", **_TINY, reference=_T5, description="Tiny ImageNet mentor"
        ),
        Preset(
            "tinyimagenet-student-a",
            "(c-bn-d)9-fc-bn-d-s",
            **_TINY,
            reference=_T5,
            description="Tiny ImageNet Student-A",
        ),
        Preset(
            "tinyimagenet-student-b",
            "(c-bn-d)6-fc-bn-d-s",
            **_TINY,
            reference=_T5,
            description="Tiny ImageNet Student-B",
        ),
        Preset(
            "tinyimagenet-student-c",
            "(c-bn-d)3-fc-bn-d-s",
            **_TINY,
            reference=_T5,
            description="Tiny ImageNet Student-C",
        ),
    ]
}


def get_preset(name: str) -> Preset:
    """The preset called ``name``; :class:`ModelSpecError` listing the known names if none."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ModelSpecError(f"unknown preset '{name}' (known: {', '.join(PRESETS)})") from None
