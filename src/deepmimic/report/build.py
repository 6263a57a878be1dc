"""Build report.md, report.html and the figures of a finished run, from its files alone."""

from __future__ import annotations

from pathlib import Path

from deepmimic.io_utils import atomic_open, write_text
from deepmimic.report.audit import FIGURE, audit_blocks, audit_png, read_audit
from deepmimic.report.audit_summary import AUDIT_FILE
from deepmimic.report.blocks import Block
from deepmimic.report.examples import examples_png, load_examples
from deepmimic.report.html import render_html
from deepmimic.report.loading import load_run
from deepmimic.report.markdown import render_markdown, report_blocks
from deepmimic.report.plots import accuracy_png, confusion_png, curves_png
from deepmimic.report.sweep import SUMMARY_FILE, read_summary, sweep_blocks, sweep_png


def _write_bytes(path: Path, payload: bytes) -> None:
    with atomic_open(path, "wb") as handle:
        handle.write(payload)


def build_report(run_dir: str | Path) -> dict[str, Path]:
    """Write the report of the run in ``run_dir`` beside its results; returns the paths written.

    Reads only saved files (results.json, config.yaml, metrics.jsonl), draws
    ``accuracy.png`` (ours beside the paper's numbers), ``curves.png`` (DeepMimic paper
    Figs. 2, 4, 5), ``confusion.png`` (Fig. 3) and ``examples.png`` (Figs. 6, 7) when there is something to draw, then
    writes ``report.md`` (linking the PNGs) and a self-contained ``report.html``
    (PNGs embedded). Every file is written atomically; rebuilding gives identical files.
    Keys of the returned dict are the file names. Raises
    :class:`deepmimic.errors.DataError` / :class:`deepmimic.errors.ConfigError` for an
    unreadable run directory.
    """
    if not (Path(run_dir) / "results.json").exists() and (Path(run_dir) / SUMMARY_FILE).exists():
        return build_sweep_report(run_dir)
    if not (Path(run_dir) / "results.json").exists() and (Path(run_dir) / AUDIT_FILE).exists():
        return build_audit_report(run_dir)
    run = load_run(run_dir)
    drawn = {
        "accuracy.png": accuracy_png(run.models, run.paper.get("accuracy"), str(run.paper.get("source") or "")),
        "curves.png": curves_png(run.models),
        "confusion.png": confusion_png(run.models, run.class_names),
        "examples.png": examples_png(load_examples(run.run_dir), run.class_names),
    }
    images = {name: png for name, png in drawn.items() if png is not None}
    return _write_report(run.run_dir, images, report_blocks(run, list(images)))


def _write_report(folder: Path, images: dict[str, bytes], blocks: list[Block]) -> dict[str, Path]:
    """Write the PNGs, report.md and the self-contained report.html into ``folder``."""
    written: dict[str, Path] = {}
    for name, png in images.items():
        _write_bytes(folder / name, png)
        written[name] = folder / name
    write_text(folder / "report.md", render_markdown(blocks))
    written["report.md"] = folder / "report.md"
    write_text(folder / "report.html", render_html(blocks, images))
    written["report.html"] = folder / "report.html"
    return written


def build_sweep_report(out: str | Path) -> dict[str, Path]:
    """Write ``sweep.png``, ``report.md`` and ``report.html`` of a ``deepmimic reproduce`` folder.

    Reads only ``summary.json`` (see :mod:`deepmimic.report.sweep`); atomic, reproducible.
    """
    out = Path(out)
    summary = read_summary(out)
    png = sweep_png(summary)
    images = {"sweep.png": png} if png is not None else {}
    return _write_report(out, images, sweep_blocks(summary, "sweep.png" if png is not None else None))


def build_audit_report(out: str | Path) -> dict[str, Path]:
    """Write ``audit.png``, ``report.md`` and ``report.html`` of a ``deepmimic audit`` folder (from audit.json)."""
    out = Path(out)
    audit = read_audit(out)
    return _write_report(out, {FIGURE: audit_png(audit)}, audit_blocks(audit, FIGURE))
