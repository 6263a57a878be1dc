"""deepmimic ``mimic`` against ART's CopycatCNN on the same model-extraction job (issue 18).

Both tools copy one black-box victim (any ONNX classifier that takes ``(B, C, H, W)``
pixels / 255 and returns class probabilities, e.g. one ``deepmimic export`` wrote) into
the same student, and each run is a fresh Python process timed from the outside, start-up
and imports included:

- the same query images: the first N rows of a permutation of the data's training split
  drawn from the seed (what ``mimic --budget N --budget-order random --seed S`` asks);
- the same student architecture with bit-identical initial weights (``torch.manual_seed``
  then :func:`deepmimic.models.create_model`, as ``mimic`` builds it) and the same input
  normalisation (ART's ``preprocessing`` gets deepmimic's per-channel mean and std);
- SGD with momentum, no weight decay, a constant learning rate (CopycatCNN has no
  schedule), batch 128, the same epochs; soft labels (the victim's probabilities;
  ``use_probability=True``) or top-1 labels (``mimic --label-only``; one-hot in ART);
- the same measurements: the victim is asked about the N images and the whole test split,
  and each process reports the student's test accuracy and its agreement with the victim.

deepmimic runs as a scripted user would run it: ``--no-report`` and one evaluation at the
end (``--eval-every EPOCHS``); ART has no curves or report either. Batch order differs
(each tool shuffles with its own generator), so accuracies are compared against the seed
spread, not digit for digit.

    python bench/peer_extraction.py --victim mentor.onnx --data mnist:../shared/data/mnist \\
        [--queries 1000,5000,20000] [--labels soft,top1] [--seeds 3] [--out runs/peer-extraction]

ART (``pip install adversarial-robustness-toolbox``) is a benchmark-only dependency: without
it the ART column is skipped with a note. Nothing here uses the network.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

TOOLS = ("deepmimic", "art")
LABELS = ("soft", "top1")


@dataclass(frozen=True)
class Job:
    """One extraction: a victim, data, a student recipe, a query budget, a label kind and a seed."""

    victim: str
    data: str
    student: str
    queries: int
    labels: str  # "soft" or "top1"
    seed: int
    epochs: int = 10
    batch_size: int = 128
    lr: float = 0.05
    momentum: float = 0.9


def deepmimic_command(job: Job, out: Path) -> list[str]:
    """The ``deepmimic mimic`` command line of ``job`` (one student, no label-only twin, no report)."""
    command = [
        sys.executable,
        "-m",
        "deepmimic",
        "mimic",
        "--teacher",
        job.victim,
        "--data",
        job.data,
        "--student",
        job.student,
        "--budget",
        str(job.queries),
        "--budget-order",
        "random",
        "--seed",
        str(job.seed),
        "--epochs",
        str(job.epochs),
        "--batch-size",
        str(job.batch_size),
        "--optimizer",
        "sgd",
        "--lr",
        str(job.lr),
        "--momentum",
        str(job.momentum),
        "--weight-decay",
        "0",
        "--schedule",
        "constant",
        "--eval-every",
        str(job.epochs),
        "--no-report",
        "--no-progress",
        "--out",
        str(out),
    ]
    return command + (["--label-only"] if job.labels == "top1" else [])


def art_command(job: Job) -> list[str]:
    """This script in worker mode: one CopycatCNN extraction, its measurements as a JSON line on stdout."""
    return [sys.executable, str(Path(__file__).resolve()), "--worker-art", json.dumps(asdict(job))]


def read_deepmimic_result(out: Path) -> dict[str, Any]:
    """Accuracy, agreement and queries of a finished ``mimic`` run."""
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    student = results["students"][0]
    return {
        "accuracy": student["accuracy"],
        "agreement": student["agreement"],
        "teacher_accuracy": results["mentor"]["accuracy"],
        "queries_sent": results["queries"]["total_sent"],
    }


def query_rows(rows: int, queries: int, seed: int) -> Any:
    """The rows ``mimic --budget queries --budget-order random --seed seed`` asks about (same generator)."""
    import torch  # noqa: PLC0415 (worker only)

    return torch.randperm(rows, generator=torch.Generator().manual_seed(seed))[:queries]


def run_art_worker(job: Job) -> dict[str, Any]:
    """One CopycatCNN extraction in this process; returns what :func:`read_deepmimic_result` returns."""
    import numpy as np  # noqa: PLC0415 (the worker's imports are part of its measured time)
    import onnxruntime as ort  # noqa: PLC0415
    import torch  # noqa: PLC0415
    from art.attacks.extraction import CopycatCNN  # noqa: PLC0415
    from art.estimators.classification import BlackBoxClassifier, PyTorchClassifier  # noqa: PLC0415

    from deepmimic.data import load_dataset  # noqa: PLC0415
    from deepmimic.data.batches import Normalizer  # noqa: PLC0415
    from deepmimic.data.spec import parse_data_spec  # noqa: PLC0415
    from deepmimic.models import create_model  # noqa: PLC0415

    name, root = parse_data_spec(job.data)
    data = load_dataset(name, root)
    unlabeled, test = data.train.images, data.test
    normalizer = Normalizer.fit(unlabeled)  # what mimic fits: every unlabelled image
    picked = unlabeled[query_rows(len(unlabeled), job.queries, job.seed)]
    x_train = picked.numpy().astype(np.float32) / 255.0
    x_test = test.images.numpy().astype(np.float32) / 255.0
    in_shape = tuple(unlabeled.shape[1:])

    session = ort.InferenceSession(job.victim, providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name
    output_names = [o.name for o in session.get_outputs()]
    probs_output = "probs" if "probs" in output_names else output_names[-1]
    sent = 0

    def victim(x: np.ndarray) -> np.ndarray:
        nonlocal sent
        sent += len(x)
        return session.run([probs_output], {input_name: x.astype(np.float32)})[0]

    num_classes = int(victim(x_test[:1]).shape[1])
    sent = 0
    black_box = BlackBoxClassifier(victim, in_shape, num_classes, clip_values=(0.0, 1.0))

    torch.manual_seed(job.seed)  # mimic's initial weights: the same seed, the same builder
    student = create_model(job.student, in_shape, num_classes)
    mean = np.array(normalizer.mean, dtype=np.float32).reshape(-1, 1, 1)
    std = np.array(normalizer.std, dtype=np.float32).reshape(-1, 1, 1)
    thief = PyTorchClassifier(
        model=student,
        loss=torch.nn.CrossEntropyLoss(),  # takes probability targets as they are (soft labels)
        optimizer=torch.optim.SGD(student.parameters(), lr=job.lr, momentum=job.momentum),
        input_shape=in_shape,
        nb_classes=num_classes,
        clip_values=(0.0, 1.0),
        preprocessing=(mean, std),
    )
    np.random.seed(job.seed)  # CopycatCNN permutes the query images with numpy's global generator
    torch.manual_seed(job.seed)
    attack = CopycatCNN(
        classifier=black_box,
        batch_size_fit=job.batch_size,
        batch_size_query=256,
        nb_epochs=job.epochs,
        nb_stolen=job.queries,
        use_probability=job.labels == "soft",
    )
    stolen = attack.extract(x_train, thieved_classifier=thief)
    student_pred = stolen.predict(x_test, batch_size=1024).argmax(axis=1)
    victim_pred = black_box.predict(x_test, batch_size=1024).argmax(axis=1)
    labels = test.labels.numpy()
    return {
        "accuracy": float((student_pred == labels).mean()),
        "agreement": float((student_pred == victim_pred).mean()),
        "teacher_accuracy": float((victim_pred == labels).mean()),
        "queries_sent": sent,
    }


def run_one(tool: str, job: Job, work: Path) -> dict[str, Any]:
    """Run ``job`` with ``tool`` in a fresh process; its measurements plus ``wall_s`` (the whole process)."""
    out = work / f"{tool}-{job.labels}-{job.queries}-seed{job.seed}"
    shutil.rmtree(out, ignore_errors=True)
    command = deepmimic_command(job, out) if tool == "deepmimic" else art_command(job)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    usage = {  # CPU time against wall time tells computing from waiting (an outlier's first clue)
        "user_s": after.ru_utime - before.ru_utime,
        "sys_s": after.ru_stime - before.ru_stime,
        "major_faults": after.ru_majflt - before.ru_majflt,
        "involuntary_switches": after.ru_nivcsw - before.ru_nivcsw,
    }
    logs = work.parent / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    (logs / f"{out.name}.log").write_text(done.stdout + done.stderr, encoding="utf-8")
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise RuntimeError(f"{tool} failed on {job.labels} {job.queries} seed {job.seed}: {tail[0]}")
    if tool == "deepmimic":
        measured = read_deepmimic_result(out)
        shutil.rmtree(out, ignore_errors=True)  # checkpoints and query logs are not results
    else:
        measured = json.loads(done.stdout.strip().splitlines()[-1])
    return {"tool": tool, **asdict(job), **measured, "wall_s": wall, **usage}


def summarise(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean and standard deviation over seeds per (labels, queries, tool), with deepmimic/ART wall-time ratios."""

    def mean_std(values: list[float]) -> tuple[float, float]:
        return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)

    rows = []
    for labels in LABELS:
        for queries in sorted({r["queries"] for r in runs if r["labels"] == labels and r["tool"] == "deepmimic"}):
            row: dict[str, Any] = {"labels": labels, "queries": queries}
            for tool in TOOLS:
                mine = [r for r in runs if (r["tool"], r["labels"], r["queries"]) == (tool, labels, queries)]
                if not mine:
                    continue
                row[tool] = {key: mean_std([r[key] for r in mine]) for key in ("accuracy", "agreement", "wall_s")} | {
                    "seeds": len(mine),
                    "queries_sent": mine[0]["queries_sent"],
                }
            if "deepmimic" in row and "art" in row:
                row["wall_ratio"] = row["deepmimic"]["wall_s"][0] / row["art"]["wall_s"][0]
            rows.append(row)
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    """The summary as a Markdown table (accuracy and agreement in %, wall time in s, mean ± std)."""

    def cell(stats: dict[str, Any] | None, key: str, scale: float, digits: int) -> str:
        if stats is None:
            return "-"
        mean, std = stats[key]
        return f"{mean * scale:.{digits}f} ± {std * scale:.{digits}f}"

    lines = [
        "| Labels | Queries | deepmimic accuracy | ART accuracy | deepmimic agreement | ART agreement "
        "| deepmimic wall (s) | ART wall (s) | deepmimic / ART |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        ours, art = row.get("deepmimic"), row.get("art")
        ratio = f"{row['wall_ratio']:.2f}x" if "wall_ratio" in row else "-"
        lines.append(
            f"| {row['labels']} | {row['queries']:,}"
            f" | {cell(ours, 'accuracy', 100, 2)} | {cell(art, 'accuracy', 100, 2)}"
            f" | {cell(ours, 'agreement', 100, 2)} | {cell(art, 'agreement', 100, 2)}"
            f" | {cell(ours, 'wall_s', 1, 1)} | {cell(art, 'wall_s', 1, 1)} | {ratio} |"
        )
    return "\n".join(lines)


def _positive_ints(text: str) -> list[int]:
    values = [int(v) for v in text.split(",")]
    if any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text}")
    return values


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--worker-art", help=argparse.SUPPRESS)
    parser.add_argument("--victim", help="the victim: an ONNX classifier (pixels / 255 in, probabilities out)")
    parser.add_argument("--data", default="mnist:../shared/data/mnist", help="data spec (train split = query pool)")
    parser.add_argument("--student", default="mnist-student-b", help="student model (preset or notation)")
    parser.add_argument("--queries", type=_positive_ints, default=[1000, 5000, 20000])
    parser.add_argument("--labels", default="soft,top1", help="soft, top1 or both (comma-separated)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--tools", default=",".join(TOOLS), help="deepmimic, art or both")
    parser.add_argument("--out", default="runs/peer-extraction", help="folder for runs.json and summary.md")
    args = parser.parse_args(argv)
    if args.worker_art:
        print(json.dumps(run_art_worker(Job(**json.loads(args.worker_art)))))
        return 0
    if not args.victim or not Path(args.victim).is_file():
        parser.error(f"--victim: no ONNX file at {args.victim!r}")
    labels = [v for v in args.labels.split(",") if v]
    tools = [t for t in args.tools.split(",") if t]
    if set(labels) - set(LABELS) or set(tools) - set(TOOLS) or args.seeds < 1:
        parser.error(f"--labels takes {', '.join(LABELS)}; --tools {', '.join(TOOLS)}; --seeds >= 1")
    if "art" in tools and not _has_art():
        print("[bench] adversarial-robustness-toolbox is not installed: the ART column is skipped", flush=True)
        tools.remove("art")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    runs: list[dict[str, Any]] = []
    for seed in range(args.seeds):
        for label_kind in labels:
            for queries in args.queries:
                job = Job(args.victim, args.data, args.student, queries, label_kind, seed, args.epochs, lr=args.lr)
                # Alternate which tool goes first, so slow drift of the machine hits both alike.
                order = tools if (seed + queries // 1000) % 2 == 0 else tools[::-1]
                for tool in order:
                    run = run_one(tool, job, out / "work")
                    runs.append(run)
                    print(
                        f"[bench] {tool:9s} {label_kind:4s} {queries:6d} queries seed {seed}: "
                        f"accuracy {run['accuracy']:.2%} agreement {run['agreement']:.2%} "
                        f"sent {run['queries_sent']:,} wall {run['wall_s']:.1f} s "
                        f"(cpu {run['user_s'] + run['sys_s']:.1f} s)",
                        flush=True,
                    )
                    (out / "runs.json").write_text(json.dumps(runs, indent=1), encoding="utf-8")
    shutil.rmtree(out / "work", ignore_errors=True)
    rows = summarise(runs)
    text = table(rows)
    (out / "summary.md").write_text(text + "\n", encoding="utf-8")
    (out / "summary.json").write_text(json.dumps(rows, indent=1), encoding="utf-8")
    print(text)
    return 0


def _has_art() -> bool:
    import importlib.util  # noqa: PLC0415

    return importlib.util.find_spec("art") is not None


if __name__ == "__main__":
    raise SystemExit(main())
