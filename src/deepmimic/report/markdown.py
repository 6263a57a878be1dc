"""The report's content, as a list of blocks, and its Markdown rendering.

:func:`report_blocks` decides what the report says (headline, results table beside
the paper's numbers, figures, what ran; the pipeline-specific parts come from the
pipeline's :class:`deepmimic.report.views.RunView`); :func:`render_markdown` and
:func:`deepmimic.report.html.render_html` only lay those blocks out, so report.md
and report.html always say the same thing. Inline text may use ``code`` spans,
``**bold**`` and ``[links](file)``; every value comes from the run's saved files,
so rebuilding a report gives identical text.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from deepmimic.pipelines.registry import get_pipeline
from deepmimic.report.blocks import Block, Bullets, Code, Heading, Image, Paragraph, Table, cell, duration, num
from deepmimic.report.run_data import RunData
from deepmimic.report.views import RunView

FIGURES = {  # file -> (alt text, caption)
    "accuracy.png": ("Test accuracy per model", "Test accuracy per model."),
    "curves.png": (
        "Test loss and accuracy curves",
        "Test loss and test accuracy per evaluated epoch (as in the DeepMimic paper, Figs. 2, 4 and 5).",
    ),
    "confusion.png": (
        "Confusion matrices",
        "Confusion matrices on the test set, rows = true class, columns = predicted class, shaded by the share "
        "of the true class with small shares emphasised so shared mistakes stand out "
        "(as in the DeepMimic paper, Fig. 3).",
    ),
    "examples.png": (
        "Test images both got right, and images only the mentor got right",
        "Per student: test images the mentor and the student both classified correctly (as in the DeepMimic paper, "
        "Fig. 6), and images the mentor got right but the student got wrong, with the student's answer after the "
        "arrow (Fig. 7). Drawn at random from the test set with the run's seed.",
    ),
}


def _image(file: str, extra: str = "") -> Image:
    alt, caption = FIGURES[file]
    return Image(file, alt, caption + extra)


# ----------------------------------------------------------------------------- content


def _training_table(run: RunData, view: RunView) -> Table:
    header = (
        "Model",
        "Epochs",
        "Epochs logged",
        "Batch",
        "Optimizer",
        "LR",
        "Schedule",
        "Augment",
        "Seed",
        "Train time",
        "Images/s",
    )
    numeric = (False, True, True, True, False, True, False, False, True, True, True)
    rows = []
    for model in run.models:
        settings = view.train_settings(run, model)
        epochs = model.summary.get("epochs", settings.get("epochs", "-"))
        speeds = [float(r["images_per_s"]) for r in model.metrics if num(r.get("images_per_s")) is not None]
        logged = str(max(r["epoch"] for r in model.metrics)) if model.metrics else "-"
        rows.append(
            (
                cell(model.name),
                str(epochs),
                logged,
                str(settings.get("batch_size", "-")),
                cell(str(settings.get("optimizer", "-"))),
                str(settings.get("lr", "-")),
                cell(str(settings.get("schedule", "-"))),
                cell(str(settings.get("augment", "-"))),
                str(settings.get("seed", "-")),
                duration(model.summary.get("train_time_s")),
                f"{sum(speeds) / len(speeds):,.0f}" if speeds else "-",
            )
        )
    return Table(header, tuple(rows), numeric)


def environment_items(env: dict[str, Any], wall_time_s: Any) -> list[str]:
    """Bullets naming the device, threads, software versions and the wall time."""
    items = [
        f"{label}: `{cell(str(env[key]))}`"
        for key, label in (
            ("device", "Device"),
            ("gpu", "GPU"),
            ("cpus", "CPU cores"),
            ("threads", "CPU threads"),
            ("python", "Python"),
            ("torch", "PyTorch"),
            ("platform", "Platform"),
        )
        if key in env
    ]
    items.append(f"Wall time: {duration(wall_time_s)}.")
    return items


def _environment_items(run: RunData) -> list[str]:
    return environment_items(run.results.get("environment") or {}, run.results.get("wall_time_s"))


def report_blocks(run: RunData, figures: Sequence[str]) -> list[Block]:
    """The report's content for ``run``; ``figures`` names the PNG files that were drawn."""
    view = get_pipeline(run.pipeline, str(run.run_dir)).view
    blocks: list[Block] = [Heading(f"{view.title} report: {run.name}", 1), Paragraph(view.headline(run))]

    has_paper = bool(run.paper.get("accuracy") or run.paper.get("relative_accuracy"))
    blocks.append(Heading("Results"))
    if "accuracy.png" in figures:
        paper_note = " Grey hatched bars are the paper's numbers." if run.paper.get("accuracy") else ""
        blocks.append(_image("accuracy.png", paper_note))
    blocks.append(view.results_table(run))
    source = run.paper.get("source")
    if has_paper:
        blocks.append(
            Paragraph(
                f"Paper numbers: {source or 'as given in the config'}. "
                "Δ = our accuracy minus the paper's, in percentage points."
            )
        )
    else:
        blocks.append(
            Paragraph(
                "No paper numbers were recorded for this run (a `paper:` block in the config prints them beside ours)."
            )
        )

    blocks.append(Heading("Training curves"))
    if "curves.png" in figures:
        blocks.append(_image("curves.png"))
    else:
        blocks.append(Paragraph("No model was evaluated on the test set during training, so there are no curves."))

    if "confusion.png" in figures:
        blocks += [Heading("Confusion matrices"), _image("confusion.png")]
    if "examples.png" in figures:
        blocks += [Heading("Where the student differs from the mentor"), _image("examples.png")]

    blocks.append(Heading("What ran"))
    command = run.results.get("command")
    if command:
        blocks += [Paragraph("Command:"), Code(str(command))]
    else:
        output_dir = str((run.config or {}).get("output_dir") or run.run_dir)
        blocks += [
            Paragraph("The command was not recorded. To rerun with the saved configuration:"),
            Code(f"deepmimic run {output_dir.rstrip('/')}/config.yaml"),
        ]
    blocks.append(Bullets(tuple(view.data_items(run))))
    blocks.append(_training_table(run, view))
    blocks.append(Bullets(tuple(_environment_items(run))))
    files = ["[results.json](results.json)", "[config.yaml](config.yaml)"] + [f"[{name}]({name})" for name in figures]
    blocks.append(Paragraph("Files: " + ", ".join(files) + "."))
    return blocks


# ----------------------------------------------------------------------------- markdown


def _markdown_table(table: Table) -> list[str]:
    align = ["---:" if right else "---" for right in table.numeric]
    lines = ["| " + " | ".join(table.header) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(row) + " |" for row in table.rows]
    return lines


def render_markdown(blocks: Sequence[Block]) -> str:
    """Lay ``blocks`` out as GitHub-flavoured Markdown (figures link to the PNGs beside it)."""
    parts: list[str] = []
    for block in blocks:
        if isinstance(block, Heading):
            parts.append("#" * block.level + " " + block.text)
        elif isinstance(block, Paragraph):
            parts.append(block.text)
        elif isinstance(block, Bullets):
            parts.append("\n".join(f"- {item}" for item in block.items))
        elif isinstance(block, Code):
            parts.append(f"```\n{block.text}\n```")
        elif isinstance(block, Table):
            parts.append("\n".join(_markdown_table(block)))
        elif isinstance(block, Image):
            parts.append(f"![{block.alt}]({block.file})\n\n*{block.caption}*")
    return "\n\n".join(parts) + "\n"
