"""Black-box teachers: anything that labels RAW images with class probabilities.

White-box teachers (:mod:`deepmimic.teachers.base`) see the normalised float batches the
student sees. A black box (an ONNX file, a prediction service over HTTP, a file of
precomputed predictions, a trained model directory) owns its own preprocessing, so it is
given the images exactly as they are stored in :class:`~deepmimic.data.ImageDataset`:
uint8 tensors (B, C, H, W) in 0..255.

The contract is :class:`ImageLabeler`. Two optional extensions are honoured by
:func:`deepmimic.labelling.black_box.run_labeler`:

- ``label_rows(rows: int64 (B,)) -> float32 (B, K)``: a labeler that answers by row of the
  unlabelled set (precomputed predictions) is asked by row instead of by image;
- ``concurrency: int``: how many batches may be in flight at once (a remote service);
  ``label_batch`` must then be thread-safe.

Every answer passes :func:`deepmimic.teachers.base.validate_probs` before anyone uses it,
so a teacher returning garbage raises a :class:`~deepmimic.errors.TeacherError` naming it.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch

from deepmimic.data.rows import RowTable
from deepmimic.errors import TeacherError


@runtime_checkable
class ImageLabeler(Protocol):
    """Maps raw uint8 images (B, C, H, W) to class probabilities (B, K) float32.

    ``num_classes`` is K; ``source`` is a short human-readable name used in messages and
    recorded in query logs (e.g. ``"teacher.onnx"`` or ``"http://host/v1/predict"``). A
    labeler may also have an ``identity`` string (default: ``source``) that changes whenever
    its answers would (its preprocessing options, say): a query log written under another
    identity is refused rather than mixed with new answers.
    """

    num_classes: int
    source: str

    def label_batch(self, images: torch.Tensor) -> torch.Tensor: ...


class BudgetExhaustedError(TeacherError):
    """The query budget ran out before every row was labelled.

    ``labeled`` rows have answers (kept in the query log, if any); ``total`` were asked for.
    """

    def __init__(self, message: str, labeled: int = 0, total: int = 0, budget: int = 0) -> None:
        super().__init__(message)
        self.labeled = labeled
        self.total = total
        self.budget = budget


def check_images(images: torch.Tensor, source: str = "images") -> None:
    """Raise TeacherError unless ``images`` is a uint8 tensor (N, C, H, W)."""
    if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or images.dim() != 4:
        got = f"{images.dtype} {tuple(images.shape)}" if isinstance(images, torch.Tensor) else type(images).__name__
        raise TeacherError(f"{source}: black-box teachers label uint8 images (N, C, H, W), got {got}")


def check_image_set(images: object, source: str = "images") -> None:
    """Raise TeacherError unless ``images`` is a whole set to label: uint8 (N, C, H, W), a tensor
    or a streamed :class:`~deepmimic.data.rows.RowTable` (rows read per batch, issue 17).

    A labeler's ``label_batch`` still gets real tensors (:func:`check_images`): the labelling
    helpers index the set one batch at a time.
    """
    if isinstance(images, RowTable):
        if images.dtype != torch.uint8 or len(images.shape) != 4:
            raise TeacherError(f"{source}: black-box teachers label uint8 images (N, C, H, W), got {images.shape}")
        return
    check_images(images, source)  # type: ignore[arg-type]


def labeler_concurrency(labeler: object) -> int:
    """How many batches ``labeler`` accepts at once (its ``concurrency`` attribute, default 1)."""
    value = getattr(labeler, "concurrency", 1)
    return max(1, int(value)) if isinstance(value, int) else 1
