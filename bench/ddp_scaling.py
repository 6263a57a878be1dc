"""Data-parallel scaling on the CPU: 1 vs 2 processes under torchrun (gloo), same global batch.

Launches ``torchrun --standalone --nproc-per-node P`` on this file's ``--worker`` mode for
P = 1 and P = 2, each process with one torch thread (``OMP_NUM_THREADS=1``, one core
each), and once more one process with P threads for reference. Every worker trains the same
student (soft labels from a cached teacher, the DeepMimic student epoch) with the same
global batch for a few epochs through the engine; rank 0 reports the median images/s of
the epochs after the first (warm-up). Scaling efficiency = images/s(P processes) /
(P * images/s(1 process)).

    python bench/ddp_scaling.py [--model mnist-mentor] [--batch-size 128] [--epochs 4] [--procs 2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys


def worker(args: argparse.Namespace) -> int:
    import torch

    from deepmimic import distributed
    from deepmimic.data import load_dataset
    from deepmimic.data.batches import Normalizer, TrainingSet
    from deepmimic.engine import TrainSettings, fit
    from deepmimic.methods.registry import create_method
    from deepmimic.models import create_model
    from deepmimic.teachers.cached import CachedTeacher

    with distributed.process_group("cpu") as group:
        data = load_dataset(args.dataset, args.root).train
        norm = Normalizer.fit(data.images)
        gen = torch.Generator().manual_seed(0)
        probs = torch.softmax(torch.randn(len(data), data.num_classes, generator=gen), dim=1)
        torch.manual_seed(0)
        student = create_model(args.model, data.in_shape, data.num_classes)
        method = create_method("soft_label", student, CachedTeacher(probs))
        settings = TrainSettings(
            epochs=args.epochs, batch_size=args.batch_size, lr=0.01, schedule="constant", device="cpu"
        )
        result = fit(method, TrainingSet(data.images, {}), norm, settings, progress=False, label=f"{group.world_size}p")
        rates = [r["images_per_s"] for r in result.history[1:]]
        if distributed.is_main():
            print(
                "RESULT "
                + json.dumps(
                    {
                        "processes": group.world_size,
                        "threads": torch.get_num_threads(),
                        "images_per_s": statistics.median(rates),
                    }
                )
            )
    return 0


def launch(procs: int, threads: int, args: argparse.Namespace) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={procs}",
        __file__,
        "--worker",
        "--model",
        args.model,
        "--batch-size",
        str(args.batch_size),
        "--epochs",
        str(args.epochs),
        "--dataset",
        args.dataset,
        *(["--root", args.root] if args.root else []),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    for line in done.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :])
    raise SystemExit(f"worker failed ({procs} processes): {done.stderr[-2000:]}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--model", default="mnist-mentor")
    parser.add_argument("--dataset", default="mnist-5k")
    parser.add_argument("--root", default=None)
    parser.add_argument("--batch-size", type=int, default=128, help="global batch (split across the processes)")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--procs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2, help="launches per setting (median)")
    args = parser.parse_args()
    if args.worker:
        return worker(args)

    settings = [(1, 1), (args.procs, 1), (1, args.procs)]
    rates: dict[tuple[int, int], list[float]] = {s: [] for s in settings}
    for rep in range(args.repeats):  # alternate the settings so machine drift hits each alike
        for procs, threads in settings:
            got = launch(procs, threads, args)
            rates[(procs, threads)].append(got["images_per_s"])
            print(
                f"repeat {rep + 1}: {procs} process(es) x {threads} thread(s): {got['images_per_s']:.0f} images/s",
                file=sys.stderr,
            )
    med = {s: statistics.median(v) for s, v in rates.items()}
    one = med[(1, 1)]
    many = med[(args.procs, 1)]
    threaded = med[(1, args.procs)]
    print(
        f"model={args.model} data={args.dataset} global batch={args.batch_size} epochs={args.epochs} "
        f"(first is warm-up) cpus={os.cpu_count()}"
    )
    print("| setting | images/s | speed-up vs 1 process x 1 thread |")
    print("| --- | ---: | ---: |")
    print(f"| 1 process x 1 thread | {one:.0f} | 1.00x |")
    print(f"| {args.procs} processes x 1 thread (torchrun, gloo) | {many:.0f} | {many / one:.2f}x |")
    print(f"| 1 process x {args.procs} threads | {threaded:.0f} | {threaded / one:.2f}x |")
    print(f"scaling efficiency ({args.procs} processes): {many / (args.procs * one):.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
