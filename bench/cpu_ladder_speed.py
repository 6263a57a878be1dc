"""Training images/s of the CIFAR-10 ladder models with ``channels_last`` off and on (issue 13, item 2).

For each model (mentor with dropout, Students A/B/C) the engine trains a fresh copy of the
same initial weights for ``--epochs`` epochs in each memory format; rounds alternate the two
formats so that drift in machine load hits both equally. Prints the median images/s of the
epochs after the first, per format, and the ratio channels_last / contiguous: the numbers
``channels_last: auto`` is decided by on the CPU (docs/scaling.md).

    python bench/cpu_ladder_speed.py --root ../shared/data/cifar-10-batches-bin \\
        [--subset 2000] [--epochs 3] [--rounds 2]
"""

from __future__ import annotations

import argparse
import copy
import statistics

import torch

from deepmimic.data import load_dataset
from deepmimic.data.batches import Normalizer, TrainingSet
from deepmimic.data.splits import stratified_subset
from deepmimic.engine import TrainSettings, fit
from deepmimic.environment import describe_environment
from deepmimic.methods.registry import create_method
from deepmimic.models import create_model

MODELS = ("cifar10-mentor-dropout", "cifar10-student-a", "cifar10-student-b", "cifar10-student-c")


def rate(model: torch.nn.Module, train: TrainingSet, norm: Normalizer, epochs: int, channels_last: bool) -> float:
    """Median images/s of epochs 2.. of one engine run (fp32, batch 64, SGD at a constant lr)."""
    settings = TrainSettings(
        epochs=epochs,
        batch_size=64,
        lr=0.01,
        schedule="constant",
        device="cpu",
        precision="fp32",
        channels_last=channels_last,
    )
    result = fit(
        create_method("supervised", copy.deepcopy(model)), train, norm, settings, progress=False, label="bench"
    )
    return statistics.median(r["images_per_s"] for r in result.history[1:])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", required=True, help="the CIFAR-10 folder (binary or python version)")
    parser.add_argument("--subset", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    data = stratified_subset(load_dataset("cifar10", args.root).train, args.subset, 0)
    norm = Normalizer.fit(data.images)
    train = TrainingSet(data.images, {"labels": data.labels})
    print(f"data=cifar10 ({len(train)} images) epochs={args.epochs} (first not counted) rounds={args.rounds}")
    print(f"environment: {describe_environment(torch.device('cpu'))}")
    print("| model | contiguous images/s | channels_last images/s | x |")
    print("| --- | ---: | ---: | ---: |")
    for name in MODELS:
        torch.manual_seed(0)
        model = create_model(name, data.in_shape, data.num_classes)
        plain, last = [], []
        for _ in range(args.rounds):
            plain.append(rate(model, train, norm, args.epochs, channels_last=False))
            last.append(rate(model, train, norm, args.epochs, channels_last=True))
        a, b = statistics.median(plain), statistics.median(last)
        print(f"| {name} | {a:.0f} | {b:.0f} | {b / a:.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
