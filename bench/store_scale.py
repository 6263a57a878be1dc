"""Packed stores at a million images (issue 17): packing, labelling and a student epoch, with peak memory.

    python bench/store_scale.py --images 1000000 --work /tmp/store-scale [--json out.json]

Builds a synthetic store of ``--images`` 3x32x32 training images (+ 10,000 test images),
generated procedurally (class-coloured oriented stripes with noise and shifts), so nothing
large is committed. Each phase runs in a fresh process and reports its wall time and its
peak resident memory (``ru_maxrss``: memory-mapped and page-cache pages the process
touched count too):

1. ``pack``: generate and append the images to a store (``StoreWriter``, chunks of 8,192).
2. ``label``: a small teacher (``--teacher`` notation, random weights: throughput only)
   labels every training image, streamed, into a memory-mapped ``probs.npy``.
3. ``epoch``: one student epoch (``--student`` notation, soft labels from ``probs.npy``)
   over every image, streamed from the store (``read_ahead`` as the engine's auto rule decides).
4. ``compare``: the same student epoch on the first ``--memory-subset`` images, from the
   store (streamed) and from memory (the rows read into one tensor first), alternating,
   ``--rounds`` each; the ratio store / memory (issue target >= 0.9, the store in the page cache).
5. ``read``: every training row gathered once in a shuffled order, batch by batch, with no
   model: the rate one process (one torchrun rank) reads a store in the page cache.
6. ``pack_tar`` (run it with ``--phases pack_tar``): ``deepmimic pack``'s path for image files,
   a tar shard of ``--tar-images`` 64x64 JPEGs decoded and resized to 32x32, with 1 and 2
   worker processes.

The store is kept in ``--work`` between runs (packing resumes or is skipped); ``--fresh`` deletes it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from deepmimic.data.batches import Normalizer, TrainingSet
from deepmimic.data.rows import is_streamed
from deepmimic.data.store import StoreWriter
from deepmimic.data.store_format import FORMAT
from deepmimic.data.store_read import read_store
from deepmimic.engine import TrainSettings, fit
from deepmimic.labelling.white_box import label_images
from deepmimic.methods import SoftLabel
from deepmimic.models import create_model
from deepmimic.teachers.cached import CachedTeacher
from deepmimic.teachers.module import ModuleTeacher

SHAPE = (3, 32, 32)
CLASSES = 10
TEST_IMAGES = 10_000
CHUNK = 8192
NORMALIZER_ROWS = 50_000  # statistics from the first rows: a full pass would only add reading time


def synthetic_chunk(start: int, count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Images (count, 3, 32, 32) uint8 and labels (count,) for rows ``start..start+count``, deterministic.

    Class c: stripes at angle c * 18 degrees, frequency 2 + c % 3, in a class colour, plus noise
    and a random phase, so a teacher has something to separate.
    """
    rng = np.random.default_rng([seed, start])
    labels = (np.arange(start, start + count) * 7919 % CLASSES).astype(np.int64)
    yy, xx = np.mgrid[0:32, 0:32].astype(np.float32) / 32.0
    angle = labels[:, None, None] * (np.pi / CLASSES)
    freq = 2.0 + labels[:, None, None] % 3
    phase = rng.uniform(0, 2 * np.pi, (count, 1, 1)).astype(np.float32)
    wave = np.sin(2 * np.pi * freq * (xx * np.cos(angle) + yy * np.sin(angle)) + phase)  # (count, 32, 32)
    colour = np.stack([(labels * 37) % 256, (labels * 91) % 256, (labels * 151) % 256], 1).astype(np.float32)
    images = 127.5 + 0.5 * (colour[:, :, None, None] - 127.5) * wave[:, None] + rng.normal(0, 24, (count, 3, 32, 32))
    return np.clip(images, 0, 255).astype(np.uint8), labels


def peak_rss_mb() -> float:
    """This process's peak resident memory in MiB (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def phase_pack(args: argparse.Namespace) -> dict[str, Any]:
    total = args.images + TEST_IMAGES
    identity = {
        "format": FORMAT,
        "shape": list(SHAPE),
        "train": args.images,
        "test": TEST_IMAGES,
        "class_names": [f"class_{c}" for c in range(CLASSES)],
        "source": f"synthetic stripes, seed 0, {args.images} + {TEST_IMAGES}",
    }
    writer = StoreWriter(args.store, identity)
    if writer.finished:
        return {"skipped": "store already packed"}
    started, first = time.perf_counter(), writer.rows
    while writer.rows < total:
        count = min(CHUNK, total - writer.rows)
        images, labels = synthetic_chunk(writer.rows, count)
        writer.append(images, labels)
        if writer.rows // CHUNK % 16 == 0:
            rate = (writer.rows - first) / (time.perf_counter() - started)
            print(f"[pack] {writer.rows:,}/{total:,} ({rate:,.0f} images/s)", file=sys.stderr, flush=True)
    packed = time.perf_counter() - started
    writer.finish()  # labels.npy + SHA-256 of the images file (one more read of it)
    return {"images": total - first, "seconds": packed, "finish_seconds": time.perf_counter() - started - packed}


def _normalizer(images: Any) -> Normalizer:
    return Normalizer.fit(images[: min(NORMALIZER_ROWS, len(images))])


def phase_label(args: argparse.Namespace) -> dict[str, Any]:
    train = read_store(args.store, stream=True).train
    assert is_streamed(train.images)
    torch.manual_seed(0)
    teacher = ModuleTeacher(create_model(args.teacher, SHAPE, CLASSES).eval(), CLASSES)
    tmp = args.work / "probs.npy.tmp"
    out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(len(train), CLASSES))
    started = time.perf_counter()
    label_images(teacher, train.images, _normalizer(train.images), torch.device("cpu"), batch_size=1024, out=out)
    out.flush()
    seconds = time.perf_counter() - started
    del out
    os.replace(tmp, args.work / "probs.npy")
    return {"images": len(train), "seconds": seconds}


def _student_epoch(images: Any, probs: torch.Tensor, norm: Normalizer, args: argparse.Namespace, seed: int) -> float:
    """Seconds of one soft-label student epoch over ``images`` (engine ``fit``, 1 epoch, no evaluation)."""
    torch.manual_seed(seed)
    student = create_model(args.student, SHAPE, CLASSES)
    settings = TrainSettings(epochs=1, batch_size=args.batch_size, lr=0.05, momentum=0.9, schedule="constant")
    started = time.perf_counter()
    method = SoftLabel(student, CachedTeacher(probs, source="probs.npy"))  # targets looked up by row, as DeepMimic does
    fit(method, TrainingSet(images, {}), norm, settings, progress=False, label="student")
    return time.perf_counter() - started


def _probs(args: argparse.Namespace) -> torch.Tensor:
    return torch.from_numpy(np.load(args.work / "probs.npy", mmap_mode="c"))  # rows paged in per batch


def phase_epoch(args: argparse.Namespace) -> dict[str, Any]:
    train = read_store(args.store, stream=True).train
    seconds = _student_epoch(train.images, _probs(args), _normalizer(train.images), args, seed=0)
    return {"images": len(train), "seconds": seconds}


def phase_compare(args: argparse.Namespace) -> dict[str, Any]:
    train = read_store(args.store, stream=True).train
    rows = min(args.memory_subset, len(train))
    streamed = train.images.take(slice(0, rows))
    in_memory = train.images[0:rows]  # one uint8 tensor (rows, 3, 32, 32)
    probs = _probs(args)[:rows].clone()
    norm = _normalizer(in_memory)
    _student_epoch(in_memory, probs, norm, args, seed=99)  # warm-up: allocator, kernels, page cache
    times: dict[str, list[float]] = {"store": [], "memory": []}
    for r in range(args.rounds):
        times["memory"].append(_student_epoch(in_memory, probs, norm, args, seed=r))
        times["store"].append(_student_epoch(streamed, probs, norm, args, seed=r))
    store, memory = statistics.median(times["store"]), statistics.median(times["memory"])
    return {
        "images": rows,
        "store_images_per_s": rows / store,
        "memory_images_per_s": rows / memory,
        "ratio_store_memory": memory / store,
        "rounds": times,
    }


def phase_read(args: argparse.Namespace) -> dict[str, Any]:
    """Gather every training row once in a shuffled order, batch by batch, with no model: the read rate."""
    train = read_store(args.store, stream=True).train
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(0))
    started = time.perf_counter()
    for start in range(0, len(order), args.batch_size):
        train.images[order[start : start + args.batch_size]]
    seconds = time.perf_counter() - started
    return {"images": len(train), "seconds": seconds, "mb_per_s": len(train) * int(np.prod(SHAPE)) / seconds / 1e6}


def _write_jpeg_tar(path: Path, count: int) -> None:
    """A tar shard of ``count`` synthetic 64x64 JPEGs (quality 90) with .cls members (not timed)."""
    import io
    import tarfile

    from PIL import Image

    def add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))

    with tarfile.open(path.with_suffix(".partial"), "w") as tar:
        for start in range(0, count, CHUNK):
            images, labels = synthetic_chunk(start, min(CHUNK, count - start), seed=1)
            for i, (image, label) in enumerate(zip(images, labels, strict=True)):
                big = Image.fromarray(image.transpose(1, 2, 0)).resize((64, 64), Image.Resampling.BILINEAR)
                buffer = io.BytesIO()
                big.save(buffer, "JPEG", quality=90)
                add(tar, f"{start + i:08d}.jpg", buffer.getvalue())
                add(tar, f"{start + i:08d}.cls", str(int(label)).encode())
    os.replace(path.with_suffix(".partial"), path)


def phase_pack_tar(args: argparse.Namespace) -> dict[str, Any]:
    """``deepmimic pack``'s file path: a tar of 64x64 JPEGs decoded, resized to 32x32, per worker count."""
    from deepmimic.data.pack_files import pack_files
    from deepmimic.data.sources.tar_shards import list_tar_shards

    shard = args.work.parent / f"jpeg-{args.tar_images}.tar"
    if not shard.exists():
        _write_jpeg_tar(shard, args.tar_images)
    result: dict[str, Any] = {"images": args.tar_images, "source": "64x64 JPEG (quality 90) -> 32x32"}
    for workers in (1, 2):
        out = args.work / f"jpeg-{workers}w.dmstore"
        shutil.rmtree(out, ignore_errors=True)
        started = time.perf_counter()
        pack_files(list_tar_shards(str(shard)), out, source=str(shard), size=(32, 32), workers=workers)
        seconds = time.perf_counter() - started
        result[f"workers_{workers}"] = {"seconds": seconds, "images_per_s": args.tar_images / seconds}
        shutil.rmtree(out)
    return result


PHASES = {
    "pack": phase_pack,
    "label": phase_label,
    "epoch": phase_epoch,
    "compare": phase_compare,
    "read": phase_read,
    "pack_tar": phase_pack_tar,
}


def run_phase(args: argparse.Namespace, name: str) -> dict[str, Any]:
    """Run phase ``name`` in a fresh interpreter (its own peak memory); returns its JSON result."""
    cmd = [sys.executable, __file__, "--phase", name, *sys.argv[1:]]
    done = subprocess.run(cmd, capture_output=True, text=True)
    sys.stderr.write(done.stderr)
    if done.returncode != 0:
        raise SystemExit(f"phase {name} failed (exit {done.returncode})")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=1_000_000, help="training images in the store")
    parser.add_argument("--work", type=Path, default=Path("/tmp/store-scale"), help="where the store and labels go")
    parser.add_argument("--teacher", default="c:16-mp-c:32-mp-gap-s", help="teacher notation (random weights)")
    parser.add_argument("--student", default="c:8-mp-c:16-mp-gap-s", help="student notation")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--memory-subset", type=int, default=100_000, help="rows for the store/memory comparison")
    parser.add_argument("--rounds", type=int, default=3, help="alternating epochs per side in the comparison")
    parser.add_argument("--phases", default="pack,label,epoch,compare,read", help="comma-separated subset of phases")
    parser.add_argument("--tar-images", type=int, default=20_000, help="JPEGs in the pack_tar phase's shard")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument("--fresh", action="store_true", help="delete the work folder first")
    parser.add_argument("--phase", default=None, help=argparse.SUPPRESS)  # internal: run one phase here
    args = parser.parse_args()
    args.work = args.work / f"{args.images}"
    args.store = args.work / "synthetic.dmstore"
    if args.phase:
        result = PHASES[args.phase](args)
        result["peak_rss_mb"] = peak_rss_mb()
        print(json.dumps(result))
        return 0
    if args.fresh and args.work.exists():
        shutil.rmtree(args.work)
    args.work.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {
        "images": args.images,
        "store_gb": (args.images + TEST_IMAGES) * int(np.prod(SHAPE)) / 1e9,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}",
        "teacher": args.teacher,
        "student": args.student,
        "batch_size": args.batch_size,
    }
    for name in args.phases.split(","):
        results[name] = run_phase(args, name.strip())
        print(f"{name}: {json.dumps(results[name])}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
