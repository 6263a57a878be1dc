"""A results table (mean +- std over seeds) from the per-row ``metrics.jsonl`` files of finished models.

An experiment whose rows were trained in several invocations (rows split over processes,
or over sessions whose run folders did not survive) keeps each finished model's
``metrics.jsonl``. This script reads them back and prints the table the page quotes, so the
page's numbers come from committed files and not from hand copying:

    python bench/metrics_table.py docs/results/imitation-resnet20-table1 --epochs 15 \\
        --rows kd=KD softlabel="Soft labels" rec=Rec adv=Adv rec-der=Rec+Der all=All \\
        --json docs/results/imitation-resnet20-table1/table1.json

Files are named ``<slug>-seed-<n>.metrics.jsonl``. A row's accuracy for a seed is the test
accuracy logged after its last epoch; a file whose last line is not the asked-for final
epoch, or has no test accuracy, is refused (an unfinished model is not a result). Wall time
is the sum of the file's ``epoch_time_s`` (training only, no evaluation).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

from deepmimic.experiments.points import mean_std
from deepmimic.io_utils import write_json

FILE_PATTERN = re.compile(r"^(?P<slug>.+)-seed-(?P<seed>\d+)\.metrics\.jsonl$")


class TableError(ValueError):
    """A metrics file that cannot give a finished row."""


def final_record(path: Path, epochs: int) -> dict[str, Any]:
    """The last epoch's record of a finished model: its test accuracy and summed training time."""
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not lines:
        raise TableError(f"{path}: empty")
    try:
        records = [json.loads(line) for line in lines]
    except json.JSONDecodeError as exc:
        raise TableError(f"{path}: not JSON lines ({exc.msg} at line {exc.lineno})") from None
    if not all(isinstance(r, dict) for r in records):
        raise TableError(f"{path}: a line is not a JSON object")
    last = records[-1]
    if last.get("epoch") != epochs:
        raise TableError(f"{path}: last epoch is {last.get('epoch')}, expected {epochs} (unfinished?)")
    if "test_accuracy" not in last:
        raise TableError(f"{path}: no test accuracy after epoch {epochs}")
    return {
        "accuracy": float(last["test_accuracy"]),
        "train_time_s": sum(float(r.get("epoch_time_s", 0.0)) for r in records),
        "test_rows": last.get("test_rows"),
    }


def collect(folder: Path, slugs: list[str], epochs: int) -> dict[str, dict[int, dict[str, Any]]]:
    """{slug: {seed: final record}} for every ``<slug>-seed-<n>.metrics.jsonl`` in ``folder``."""
    found: dict[str, dict[int, dict[str, Any]]] = {slug: {} for slug in slugs}
    for path in sorted(folder.glob("*.metrics.jsonl")):
        match = FILE_PATTERN.match(path.name)
        if match and match["slug"] in found:
            found[match["slug"]][int(match["seed"])] = final_record(path, epochs)
    return found


def summarise(found: dict[str, dict[int, dict[str, Any]]], names: dict[str, str]) -> list[dict[str, Any]]:
    """One row per slug: per-seed accuracies (%), mean and sample std (0 for one seed), train times."""
    rows = []
    for slug, by_seed in found.items():
        accuracies = [100.0 * by_seed[s]["accuracy"] for s in sorted(by_seed)]
        mean, std = mean_std(accuracies) if accuracies else (None, None)
        rows.append(
            {
                "row": names[slug],
                "slug": slug,
                "seeds": sorted(by_seed),
                "accuracy_percent": accuracies,
                "mean": mean,
                "std": std,
                "train_time_s": [by_seed[s]["train_time_s"] for s in sorted(by_seed)],
                "test_rows": sorted({by_seed[s]["test_rows"] for s in by_seed} - {None}),
            }
        )
    return rows


def markdown(rows: list[dict[str, Any]]) -> str:
    """The table as Markdown: per-seed accuracies, mean +- std, summed training minutes."""
    seeds = sorted({s for row in rows for s in row["seeds"]})
    head = "| Row | " + " | ".join(f"Seed {s}" for s in seeds) + " | Mean +- std | Training time (min, per seed) |"
    lines = [head, "|---|" + "---:|" * (len(seeds) + 2)]
    for row in rows:
        by_seed = dict(zip(row["seeds"], row["accuracy_percent"], strict=True))
        cells = [f"{by_seed[s]:.2f}%" if s in by_seed else "-" for s in seeds]
        if row["mean"] is None:
            summary = "-"
        elif len(row["seeds"]) > 1:
            summary = f"{row['mean']:.2f} +- {row['std']:.2f}%"
        else:
            summary = f"{row['mean']:.2f}% (1 seed)"
        minutes = ", ".join(f"{t / 60:.0f}" for t in row["train_time_s"]) or "-"
        lines.append(f"| {row['row']} | " + " | ".join(cells) + f" | {summary} | {minutes} |")
    return "\n".join(lines)


def parse_rows(items: list[str]) -> dict[str, str]:
    """``slug=Display name`` items, in table order."""
    names: dict[str, str] = {}
    for item in items:
        slug, sep, name = item.partition("=")
        if not sep or not slug or not name:
            raise TableError(f"--rows item {item!r} is not slug=Name")
        names[slug] = name
    return names


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--rows", nargs="+", required=True, help="slug=Name items, in table order")
    parser.add_argument("--epochs", type=int, required=True, help="every model's epochs (a finished model's last)")
    parser.add_argument("--json", type=Path, help="also write the rows here as JSON")
    args = parser.parse_args(argv)
    try:
        names = parse_rows(args.rows)
        if not args.folder.is_dir():
            raise TableError(f"{args.folder}: not a folder")
        rows = summarise(collect(args.folder, list(names), args.epochs), names)
    except (TableError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(markdown(rows))
    if args.json:
        write_json(args.json, {"folder": str(args.folder), "epochs": args.epochs, "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
