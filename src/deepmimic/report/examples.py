"""Test images both models got right, and those only the mentor got right (DeepMimic Figs. 6, 7).

The pipeline saves the picked images in ``examples.npz`` (see
:mod:`deepmimic.eval.examples`); this module reads that file with numpy alone
(``allow_pickle=False``) and draws one figure: per student, a row of images both got
right (Fig. 6) and a row the mentor got right but the student got wrong (Fig. 7).
"""

from __future__ import annotations

import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from deepmimic.errors import DataError
from deepmimic.report.plots import _png, new_figure

EXAMPLES_FILE = "examples.npz"
MAX_STUDENTS = 4  # rows of the figure: two per student


@dataclass(frozen=True)
class StudentExamples:
    """One student's picks; ``both_right`` / ``mentor_only`` are positions into the shared arrays."""

    name: str
    pred: np.ndarray  # (M,) the student's predicted class for every stored image
    both_right: np.ndarray
    mentor_only: np.ndarray


@dataclass(frozen=True)
class Examples:
    """The stored test images: ``images`` (M, C, H, W) uint8, ``labels`` / ``mentor_pred`` (M,)."""

    rows: np.ndarray
    images: np.ndarray
    labels: np.ndarray
    mentor_pred: np.ndarray
    students: tuple[StudentExamples, ...]


def load_examples(run_dir: Path) -> Examples | None:
    """Read ``run_dir/examples.npz``; ``None`` when the run saved none (older runs, FEED runs)."""
    path = run_dir / EXAMPLES_FILE
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            names = [str(n) for n in data["names"]]
            students = tuple(
                StudentExamples(name, data[f"pred_{i}"], data[f"both_right_{i}"], data[f"mentor_only_{i}"])
                for i, name in enumerate(names)
            )
            examples = Examples(data["rows"], data["images"], data["labels"], data["mentor_pred"], students)
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path}: unreadable examples file ({exc})") from exc
    if examples.images.ndim != 4 or examples.images.shape[1] not in (1, 3):
        raise DataError(f"{path}: images must have shape (M, 1 or 3, H, W), got {examples.images.shape}")
    return examples


def _class(names: Sequence[str], index: int) -> str:
    return names[index] if 0 <= index < len(names) else str(index)


def examples_png(examples: Examples | None, class_names: Sequence[str] = ()) -> bytes | None:
    """Per student, a row of images both got right and a row only the mentor got right.

    Titles give the true class (and, in the second row, the student's wrong answer), by
    name when the run recorded class names. Returns ``None`` when there is nothing to show.
    """
    if examples is None:
        return None
    panels = []  # (row title, [(image position, caption)])
    for student in examples.students[:MAX_STUDENTS]:
        right = [(int(p), _class(class_names, int(examples.labels[p]))) for p in student.both_right]
        wrong = [
            (int(p), f"{_class(class_names, int(examples.labels[p]))}\n→ {_class(class_names, int(student.pred[p]))}")
            for p in student.mentor_only
        ]
        panels.append((f"Mentor and {student.name} right", right))
        panels.append((f"Mentor right, {student.name} wrong", wrong))
    ncols = max((len(items) for _, items in panels), default=0)
    if ncols == 0:
        return None
    fig = new_figure(figsize=(1.25 * ncols + 0.4, 1.75 * len(panels)), layout="constrained")
    subfigs = np.atleast_1d(fig.subfigures(len(panels), 1))
    for subfig, (title, items) in zip(subfigs, panels):
        subfig.suptitle(title if items else f"{title}: none", fontsize=10, x=0.01, ha="left")
        axes = np.atleast_1d(subfig.subplots(1, ncols))
        for ax in axes:
            ax.set_axis_off()
        for ax, (position, caption) in zip(axes, items):
            image = examples.images[position]
            if image.shape[0] == 1:
                ax.imshow(image[0], cmap="gray", vmin=0, vmax=255, interpolation="nearest")
            else:
                ax.imshow(np.transpose(image, (1, 2, 0)), interpolation="nearest")
            ax.set_title(caption, fontsize=7.5)
    return _png(fig)
