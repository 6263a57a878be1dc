"""The report of a ``deepmimic audit`` folder, from its ``audit.json`` alone (engine-free).

Figure: fidelity (agreement with the teacher on the test set) and test accuracy against
the number of queries, log x axis, one line per defence with a mean +- std band over
seeds, the teacher's accuracy as a reference line. Tables: queries needed for 90 / 95 /
99% agreement per defence, and every point's numbers. Then the command and the machine.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from deepmimic.errors import DataError
from deepmimic.report.audit_summary import AUDIT_FILE, FIDELITY_TARGETS
from deepmimic.report.blocks import Block, Bullets, Code, Heading, Image, Paragraph, Table, count, duration, pct
from deepmimic.report.markdown import environment_items, render_markdown
from deepmimic.report.plots import MENTOR_COLOR, PALETTE, _png, new_figure

FIGURE = "audit.png"


def read_audit(folder: Path) -> dict[str, Any]:
    """``audit.json`` of ``folder``; DataError (one line) when it is missing or unreadable."""
    path = folder / AUDIT_FILE
    try:
        audit = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: not a readable audit ({exc})") from exc
    if not isinstance(audit, dict) or audit.get("kind") != "audit" or not isinstance(audit.get("curves"), list):
        raise DataError(f"{path}: not an audit written by deepmimic audit")
    return audit


def audit_png(audit: dict[str, Any]) -> bytes:
    """Agreement (left) and accuracy (right) in % against queries (log scale), a band of +- std per defence."""
    fig = new_figure(figsize=(10, 4.2), layout="constrained")
    axes = fig.subplots(1, 2, sharex=True)
    for ax, key, label in (
        (axes[0], "agreement", "agreement with the teacher (%)"),
        (axes[1], "accuracy", "test accuracy (%)"),
    ):
        for i, curve in enumerate(audit["curves"]):
            rows = curve["rows"]
            if not rows:
                continue
            x = np.array([r["budget"] for r in rows], dtype=float)
            mean = np.array([100 * r[key][0] for r in rows])
            std = np.array([100 * r[key][1] for r in rows])
            color = PALETTE[i % len(PALETTE)]
            ax.plot(x, mean, color=color, marker="o", linewidth=1.8, label=curve["defence"])
            ax.fill_between(x, mean - std, mean + std, color=color, alpha=0.18, linewidth=0)
        if key == "accuracy":
            teacher = audit["teacher"].get("accuracy")
            if isinstance(teacher, (int, float)):
                ax.axhline(100 * teacher, color=MENTOR_COLOR, linestyle="--", linewidth=1.2, label="teacher")
        ax.set_xscale("log")
        ax.set_xlabel("queries (answered training images)")
        ax.set_ylabel(label)
        ax.grid(True, alpha=0.3, which="both")
        ax.spines[["top", "right"]].set_visible(False)
    axes[0].legend(fontsize=8, frameon=False, title="defence", title_fontsize=8)
    axes[1].legend(fontsize=8, frameon=False)
    fig.suptitle("How fast the teacher is copied", fontsize=12, x=0.01, ha="left", fontweight="bold")
    return _png(fig)


def _needed_table(audit: dict[str, Any]) -> Table:
    largest = max(audit["budgets"])
    rows = []
    for curve in audit["curves"]:
        needed = audit["needed"].get(curve["defence"], {})
        cells = [
            count(n) if isinstance(n, int) else f"> {count(largest)}"
            for n in (needed.get(f"{t:.2f}") for t in FIDELITY_TARGETS)
        ]
        rows.append((curve["defence"], *cells))
    header = ("Defence", *(f"queries for {t:.0%} agreement" for t in FIDELITY_TARGETS))
    return Table(header, tuple(rows), (False, True, True, True))


def _points_table(audit: dict[str, Any]) -> Table:
    rows = []
    for curve in audit["curves"]:
        for row in curve["rows"]:
            rows.append(
                (
                    curve["defence"],
                    count(row["budget"]),
                    f"{pct(row['agreement'][0])} ± {100 * row['agreement'][1]:.2f}",
                    f"{pct(row['accuracy'][0])} ± {100 * row['accuracy'][1]:.2f}",
                    str(row["seeds"]),
                    duration(row["train_time_s"][0]),
                )
            )
    header = ("Defence", "Queries", "Agreement", "Accuracy", "Seeds", "Training time (mean)")
    return Table(header, tuple(rows), (False, True, True, True, True, True))


def audit_blocks(audit: dict[str, Any], figure: str | None) -> list[Block]:
    """The report's blocks: headline, figure, the two tables, what ran."""
    teacher, data, queries = audit["teacher"], audit["data"], audit["queries"]
    blocks: list[Block] = [
        Heading(f"Audit: how fast `{teacher['spec']}` is copied", level=1),
        Paragraph(
            f"A student (`{audit['student']['model']}`, {count(audit['student']['parameters'])} parameters) trained "
            f"only on the teacher's answers to N query images, for N from {count(min(audit['budgets']))} to "
            f"{count(max(audit['budgets']))}, under each answer defence ({', '.join(audit['defences'])}); "
            f"{audit['seeds']} seed(s) per point. Fidelity is the share of the {count(data['test'])} test images on "
            f"which the student and the teacher name the same class; the teacher's own test accuracy is "
            f"{pct(teacher.get('accuracy'))}."
        ),
    ]
    if figure:
        blocks.append(Image(figure, "agreement and accuracy against queries", "Mean over seeds; bands: ± 1 std."))
    blocks += [
        Heading("Queries needed"),
        Paragraph("The smallest budget whose mean agreement over seeds reaches the target (budgets tried only)."),
        _needed_table(audit),
        Heading("Every point"),
        _points_table(audit),
        Heading("What ran"),
    ]
    command = audit.get("command")
    blocks += [Paragraph("Command:"), Code(str(command))] if command else [Paragraph("The command was not recorded.")]
    items = [
        f"Teacher: `{teacher['source']}` ({teacher['kind']}).",
        f"Query images: {audit['query_data']}.",
        f"Queries: {count(queries['attack'])} attack queries in the log (the largest budget: smaller budgets are its "
        f"prefixes, and every defence is applied to the same answers), plus {count(queries['test'])} test images "
        f"to measure agreement; {count(queries['sent_this_run'])} sent by this invocation (the rest read from the "
        "query log).",
        "Seeds change the student's initial weights and batch order; every seed uses the same queried images.",
    ]
    items += environment_items(audit.get("environment") or {}, audit.get("wall_time_s"))
    blocks.append(Bullets(tuple(items)))
    return blocks


def queries_needed_text(audit: dict[str, Any]) -> str:
    """The queries-needed table as Markdown (what the command line prints)."""
    return render_markdown([_needed_table(audit)]).strip()
