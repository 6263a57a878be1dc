"""The report of a ``deepmimic reproduce`` experiment, from its ``summary.json`` alone.

A sweep (split ratio, unbalanced removal, out-of-domain) is drawn as accuracy against the
swept value with the paper's numbers dashed beside ours (DeepMimic Fig. 1, Tables 3, 4); a
single-point experiment (a ladder, a config table) as accuracy bars beside the paper's; the
inference-time experiment as seconds per model (Table 6). Every report names its command,
wall time, scale, seeds and environment, and links the per-run reports.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from deepmimic.errors import DataError
from deepmimic.report.blocks import Block, Bullets, Code, Heading, Image, Paragraph, Table, count, duration
from deepmimic.report.markdown import environment_items
from deepmimic.report.plots import MENTOR_COLOR, PALETTE, _png, accuracy_png, new_figure
from deepmimic.report.run_data import ModelRun

SUMMARY_FILE = "summary.json"


def read_summary(out: Path) -> dict[str, Any]:
    """Parse ``out/summary.json``; DataError naming the file when absent or malformed."""
    path = out / SUMMARY_FILE
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise DataError(f"{path}: unreadable experiment summary ({exc})") from None
    if not isinstance(summary, dict) or not isinstance(summary.get("rows"), list) or not summary["rows"]:
        raise DataError(f"{path}: expected an object with a non-empty 'rows' list")
    return summary


def _is_timing(summary: dict[str, Any]) -> bool:
    return summary.get("experiment") == "inference-time"


def _ms(pair: Sequence[float]) -> str:
    return f"{100 * pair[0]:.2f} ± {100 * pair[1]:.2f}"


def _models(summary: dict[str, Any]) -> list[str]:
    return list(summary["rows"][0]["accuracy"])


# ----------------------------------------------------------------------------- tables


def sweep_table(summary: dict[str, Any]) -> Table:
    """The experiment's table: points as rows for a sweep, models as rows for one point."""
    if _is_timing(summary):
        return _timing_table(summary)
    rows = summary["rows"]
    if len(rows) == 1:
        return _models_table(rows[0])
    models = _models(summary)
    has_paper = any(r.get("paper") for r in rows)
    header = ["Point", "Student images"]
    for name in models:
        header.append(f"{name} (%)")
        if name in rows[0]["relative"]:
            header.append(f"{name} relative (%)")
        if has_paper:
            header.append(f"{name} paper (%)")
    cells = []
    for row in rows:
        line = [row["point"], count(row.get("unlabeled"))]
        for name in models:
            line.append(_ms(row["accuracy"][name]))
            if name in row["relative"]:
                line.append(_ms(row["relative"][name]))
            if has_paper:
                paper = (row.get("paper") or {}).get(name)
                line.append("-" if paper is None else f"{paper:.2f}")
        cells.append(tuple(line))
    return Table(tuple(header), tuple(cells), tuple([False] + [True] * (len(header) - 1)))


def _models_table(row: dict[str, Any]) -> Table:
    """Models as rows; the relative and paper columns only where the run has them (FEED has neither)."""
    paper = row.get("paper") or {}
    with_relative, with_paper = bool(row["relative"]), bool(paper)
    header = ["Model", "Accuracy (%)"]
    header += ["Relative to mentor (%)"] if with_relative else []
    header += ["Paper (%)", "Δ vs paper (points)"] if with_paper else []
    cells = []
    for name, pair in row["accuracy"].items():
        line = [name, _ms(pair)]
        if with_relative:
            relative = row["relative"].get(name)
            line.append("-" if relative is None else _ms(relative))
        if with_paper:
            theirs = paper.get(name)
            line.append("-" if theirs is None else f"{theirs:.2f}")
            line.append("-" if theirs is None else f"{100 * pair[0] - theirs:+.2f}")
        cells.append(tuple(line))
    return Table(tuple(header), tuple(cells), tuple([False] + [True] * (len(header) - 1)))


def _timing_table(summary: dict[str, Any]) -> Table:
    rows = summary["rows"]
    devices = [k for k in rows[0] if k in ("cpu", "cuda")]
    header = (
        ["Model", "Params", "MACs/image"]
        + [f"{d.upper()} s (mean ± std)" for d in devices]
        + [f"{d.upper()} speed-up" for d in devices]
    )
    mentor = rows[0]
    cells = []
    for row in rows:
        line = [row["model"], count(row["parameters"]), count(row["macs"])]
        line += [f"{row[d]['mean_s']:.3f} ± {row[d]['std_s']:.3f}" for d in devices]
        line += [f"{mentor[d]['mean_s'] / row[d]['mean_s']:.2f}x" for d in devices]
        cells.append(tuple(line))
    return Table(tuple(header), tuple(cells), tuple([False] + [True] * (len(header) - 1)))


def summary_table(summary: dict[str, Any]) -> str:
    """The experiment's table in Markdown, with a line saying what the numbers are."""
    table = sweep_table(summary)
    lines = ["| " + " | ".join(table.header) + " |", "|" + " --- |" * len(table.header)]
    lines += ["| " + " | ".join(row) + " |" for row in table.rows]
    if _is_timing(summary):
        lines.append(
            f"\n{summary['test_images']} test images, batch {summary['batch_size']}, "
            f"mean of {summary['repeats']} passes "
            f"after one warm-up pass, {summary['threads']} CPU threads, torch {summary['torch']}."
        )
    else:
        lines.append(f"\n{summary['seeds']} seed(s) per point; accuracy in %, mean ± standard deviation over seeds.")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- figures


def sweep_png(summary: dict[str, Any]) -> bytes | None:
    """Accuracy (%) against the swept value, mean ± std over seeds; the paper's values dashed."""
    if _is_timing(summary):
        return _timing_png(summary)
    rows = summary["rows"]
    if len(rows) == 1:
        row = rows[0]
        models = [
            ModelRun(
                name,
                "mentor" if i == 0 and name not in summary.get("students", ()) else "student",
                {"accuracy": pair[0], "accuracy_std": pair[1]},
            )
            for i, (name, pair) in enumerate(row["accuracy"].items())
        ]
        return accuracy_png(models, row.get("paper") or {}, str(summary.get("paper_source") or ""))
    values = [r.get("value") for r in rows]
    numeric = all(isinstance(v, (int, float)) for v in values)
    x = np.array(values if numeric else range(len(rows)), dtype=float)
    fig = new_figure(figsize=(8.5, 4.6), layout="constrained")
    ax = fig.subplots()
    for i, name in enumerate(_models(summary)):
        color = MENTOR_COLOR if i == 0 else PALETTE[(i - 1) % len(PALETTE)]
        mean = np.array([100 * r["accuracy"][name][0] for r in rows])
        std = np.array([100 * r["accuracy"][name][1] for r in rows])
        ax.errorbar(x, mean, yerr=std, color=color, marker="o", linewidth=2.2 if i == 0 else 1.6, capsize=3, label=name)
        paper = [(r.get("paper") or {}).get(name) for r in rows]
        if any(p is not None for p in paper):
            ax.plot(
                x,
                [math.nan if p is None else p for p in paper],
                color=color,
                linestyle="--",
                marker="x",
                alpha=0.7,
                label=f"{name} (paper)",
            )
    if numeric:
        ax.set_xticks(x, [f"{100 * v:g}%" for v in x])
    else:
        ax.set_xticks(x, [r["point"] for r in rows], rotation=30)
    ax.set_xlabel(summary.get("x_label") or "point")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(summary.get("title") or summary.get("experiment", ""), fontsize=12, loc="left", fontweight="bold")
    ax.grid(True, alpha=0.3)
    ax.spines[["top", "right"]].set_visible(False)
    ax.legend(fontsize=8, frameon=False, ncol=2)
    return _png(fig)


def _timing_png(summary: dict[str, Any]) -> bytes:
    rows = summary["rows"]
    devices = [k for k in rows[0] if k in ("cpu", "cuda")]
    fig = new_figure(figsize=(8, 1.2 + 0.6 * len(rows) * len(devices)), layout="constrained")
    ax = fig.subplots()
    height = 0.8 / len(devices)
    for j, device in enumerate(devices):
        positions = np.arange(len(rows)) + j * height
        means = [r[device]["mean_s"] for r in rows]
        stds = [r[device]["std_s"] for r in rows]
        ax.barh(positions, means, height, xerr=stds, color=PALETTE[j], label=device.upper(), capsize=3)
        for p, m in zip(positions, means):
            ax.text(m, p, f" {m:.3f} s", va="center", fontsize=9)
    ax.set_yticks(np.arange(len(rows)) + height * (len(devices) - 1) / 2, [r["model"] for r in rows])
    ax.invert_yaxis()
    ax.set_xlabel(f"seconds to classify {summary['test_images']:,} test images (batch {summary['batch_size']})")
    ax.set_title("Inference time per model (DeepMimic Table 6)", fontsize=12, loc="left", fontweight="bold")
    ax.legend(frameon=False)
    ax.spines[["top", "right"]].set_visible(False)
    return _png(fig)


# ----------------------------------------------------------------------------- blocks


def _scale_items(summary: dict[str, Any]) -> list[str]:
    if _is_timing(summary):
        return [
            f"Data: `{summary.get('dataset')}` test set, {count(summary.get('test_images'))} images; "
            "freshly initialised models (time depends on the architecture, not the weights); "
            f"mean ± std of {summary.get('repeats')} passes "
            f"after a warm-up pass, batch {summary.get('batch_size')}."
        ]
    subset, test_subset = summary.get("subset"), summary.get("test_subset")
    epochs = summary.get("epochs")
    items = [
        f"Data: `{summary.get('dataset')}`; training images: {count(subset) if subset else 'all'}; test images: "
        f"{count(test_subset) if test_subset else 'all'} (stratified subsets).",
        f"Epochs: {epochs if epochs is not None else 'as configured'}"
        + (f" (mentor), {summary['student_epochs']} (students)" if summary.get("student_epochs") else "")
        + f"; seeds: {summary.get('seeds')} per point.",
    ]
    recipe = summary.get("recipe")
    if isinstance(recipe, dict):
        train = recipe.get("train") or {}
        shown = ", ".join(f"{k} {v}" for k, v in train.items())
        source = "the paper's" if recipe.get("paper_epochs") else "ours or the command line's"
        items.append(
            f"Recipe: mentor `{recipe.get('mentor_model')}`; every model: {shown}. Epochs: {source}. "
            "SGD, equal epochs, dropout in the mentor only, the 20/80 split and the full test set follow the paper; "
            "our choices where it is silent: " + "; ".join(str(c) for c in recipe.get("our_choices") or []) + "."
        )
    if summary.get("config"):
        items.append(f"Config: `{summary['config']}`.")
    return items


def sweep_blocks(summary: dict[str, Any], figure: str | None) -> list[Block]:
    """What the experiment's report says; ``figure`` names the drawn PNG, if any."""
    title = summary.get("title") or summary.get("experiment", "experiment")
    blocks: list[Block] = [Heading(f"Experiment `{summary.get('experiment')}`: {title}", 1)]
    if figure:
        blocks.append(Image(figure, title, title + "."))
    blocks.append(sweep_table(summary))
    if _is_timing(summary):
        blocks.append(Paragraph("Speed-up = the mentor's time divided by the model's."))
    else:
        source = summary.get("paper_source")
        blocks.append(
            Paragraph(
                f"Paper numbers: {source}."
                if source
                else "The paper printed no numbers for this experiment at this point."
            )
        )
        blocks.append(
            Paragraph(
                f"Accuracy in %, mean ± standard deviation over {summary.get('seeds')} seed(s)"
                + (" (± 0 means one seed: no spread was measured)." if summary.get("seeds") == 1 else ".")
            )
        )
    notes = [str(n) for n in summary.get("notes") or []]
    if notes:
        blocks.append(Bullets(tuple(notes)))
    blocks.append(Heading("What ran"))
    command = summary.get("command")
    blocks += [Paragraph("Command:"), Code(str(command))] if command else [Paragraph("The command was not recorded.")]
    items = _scale_items(summary) + environment_items(summary.get("environment") or {}, summary.get("wall_time_s"))
    runs_total = summary.get("runs_wall_time_s")
    read_back = summary.get("read_back_runs")
    if isinstance(runs_total, (int, float)) and (
        read_back > 0
        if isinstance(read_back, int)  # summaries before read_back_runs: guess from the times
        else abs(runs_total - float(summary.get("wall_time_s") or 0)) > 0.05 * runs_total
    ):
        items.append(
            f"The runs' own wall times add up to {duration(runs_total)} "
            "(points finished earlier were read back with --resume)."
        )
    blocks.append(Bullets(tuple(items)))
    runs = [
        (row["point"], run, seconds)
        for row in summary["rows"]
        for run, seconds in zip(row.get("runs", []), row.get("run_wall_time_s", []))
    ]
    if runs:
        blocks.append(Heading("Runs"))
        blocks.append(
            Bullets(
                tuple(
                    f"{point}: [{run}/report.md]({run}/report.md) ([html]({run}/report.html)), wall time "
                    f"{duration(seconds)}"
                    for point, run, seconds in runs
                )
            )
        )
    return blocks
