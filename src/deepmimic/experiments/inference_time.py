"""Inference time of mentor vs students (DeepMimic paper, section 4.5, Table 6).

Seconds to classify the whole test set with each model of a dataset's ladder, after a
warm-up pass, as the mean (and standard deviation) of repeated passes, at a stated batch
size, on the CPU and on CUDA when present. Time depends on the architecture, not on the
weights, so freshly initialised models are timed.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

import torch

from deepmimic.data import load_dataset
from deepmimic.data.batches import Normalizer
from deepmimic.data.splits import stratified_subset
from deepmimic.environment import describe_environment
from deepmimic.errors import ConfigError
from deepmimic.eval.metrics import predict_probs
from deepmimic.experiments.options import LADDERS, SweepOptions
from deepmimic.experiments.points import write_summary
from deepmimic.models import count_macs, count_parameters, create_model


def _devices() -> list[torch.device]:
    return [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])


def time_model(
    model: torch.nn.Module,
    images: torch.Tensor,
    normalizer: Normalizer,
    device: torch.device,
    batch_size: int,
    repeats: int,
) -> list[float]:
    """Seconds per full pass over ``images`` (after one warm-up pass), ``repeats`` times."""
    model.to(device).eval()
    predict_probs(model, images, normalizer, device, batch_size)  # warm-up: allocator, kernels
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        predict_probs(model, images, normalizer, device, batch_size)
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return times


def run_inference_time(opts: SweepOptions, repeats: int = 5, batch_size: int = 256) -> dict[str, Any]:
    """Time every model of ``opts.dataset``'s ladder on its test set; write the summary and its report."""
    started = time.perf_counter()
    if opts.dataset not in LADDERS:
        raise ConfigError(f"unknown dataset '{opts.dataset}'; known: {', '.join(LADDERS)}")
    if repeats < 1:
        raise ConfigError(f"repeats must be >= 1, got {repeats}")
    data_name, folder, prefix, letters = LADDERS[opts.dataset]
    data = load_dataset(opts.data_name or data_name, opts.data_root or str(Path(opts.data_dir) / folder))
    test = stratified_subset(data.test, opts.test_subset, 0) if opts.test_subset else data.test
    normalizer = Normalizer.fit(data.train.images)
    names = [("Mentor", f"{prefix}-mentor")] + [(f"Student-{c.upper()}", f"{prefix}-student-{c}") for c in letters[1:]]
    rows = []
    for label, preset in names:
        torch.manual_seed(0)
        model = create_model(preset, test.in_shape, test.num_classes, **(opts.model_options or {}))
        row: dict[str, Any] = {
            "model": label,
            "preset": preset,
            "parameters": count_parameters(model),
            "macs": count_macs(model, test.in_shape),
        }
        for device in _devices():
            times = time_model(model, test.images, normalizer, device, batch_size, repeats)
            row[str(device)] = {
                "mean_s": statistics.fmean(times),
                "std_s": statistics.stdev(times) if len(times) > 1 else 0.0,
            }
        rows.append(row)
        print(
            f"[inference] {label}: " + ", ".join(f"{d} {row[str(d)]['mean_s']:.3f} s" for d in _devices()), flush=True
        )
    summary = {
        "experiment": "inference-time",
        "title": "Inference time of mentor and students (DeepMimic Table 6)",
        "dataset": opts.dataset,
        "test_images": len(test),
        "batch_size": batch_size,
        "repeats": repeats,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "command": opts.command,
        "wall_time_s": time.perf_counter() - started,
        "environment": describe_environment(_devices()[-1]),
        "rows": rows,
    }
    return write_summary(Path(opts.out) / "inference-time", summary, report=opts.report)
