"""What the teacher costs a student epoch: cached soft labels vs an online teacher.

DeepMimic labels the unlabelled set once (section 3.2), so a student epoch should cost
what a plain supervised epoch of the student costs; online KD runs the teacher's forward
pass on every batch. This trains the same student (same initial weights, optimiser,
batches) for one epoch in each of four modes, alternating the modes round by round in one
process, and prints median epoch times and their ratios to the supervised epoch:

- supervised: cross-entropy on true labels (the reference);
- soft_label cached: DeepMimic soft labels read from memory by row (``teacher: cached``);
- soft_label online / kd online: the same losses with the teacher run on every batch.

The teacher is a wider network whose measured forward time per image is printed as a
multiple of the student's forward time (aim: about 10x; ``--teacher-option`` widens it).

    python bench/teacher_cost.py [--rounds 5] [--student mnist-student-b] \\
        [--teacher mnist-mentor --teacher-option conv_channels=96]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time

import torch
import yaml

from deepmimic.data import load_dataset
from deepmimic.data.batches import Normalizer, TrainingSet
from deepmimic.engine import TrainSettings, fit
from deepmimic.eval.metrics import predict_probs
from deepmimic.methods.registry import create_method
from deepmimic.models import count_macs, create_model
from deepmimic.teachers.cached import CachedTeacher
from deepmimic.teachers.module import ModuleTeacher


@torch.no_grad()
def forward_seconds(model: torch.nn.Module, x: torch.Tensor, repeats: int = 5) -> float:
    """Median seconds of one eval-mode forward pass over ``x`` (after a warm-up pass)."""
    model.eval()
    model(x)
    times = []
    for _ in range(repeats):
        if x.is_cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        model(x)
        if x.is_cuda:
            torch.cuda.synchronize()  # time the kernels, not their launch
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="mnist-5k")
    parser.add_argument("--root", default=None)
    parser.add_argument("--student", default="mnist-student-b")
    parser.add_argument("--teacher", default="mnist-mentor")
    parser.add_argument("--teacher-option", action="append", default=["conv_channels=96"], metavar="KEY=VALUE")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    data = load_dataset(args.dataset, args.root).train
    norm = Normalizer.fit(data.images)
    device = torch.device(args.device)
    teacher_options = {k: yaml.safe_load(v) for k, _, v in (o.partition("=") for o in args.teacher_option)}
    torch.manual_seed(0)
    teacher_model = create_model(args.teacher, data.in_shape, data.num_classes, **teacher_options).to(device)
    init = create_model(args.student, data.in_shape, data.num_classes)

    probe = norm(data.images[:256]).to(device)
    t_teacher = forward_seconds(teacher_model, probe)
    t_student = forward_seconds(copy.deepcopy(init).to(device), probe)
    # The cached labels: the teacher run once over the set, as the pipeline does.
    t0 = time.perf_counter()
    probs = predict_probs(teacher_model, data.images, norm, device)
    label_once = time.perf_counter() - t0

    online = ModuleTeacher(teacher_model, data.num_classes)
    cached = CachedTeacher(probs, source="soft labels in memory")
    settings = TrainSettings(epochs=1, batch_size=args.batch_size, lr=0.01, schedule="constant", device=args.device)
    labelled = TrainingSet(data.images, {"labels": data.labels}, name="labelled")
    unlabelled = TrainingSet(data.images, {}, name="unlabelled")
    modes = {
        "supervised": lambda s: (create_method("supervised", s), labelled),
        "soft_label cached": lambda s: (create_method("soft_label", s, cached), unlabelled),
        "soft_label online": lambda s: (create_method("soft_label", s, online), unlabelled),
        "kd online": lambda s: (create_method("kd", s, online), unlabelled),
    }
    times: dict[str, list[float]] = {name: [] for name in modes}
    for r in range(args.rounds + 1):  # round 0 warms up every mode and is not counted
        for name, build in modes.items():
            method, train = build(copy.deepcopy(init))
            t0 = time.perf_counter()
            fit(method, train, norm, settings.model_copy(update={"seed": r}), progress=False, label=name)
            if r:
                times[name].append(time.perf_counter() - t0)
        if r:
            print(f"round {r}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items()), file=sys.stderr)

    n = len(data)
    base = statistics.median(times["supervised"])
    print(
        f"data={args.dataset} ({n} images) batch={args.batch_size} device={args.device} "
        f"threads={torch.get_num_threads()} torch={torch.__version__}"
    )
    print(
        f"student {args.student}: {count_macs(init, data.in_shape):,} MACs/image; "
        f"teacher {args.teacher} {teacher_options}: "
        f"{count_macs(teacher_model, data.in_shape):,} MACs/image"
    )
    print(f"teacher forward time / student forward time: {t_teacher / t_student:.1f}x (batch of 256, eval mode)")
    print(f"labelling the set once with the teacher: {label_once:.2f} s")
    print(f"| mode | epoch s (median of {args.rounds:d}) | x supervised epoch |")
    print("| --- | ---: | ---: |")
    for name, values in times.items():
        med = statistics.median(values)
        print(f"| {name} | {med:.2f} | {med / base:.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
