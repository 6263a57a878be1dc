"""Training throughput with the engine's speed switches on and off (images/s).

Trains the same model through the engine for a few epochs in each setting, one after the
other in one process, and prints the median images/s of the epochs after the first
(warm-up, and compilation when ``compile`` is on) with the ratio to the plain float32
setting. Settings: fp32 (the reference), bf16 autocast, channels_last, bf16 +
channels_last, and each of those with ``compile``. On CUDA the data live on the GPU
(``data_on_device``); on a CPU the bf16 rows measure CPU autocast, which few CPUs speed up.

    python bench/speed_switches.py [--dataset cifar10 --root ../shared/data/cifar-10-batches-bin]
        [--model cifar10-mentor] [--subset 10000] [--epochs 3] [--device auto] [--no-compile]
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="mnist-5k")
    parser.add_argument("--root", default=None)
    parser.add_argument("--model", default="mnist-mentor")
    parser.add_argument("--subset", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--no-compile", action="store_true", help="skip the compiled settings")
    args = parser.parse_args()

    data = load_dataset(args.dataset, args.root).train
    if args.subset:
        data = stratified_subset(data, args.subset, 0)
    norm = Normalizer.fit(data.images)
    torch.manual_seed(0)
    init = create_model(args.model, data.in_shape, data.num_classes)
    train = TrainingSet(data.images, {"labels": data.labels})
    settings = [
        {"precision": "fp32", "channels_last": False},
        {"precision": "bf16", "channels_last": False},
        {"precision": "fp32", "channels_last": True},
        {"precision": "bf16", "channels_last": True},
    ]
    if not args.no_compile:
        settings += [{**s, "compile": True} for s in settings]
    rows = []
    for switch in settings:
        base = TrainSettings(
            epochs=args.epochs, batch_size=args.batch_size, lr=0.01, schedule="constant", device=args.device
        )
        s = base.model_copy(update=switch)
        method = create_method("supervised", copy.deepcopy(init))
        result = fit(method, train, norm, s, progress=False, label=" ".join(f"{k}={v}" for k, v in switch.items()))
        rows.append((switch, statistics.median(r["images_per_s"] for r in result.history[1:])))
        torch._dynamo.reset()  # each compiled setting compiles afresh

    env = describe_environment(
        torch.device(
            "cuda"
            if args.device == "auto" and torch.cuda.is_available()
            else args.device
            if args.device != "auto"
            else "cpu"
        )
    )
    print(
        f"model={args.model} data={args.dataset} ({len(train)} images) batch={args.batch_size} "
        f"epochs={args.epochs} (first not counted)"
    )
    print(f"environment: {env}")
    ref = rows[0][1]
    print("| precision | channels_last | compile | images/s | x fp32 |")
    print("| --- | --- | --- | ---: | ---: |")
    for switch, rate in rows:
        print(
            f"| {switch['precision']} | {switch['channels_last']} | {switch.get('compile', False)} | "
            f"{rate:.0f} | {rate / ref:.2f} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
