"""The report's content, as a list of blocks, and its Markdown rendering.

:func:`report_blocks` decides what the report says (headline, results table beside
the paper's numbers, figures, what ran); :func:`render_markdown` and
:func:`deepmimic.report.html.render_html` only lay those blocks out, so report.md
and report.html always say the same thing. Inline text may use ``code`` spans,
``**bold**`` and ``[links](file)``; every value comes from the run's saved files,
so rebuilding a report gives identical text.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Union

from deepmimic.report.loading import ModelRun, RunData


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 2


@dataclass(frozen=True)
class Paragraph:
    text: str


@dataclass(frozen=True)
class Bullets:
    items: tuple[str, ...]


@dataclass(frozen=True)
class Code:
    text: str


@dataclass(frozen=True)
class Table:
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    numeric: tuple[bool, ...]  # right-aligned columns


@dataclass(frozen=True)
class Image:
    file: str  # PNG file name beside the report
    alt: str  # a few words naming the figure
    caption: str


Block = Union[Heading, Paragraph, Bullets, Code, Table, Image]

FIGURES = {  # file -> (alt text, caption)
    "accuracy.png": ("Test accuracy per model", "Test accuracy per model."),
    "curves.png": (
        "Test loss and accuracy curves",
        "Test loss and test accuracy per evaluated epoch (as in the DeepMimic paper, Figs. 2, 4 and 5).",
    ),
    "confusion.png": (
        "Confusion matrices",
        "Confusion matrices on the test set, rows = true class, columns = predicted class, shaded by the share "
        "of the true class with small shares emphasised so shared mistakes stand out (as in the DeepMimic paper, Fig. 3).",
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


# ----------------------------------------------------------------------------- formatting


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def pct(fraction: Any) -> str:
    """``0.949`` -> ``"94.90%"``; ``"-"`` when absent."""
    value = _num(fraction)
    return "-" if value is None else f"{100 * value:.2f}%"


def count(value: Any) -> str:
    """``438154`` -> ``"438,154"``; ``"-"`` when absent."""
    number = _num(value)
    return "-" if number is None else f"{int(number):,}"


def duration(seconds: Any) -> str:
    """``55.2`` -> ``"55.2 s"``, ``725`` -> ``"12 min 05 s"``, ``3720`` -> ``"1 h 02 min"``."""
    value = _num(seconds)
    if value is None:
        return "-"
    if value < 60:
        return f"{value:.1f} s"
    minutes, secs = divmod(int(round(value)), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _delta(ours: Any, paper: Any) -> str:
    """Ours (a fraction) minus the paper's (percent), in percentage points."""
    a, b = _num(ours), _num(paper)
    return "-" if a is None or b is None else f"{100 * a - b:+.2f} pp"


def _paper_pct(value: Any) -> str:
    number = _num(value)
    return "-" if number is None else f"{number:.2f}%"


# ----------------------------------------------------------------------------- content


def _train_settings(run: RunData, model: ModelRun) -> dict[str, Any]:
    """The model's ``train`` block from config.yaml (``{}`` when unknown)."""
    config = run.config or {}
    if run.kind == "feed":
        if model.role == "ensemble":
            return {}  # not trained: averages the scratch models' outputs
        settings = dict(config.get("train") or {})
        if model.summary.get("seed") is not None:
            settings["seed"] = model.summary["seed"]
        return settings
    if model.role == "mentor":
        return dict((config.get("mentor") or {}).get("train") or {})
    for stage in config.get("students") or []:
        if isinstance(stage, dict) and stage.get("name") == model.name:
            return dict(stage.get("train") or {})
    return {}


def _headline(run: RunData) -> str:
    data = (run.results.get("data") or {}).get("name", "?")
    if run.kind == "feed":
        scored = [m for m in run.models if _num(m.summary.get("accuracy")) is not None]
        trained = [m for m in scored if m.role != "ensemble"]
        text = f"FEED run on `{data}` with `{run.results.get('model', '?')}`."
        if trained:
            best = max(trained, key=lambda m: float(m.summary["accuracy"]))
            text += (f" Best trained model: **{best.name}** at {pct(best.summary['accuracy'])} test accuracy "
                     f"({pct(1 - float(best.summary['accuracy']))} error).")
        for ensemble in (m for m in scored if m.role == "ensemble"):
            text += f" {ensemble.name} (the reference): {pct(ensemble.summary['accuracy'])}."
        return text
    mentor = run.models[0]
    text = f"The mentor reached **{pct(mentor.summary.get('accuracy'))}** test accuracy on `{data}`."
    scored = [m for m in run.models[1:] if _num(m.summary.get("accuracy")) is not None]
    students = [m for m in scored if not m.summary.get("uses_true_labels")]
    baselines = [m for m in scored if m.summary.get("uses_true_labels")]
    if students:
        best = max(students, key=lambda m: float(m.summary["accuracy"]))
        text += (f" Best student: **{best.name}** at {pct(best.summary['accuracy'])} "
                 f"({pct(best.summary.get('relative_accuracy'))} of the mentor), agreeing with the mentor "
                 f"on {pct(best.summary.get('agreement'))} of test images, trained on soft labels only.")
    if baselines:
        text += (" For comparison, " + ", ".join(f"{m.name} reached {pct(m.summary['accuracy'])}" for m in baselines)
                 + " trained on the same student images with their true one-hot labels (the paper's section 4.2 comparison).")
    return text


def _deepmimic_table(run: RunData) -> Table:
    paper = run.paper
    paper_acc, paper_rel = paper.get("accuracy") or {}, paper.get("relative_accuracy") or {}
    has_paper = bool(paper_acc or paper_rel)
    header = ["Model", "Architecture", "Method", "Params", "MACs", "Accuracy"]
    numeric = [False, False, False, True, True, True]
    if has_paper:
        header += ["Paper accuracy", "Δ vs paper"]
        numeric += [True, True]
    header += ["Relative accuracy"]
    numeric += [True]
    if has_paper:
        header += ["Paper relative"]
        numeric += [True]
    header += ["Agreement w/ mentor"]
    numeric += [True]
    rows = []
    for model in run.models:
        s = model.summary
        method = str(s.get("method", "-")) + (" (true labels)" if s.get("uses_true_labels") else "")
        row = [_cell(model.name), f"`{_cell(str(s.get('architecture', s.get('model', '-'))))}`", _cell(method),
               count(s.get("parameters")), count(s.get("macs")), pct(s.get("accuracy"))]
        if has_paper:
            row += [_paper_pct(paper_acc.get(model.name)), _delta(s.get("accuracy"), paper_acc.get(model.name))]
        row += [pct(s.get("relative_accuracy"))]
        if has_paper:
            row += [_paper_pct(paper_rel.get(model.name))]
        row += [pct(s.get("agreement"))]
        rows.append(tuple(row))
    return Table(tuple(header), tuple(rows), tuple(numeric))


def _feed_table(run: RunData) -> Table:
    paper_acc = run.paper.get("accuracy") or {}
    has_paper = bool(paper_acc)
    header = ["Model", "Kind", "Seed", "Params", "Test error", "Test accuracy"]
    numeric = [False, False, True, True, True, True]
    if has_paper:
        header += ["Paper accuracy", "Δ vs paper"]
        numeric += [True, True]
    rows = []
    for model in run.models:
        s = model.summary
        seed = s.get("seed")
        row = [_cell(model.name), _cell(str(s.get("kind", "-"))), "-" if seed is None else str(seed),
               count(s.get("parameters")), pct(s.get("error")), pct(s.get("accuracy"))]
        if has_paper:
            row += [_paper_pct(paper_acc.get(model.name)), _delta(s.get("accuracy"), paper_acc.get(model.name))]
        rows.append(tuple(row))
    return Table(tuple(header), tuple(rows), tuple(numeric))


def _training_table(run: RunData) -> Table:
    header = ("Model", "Epochs", "Epochs logged", "Batch", "Optimizer", "LR", "Schedule", "Augment", "Seed", "Train time", "Images/s")
    numeric = (False, True, True, True, False, True, False, False, True, True, True)
    rows = []
    for model in run.models:
        settings = _train_settings(run, model)
        epochs = model.summary.get("epochs", settings.get("epochs", "-"))
        speeds = [float(r["images_per_s"]) for r in model.metrics if _num(r.get("images_per_s")) is not None]
        logged = str(max(r["epoch"] for r in model.metrics)) if model.metrics else "-"
        rows.append((
            _cell(model.name), str(epochs), logged, str(settings.get("batch_size", "-")),
            _cell(str(settings.get("optimizer", "-"))), str(settings.get("lr", "-")), _cell(str(settings.get("schedule", "-"))),
            _cell(str(settings.get("augment", "-"))), str(settings.get("seed", "-")), duration(model.summary.get("train_time_s")),
            f"{sum(speeds) / len(speeds):,.0f}" if speeds else "-",
        ))
    return Table(header, tuple(rows), numeric)


def _data_items(run: RunData) -> list[str]:
    data = run.results.get("data") or {}
    config = run.config or {}
    items = []
    if run.kind == "feed":
        items.append(f"Data: `{data.get('name', '?')}`, {count(data.get('train'))} training images, {count(data.get('test'))} test images.")
    elif "queries" in run.results:  # deepmimic mimic: a queried teacher, no labelled part
        queries = run.results["queries"]
        kind = "top-1 labels only" if run.results.get("label_only") else "soft labels"
        items.append(f"Data: `{data.get('name', '?')}`, {count(data.get('unlabeled'))} unlabelled images labelled by the teacher "
                     f"({kind}), {count(data.get('test'))} test images.")
        items.append(f"Queries sent to the teacher in this session: {count(queries.get('total_sent'))} "
                     f"(unlabelled images answered: {count((queries.get('unlabelled') or {}).get('labeled'))}"
                     + (f", test images: {count(queries['test'].get('labeled'))}" if queries.get("test") else "") + ").")
    else:
        items.append(f"Data: `{data.get('name', '?')}`, {count(data.get('labeled'))} labelled images (mentor), "
                     f"{count(data.get('unlabeled'))} unlabelled images (students, soft labels only), {count(data.get('test'))} test images.")
    subset_source = data if ("train_subset" in data or "test_subset" in data) else (config.get("data") or {})
    train_subset, test_subset = subset_source.get("train_subset"), subset_source.get("test_subset")
    if train_subset or test_subset:
        items.append(f"Subset: {count(train_subset) if train_subset else 'all'} training images, "
                     f"{count(test_subset) if test_subset else 'all'} test images (stratified).")
    else:
        items.append("Subset: none (full data set).")
    split = config.get("split") or {}
    if run.kind == "deepmimic" and split:
        fraction = _num(split.get("labeled_fraction"))
        share = "?" if fraction is None else f"{100 * fraction:g}%"
        text = f"Split: {share} of the training images labelled (mentor), the rest unlabelled (students), seed {split.get('seed', '-')}"
        if _num(split.get("removal_ratio_bound")):
            text += f", unbalanced (removal ratio bound {split['removal_ratio_bound']})"
        if split.get("out_of_domain"):
            text += f", out-of-domain images added ({pct((split['out_of_domain'] or {}).get('fraction'))})"
        items.append(text + ".")
    soft = run.results.get("soft_labels") or {}
    if soft:
        how = "read from the cache" if soft.get("cached") else "computed once by the mentor"
        items.append(f"Soft labels: {how} in {duration(soft.get('time_s'))} (key `{str(soft.get('key', '?'))[:12]}`).")
    if run.kind == "feed" and _num(run.results.get("agreement_scratch0_vs_ensemble")) is not None:
        items.append(f"Agreement of the first scratch model with the ensemble: {pct(run.results['agreement_scratch0_vs_ensemble'])}.")
    return items


def environment_items(env: dict[str, Any], wall_time_s: Any) -> list[str]:
    """Bullets naming the device, threads, software versions and the wall time."""
    items = [f"{label}: `{_cell(str(env[key]))}`" for key, label in
             (("device", "Device"), ("gpu", "GPU"), ("cpus", "CPU cores"), ("threads", "CPU threads"), ("python", "Python"),
              ("torch", "PyTorch"), ("platform", "Platform"))
             if key in env]
    items.append(f"Wall time: {duration(wall_time_s)}.")
    return items


def _environment_items(run: RunData) -> list[str]:
    return environment_items(run.results.get("environment") or {}, run.results.get("wall_time_s"))


def report_blocks(run: RunData, figures: Sequence[str]) -> list[Block]:
    """The report's content for ``run``; ``figures`` names the PNG files that were drawn."""
    kind = "FEED" if run.kind == "feed" else "DeepMimic"
    blocks: list[Block] = [Heading(f"{kind} report: {run.name}", 1), Paragraph(_headline(run))]

    has_paper = bool(run.paper.get("accuracy") or run.paper.get("relative_accuracy"))
    blocks.append(Heading("Results"))
    if "accuracy.png" in figures:
        paper_note = " Grey hatched bars are the paper's numbers." if run.paper.get("accuracy") else ""
        blocks.append(_image("accuracy.png", paper_note))
    blocks.append(_feed_table(run) if run.kind == "feed" else _deepmimic_table(run))
    source = run.paper.get("source")
    if has_paper:
        blocks.append(Paragraph(f"Paper numbers: {source or 'as given in the config'}. Δ = our accuracy minus the paper's, in percentage points."))
    else:
        blocks.append(Paragraph("No paper numbers were recorded for this run (a `paper:` block in the config prints them beside ours)."))

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
        blocks += [Paragraph("The command was not recorded. To rerun with the saved configuration:"),
                   Code(f"deepmimic run {output_dir.rstrip('/')}/config.yaml")]
    blocks.append(Bullets(tuple(_data_items(run))))
    blocks.append(_training_table(run))
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
