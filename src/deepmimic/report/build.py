"""Build report.md, report.html and the figures of a finished run, from its files alone."""

from __future__ import annotations

from pathlib import Path

from deepmimic.io_utils import atomic_open, write_text
from deepmimic.report.html import render_html
from deepmimic.report.loading import load_run
from deepmimic.report.markdown import render_markdown, report_blocks
from deepmimic.report.plots import accuracy_png, confusion_png, curves_png


def _write_bytes(path: Path, payload: bytes) -> None:
    with atomic_open(path, "wb") as handle:
        handle.write(payload)


def build_report(run_dir: str | Path) -> dict[str, Path]:
    """Write the report of the run in ``run_dir`` beside its results; returns the paths written.

    Reads only saved files (results.json, config.yaml, metrics.jsonl), draws
    ``accuracy.png`` (ours beside the paper's numbers), ``curves.png`` (DeepMimic paper
    Figs. 2, 4, 5) and ``confusion.png`` (Fig. 3) when there is something to draw, then
    writes ``report.md`` (linking the PNGs) and a self-contained ``report.html``
    (PNGs embedded). Every file is written atomically; rebuilding gives identical files.
    Keys of the returned dict are the file names. Raises
    :class:`deepmimic.errors.DataError` / :class:`deepmimic.errors.ConfigError` for an
    unreadable run directory.
    """
    run = load_run(run_dir)
    drawn = {
        "accuracy.png": accuracy_png(run.models, run.paper.get("accuracy"), str(run.paper.get("source") or "")),
        "curves.png": curves_png(run.models),
        "confusion.png": confusion_png(run.models),
    }
    images = {name: png for name, png in drawn.items() if png is not None}
    blocks = report_blocks(run, list(images))
    written: dict[str, Path] = {}
    for name, png in images.items():
        _write_bytes(run.run_dir / name, png)
        written[name] = run.run_dir / name
    write_text(run.run_dir / "report.md", render_markdown(blocks))
    written["report.md"] = run.run_dir / "report.md"
    write_text(run.run_dir / "report.html", render_html(blocks, images))
    written["report.html"] = run.run_dir / "report.html"
    return written
