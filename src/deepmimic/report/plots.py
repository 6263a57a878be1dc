"""Figures of a finished run, as PNG bytes (DeepMimic paper, Figs. 2-5).

Figures are drawn on :class:`matplotlib.figure.Figure` objects rendered by the Agg
canvas directly, so no display is needed and pyplot's global state (and the
caller's chosen backend) is never touched. PNGs are saved without a ``Software``
tag or timestamp, so the same run gives byte-identical images. matplotlib is imported
only when a figure is drawn (:func:`new_figure`): importing this module, or building
a report with nothing to draw, does not load it.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from deepmimic.report.run_data import ModelRun, series

if TYPE_CHECKING:
    from matplotlib.figure import Figure

DPI = 100
MENTOR_COLOR = "#222222"
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")
PAPER_COLOR = "#bbbbbb"
ANNOTATE_MAX_CLASSES = 12


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def new_figure(**kwargs: Any) -> Figure:
    """A :class:`matplotlib.figure.Figure` (matplotlib is imported here, on the first figure)."""
    from matplotlib.figure import Figure  # noqa: PLC0415 (matplotlib only when something is drawn)

    return Figure(**kwargs)


def _png(fig: Figure) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: PLC0415

    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    return buffer.getvalue()


def _styles(models: Sequence[ModelRun]) -> list[dict[str, Any]]:
    """One line style per model: the mentor thick and dark, the others from a fixed palette."""
    styles, next_color = [], 0
    for model in models:
        if model.role == "mentor":
            styles.append({"color": MENTOR_COLOR, "linewidth": 2.4, "zorder": 3})
        else:
            styles.append({"color": PALETTE[next_color % len(PALETTE)], "linewidth": 1.6, "zorder": 2})
            next_color += 1
    return styles


def _minor_log_label(value: float, _position: int) -> str:
    """Label the 2s, 3s and 5s of each decade on a log axis, in plain numbers."""
    if value <= 0:
        return ""
    mantissa = round(value / 10 ** math.floor(math.log10(value)), 6)
    return f"{value:g}" if mantissa in (2.0, 3.0, 5.0) else ""


def curves_png(models: Sequence[ModelRun]) -> bytes | None:
    """Test loss (left) and test accuracy (right) per epoch for every model.

    Reproduces the layout of the DeepMimic paper's Figs. 2 (MNIST), 4 (CIFAR-10) and
    5 (Tiny ImageNet). Epochs without an evaluation are skipped; returns ``None`` when
    no model was evaluated during training.
    """
    drawn = [
        (m, s)
        for m, s in zip(models, _styles(models))
        if series(m.metrics, "test_accuracy")[0] or series(m.metrics, "test_loss")[0]
    ]
    if not drawn:
        return None
    from matplotlib.ticker import FuncFormatter, MaxNLocator  # noqa: PLC0415

    fig = new_figure(figsize=(11, 4.6), layout="constrained")
    loss_ax, acc_ax = fig.subplots(1, 2)
    losses: list[float] = []
    for model, style in drawn:
        few = max(len(model.metrics), 1) <= 30
        marker = {"marker": "o", "markersize": 3.5} if few else {}
        epochs, loss = series(model.metrics, "test_loss")
        loss_ax.plot(epochs, loss, label=model.name, **style, **marker)
        losses += loss
        epochs, acc = series(model.metrics, "test_accuracy")
        acc_ax.plot(epochs, [100 * a for a in acc], label=model.name, **style, **marker)
    positive = [v for v in losses if v > 0]
    if positive and max(positive) / min(positive) > 10:
        loss_ax.set_yscale("log")
        loss_ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        if max(positive) / min(positive) < 1000:
            loss_ax.yaxis.set_minor_formatter(FuncFormatter(_minor_log_label))
    for ax, title, ylabel in (
        (loss_ax, "Test loss", "cross-entropy on the test set"),
        (acc_ax, "Test accuracy", "accuracy (%)"),
    ):
        ax.set_title(title, fontsize=13, loc="left", fontweight="bold")
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(True, alpha=0.3)
        ax.spines[["top", "right"]].set_visible(False)
    handles, labels = acc_ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=min(len(labels), 5), frameon=False)
    missing = [m.name for m in models if all(m is not d for d, _ in drawn) and m.metrics]
    if missing:
        fig.suptitle("not evaluated during training: " + ", ".join(missing), fontsize=9, color="#666666")
    return _png(fig)


def _matrix(model: ModelRun) -> np.ndarray | None:
    raw = model.summary.get("confusion")
    try:
        matrix = np.asarray(raw, dtype=float)
    except (TypeError, ValueError):
        return None
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or matrix.shape[0] == 0:
        return None
    return matrix


def confusion_png(models: Sequence[ModelRun], class_names: Sequence[str] = ()) -> bytes | None:
    """Confusion matrices side by side, rows = true class, columns = predicted class.

    Reproduces the DeepMimic paper's Fig. 3 (Mentor beside Student-A on CIFAR-10) for
    every model of the run. Cells are shaded by the share of their true class, so
    mistakes stand out even with unbalanced test sets; counts are written in the
    cells when there are at most 12 classes, and ticks carry ``class_names`` when they
    fit. Returns ``None`` when no model has a
    confusion matrix (FEED runs).
    """
    panels = [(m, mat) for m in models if (mat := _matrix(m)) is not None]
    if not panels:
        return None
    from matplotlib.colors import PowerNorm  # noqa: PLC0415
    from matplotlib.ticker import MaxNLocator  # noqa: PLC0415

    ncols = min(len(panels), 4)
    nrows = math.ceil(len(panels) / ncols)
    k_max = max(mat.shape[0] for _, mat in panels)
    side = 3.4 if k_max <= 6 else 4.2
    fig = new_figure(figsize=(side * ncols + 0.9, side * nrows + 0.5), layout="constrained")
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel()
    image = None
    for ax, (model, matrix) in zip(axes, panels):
        k = matrix.shape[0]
        totals = matrix.sum(axis=1, keepdims=True)
        share = np.divide(matrix, totals, out=np.zeros_like(matrix), where=totals > 0)
        norm = PowerNorm(0.4, vmin=0.0, vmax=1.0)  # small shares stay visible: shared mistakes stand out
        image = ax.imshow(share, cmap="Blues", norm=norm, interpolation="nearest")
        accuracy = model.summary.get("accuracy")
        subtitle = f"\n{100 * accuracy:.2f}% accuracy" if _finite(accuracy) else ""
        ax.set_title(model.name + subtitle, fontsize=11)
        ax.set_xlabel("predicted class")
        ax.set_ylabel("true class")
        if k <= ANNOTATE_MAX_CLASSES and len(class_names) == k:
            ax.set_xticks(range(k), [n[:10] for n in class_names], rotation=90, fontsize=8)
            ax.set_yticks(range(k), [n[:10] for n in class_names], fontsize=8)
        elif k <= 20:
            ax.set_xticks(range(k))
            ax.set_yticks(range(k))
        else:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=6))
            ax.yaxis.set_major_locator(MaxNLocator(integer=True, nbins=6))
        if k <= ANNOTATE_MAX_CLASSES:
            size = 10 if k <= 6 else 7.5
            for (i, j), count in np.ndenumerate(matrix):
                if count:
                    color = "white" if norm(share[i, j]) > 0.55 else "#1d232b"
                    ax.text(j, i, f"{count:.0f}", ha="center", va="center", fontsize=size, color=color)
    for ax in axes[len(panels) :]:
        ax.set_visible(False)
    if image is not None:
        fig.colorbar(image, ax=list(axes[: len(panels)]), shrink=0.8, label="share of the true class")
    return _png(fig)


def accuracy_label(percent: float, std: float = 0.0) -> str:
    """A bar's label: ``"72.54%"``, or ``"72.54 ± 0.50%"`` when there is a spread over seeds."""
    return f"{percent:.2f} ± {std:.2f}%" if std > 0 else f"{percent:.2f}%"


def accuracy_png(
    models: Sequence[ModelRun], paper_accuracy: Mapping[str, float] | None = None, source: str = ""
) -> bytes | None:
    """Test accuracy per model as horizontal bars, the paper's number beside ours.

    The visual counterpart of the DeepMimic paper's Tables 1-5 (``paper_accuracy`` is
    in percent, keyed by model name). When every value is above 50% the axis starts
    near the lowest value so small gaps stay visible; the axis label says where.
    A model whose summary has ``accuracy_std`` (a fraction, over seeds) gets an error
    bar of one standard deviation and a "mean ± std" label.
    Returns ``None`` when no model has an accuracy.
    """
    paper_accuracy = paper_accuracy or {}
    scored = [m for m in models if _finite(m.summary.get("accuracy"))]
    if not scored:
        return None
    bars = [
        (m.name, 100 * float(m.summary["accuracy"]), float(p) if _finite(p := paper_accuracy.get(m.name)) else None)
        for m in scored
    ]
    stds = [100 * float(std) if _finite(std := m.summary.get("accuracy_std")) else 0.0 for m in scored]
    colors = [MENTOR_COLOR if m.role == "mentor" else PALETTE[0] for m in scored]
    has_paper = any(p is not None for _, _, p in bars)
    values = [v for _, ours, paper in bars for v in (ours, paper) if v is not None]
    low = 0.0 if min(values) <= 50 else max(0.0, 5 * math.floor((min(values) - 3) / 5))
    height = 0.38 if has_paper else 0.6
    fig = new_figure(figsize=(9, 1.2 + 0.62 * len(bars) * (1.5 if has_paper else 1)), layout="constrained")
    ax = fig.subplots()
    positions = np.arange(len(bars))
    offset = height / 2 if has_paper else 0.0
    has_std = any(stds)
    ours = ax.barh(
        positions - offset,
        [b[1] - low for b in bars],
        height,
        left=low,
        color=colors,
        label="this run" + (" (mean ± std over seeds)" if has_std else ""),
        xerr=stds if has_std else None,
        capsize=3 if has_std else 0,
        error_kw={"ecolor": "#333333", "elinewidth": 1},
    )
    for rect, (_, value, _), std in zip(ours, bars, stds):
        ax.text(
            value + std + 0.1 * (100 - low) / 20,
            rect.get_y() + rect.get_height() / 2,
            accuracy_label(value, std),
            va="center",
            fontsize=9,
        )
    if has_paper:
        paper_values = [b[2] for b in bars]
        drawn = [(p, v) for p, v in zip(positions, paper_values) if v is not None]
        rects = ax.barh(
            [p + offset for p, _ in drawn],
            [v - low for _, v in drawn],
            height,
            left=low,
            color=PAPER_COLOR,
            hatch="//",
            edgecolor="white",
            label=f"paper{' (' + source + ')' if source else ''}",
        )
        for rect, (_, value) in zip(rects, drawn):
            ax.text(
                value + 0.1 * (100 - low) / 20,
                rect.get_y() + rect.get_height() / 2,
                f"{value:.2f}%",
                va="center",
                fontsize=9,
                color="#555555",
            )
        fig.legend(loc="outside lower center", ncol=2, frameon=False, fontsize=9)
    ax.set_yticks(positions, [b[0] for b in bars])
    ax.invert_yaxis()
    ax.set_xlim(low, 100 + (100 - low) * 0.12)
    ax.set_xticks([t for t in ax.get_xticks() if low <= t <= 100])
    ax.set_xlabel(
        "test accuracy (%)"
        + (", mean ± std over seeds" if has_std else "")
        + (f" - axis starts at {low:.0f}%" if low > 0 else "")
    )
    ax.set_title("Test accuracy per model", fontsize=13, loc="left", fontweight="bold")
    ax.grid(True, axis="x", alpha=0.3)
    ax.set_axisbelow(True)
    ax.spines[["top", "right"]].set_visible(False)
    return _png(fig)
