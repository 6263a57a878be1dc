"""Cost of the imitation game's derivative loss relative to reconstruction only.

Times one full training step (student forward, teacher forward, losses, backward,
optimiser step) for three configurations of the same student, teacher and batch:
reconstruction only, reconstruction + derivative with 1 random projection, and
reconstruction + exact derivative (one vector-Jacobian product per class). Steps of
the three are interleaved in one run; prints median milliseconds and the ratios
(target: 1 projection <= 2.5x reconstruction only).

    python bench/derivative_cost.py [--student c:32x2-mp-c:64x2-mp-c:128-gap-s] [--teacher cifar10-mentor]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from deepmimic.data.batches import Batch
from deepmimic.methods import Imitation
from deepmimic.models import count_parameters, create_model
from deepmimic.teachers import ModuleTeacher

CONFIGS = {
    "reconstruction only": {"rec_weight": 1.0},
    "rec + derivative (1 projection)": {"rec_weight": 1.0, "der_weight": 1.0, "projections": 1},
    "rec + derivative (exact)": {"rec_weight": 1.0, "der_weight": 1.0, "exact_jacobian": True},
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--student", default="c:32x2-mp-c:64x2-mp-c:128-gap-s")
    parser.add_argument("--teacher", default="cifar10-mentor")
    parser.add_argument("--in-shape", default="3,32,32")
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=15)
    args = parser.parse_args()
    in_shape = tuple(int(v) for v in args.in_shape.split(","))
    torch.manual_seed(0)
    teacher = ModuleTeacher(create_model(args.teacher, in_shape, args.classes), args.classes)
    batch = Batch(torch.randn(args.batch_size, *in_shape), {}, torch.arange(args.batch_size))
    methods, optimizers = {}, {}
    for name, options in CONFIGS.items():
        torch.manual_seed(1)
        student = create_model(args.student, in_shape, args.classes)
        methods[name] = Imitation(student, teacher, **options).train()
        optimizers[name] = torch.optim.SGD(methods[name].optimized_parameters(), lr=1e-3, momentum=0.9)

    def step(name: str) -> float:
        start = time.perf_counter()
        losses = methods[name].losses(batch)
        optimizers[name].zero_grad(set_to_none=True)
        torch.stack(list(losses.values())).sum().backward()
        optimizers[name].step()
        return time.perf_counter() - start

    for name in CONFIGS:  # warm-up
        step(name)
    times: dict[str, list[float]] = {name: [] for name in CONFIGS}
    for _ in range(args.steps):
        for name in CONFIGS:
            times[name].append(step(name))
    base = statistics.median(times["reconstruction only"])
    params = count_parameters(methods["reconstruction only"].student)
    print(
        f"student={args.student} ({params:,} params) teacher={args.teacher} batch={args.batch_size} "
        f"classes={args.classes} threads={torch.get_num_threads()} torch={torch.__version__}"
    )
    for name in CONFIGS:
        median = statistics.median(times[name])
        print(f"{name:34s} {1000 * median:8.1f} ms/step   {median / base:5.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
