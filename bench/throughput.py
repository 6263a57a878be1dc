"""Engine throughput vs a bare hand-written PyTorch loop (training images per second).

Both train the same model (a fresh copy of the same initial weights) with the same
optimiser, batch size and in-memory data; epochs of the two are measured alternately in
one process so drift in machine load hits both equally. Prints images/s of each and
the ratio engine / bare (target >= 0.95).

    python bench/throughput.py [--model mnist-mentor] [--batch-size 64] [--rounds 5] [--device cuda]

On CUDA both loops keep the data on the GPU and run in float32 (the engine's bf16 and
channels_last switches are turned off here: bench/speed_switches.py measures those).
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time

import torch
import torch.nn.functional as F

from deepmimic.data import load_dataset
from deepmimic.data.batches import Normalizer, TrainingSet
from deepmimic.data.splits import stratified_subset
from deepmimic.engine import TrainSettings, fit
from deepmimic.methods import Supervised
from deepmimic.models import create_model


def bare_epoch(
    model: torch.nn.Module,
    opt: torch.optim.Optimizer,
    images: torch.Tensor,
    labels: torch.Tensor,
    norm: Normalizer,
    batch_size: int,
    seed: int,
) -> float:
    """One epoch of the plainest loop we would write by hand (data already on the model's device); returns seconds."""
    mean = torch.tensor(norm.mean, device=images.device).view(1, -1, 1, 1)
    std = torch.tensor(norm.std, device=images.device).view(1, -1, 1, 1)
    model.train()
    start = time.perf_counter()
    perm = torch.randperm(images.shape[0], generator=torch.Generator().manual_seed(seed))
    for i in range(0, images.shape[0], batch_size):
        idx = perm[i : i + batch_size].to(images.device)
        x = (images[idx].float() / 255.0 - mean) / std
        loss = F.cross_entropy(model(x), labels[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    if images.is_cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="mnist-mentor")
    parser.add_argument("--dataset", default="mnist-5k")
    parser.add_argument("--root", default=None)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--subset", type=int, default=None, help="a stratified subset of the training images")
    args = parser.parse_args()
    device = torch.device(args.device)

    data = load_dataset(args.dataset, args.root).train
    if args.subset:
        data = stratified_subset(data, args.subset, 0)
    norm = Normalizer.fit(data.images)
    torch.manual_seed(0)
    init = create_model(args.model, data.in_shape, data.num_classes)
    bare_model, engine_model = copy.deepcopy(init).to(device), copy.deepcopy(init)
    settings = TrainSettings(
        epochs=1,
        batch_size=args.batch_size,
        lr=0.01,
        momentum=0.9,
        weight_decay=5e-4,
        schedule="constant",
        device=args.device,
        precision="fp32",
        channels_last=False,
    )
    bare_images, bare_labels = data.images.to(device), data.labels.to(device)
    bare_opt = torch.optim.SGD(bare_model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    method = Supervised(engine_model)
    # On the device once, like the bare loop's data (fit's own move is then a no-op).
    train_set = TrainingSet(data.images, {"labels": data.labels}).to(device)
    n = len(data)

    # Warm-up one epoch each (allocator, kernels), then alternate measured epochs.
    bare_epoch(bare_model, bare_opt, bare_images, bare_labels, norm, args.batch_size, seed=0)
    fit(method, train_set, norm, settings, progress=False, label="warmup")
    bare_rates, engine_rates = [], []
    for r in range(args.rounds):
        bare_rates.append(n / bare_epoch(bare_model, bare_opt, bare_images, bare_labels, norm, args.batch_size, seed=r))
        t0 = time.perf_counter()
        fit(method, train_set, norm, settings.model_copy(update={"seed": r}), progress=False, label="engine")
        engine_rates.append(n / (time.perf_counter() - t0))
        print(f"round {r + 1}: bare {bare_rates[-1]:.0f} img/s, engine {engine_rates[-1]:.0f} img/s", file=sys.stderr)

    bare, engine = statistics.median(bare_rates), statistics.median(engine_rates)
    print(
        f"model={args.model} data={args.dataset} ({n} images) batch={args.batch_size} device={args.device} "
        f"threads={torch.get_num_threads()} torch={torch.__version__}"
    )
    print(f"bare loop: {bare:.0f} images/s (median of {args.rounds})")
    print(f"engine:    {engine:.0f} images/s (median of {args.rounds})")
    print(f"ratio engine/bare: {engine / bare:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
