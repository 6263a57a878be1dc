"""Evaluation: accuracy, loss, predictions, relative accuracy, agreement, confusion.

DeepMimic paper, section 4: students are judged on the real test set by accuracy and
loss, and by "relative accuracy" = student accuracy / mentor accuracy (Tables 1, 2, 5);
Fig. 3 compares confusion matrices. Agreement (share of test images on which student
and mentor predict the same class) measures how faithfully the student mimics.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from deepmimic.data.batches import Normalizer, iterate_eval_batches


@dataclass(frozen=True)
class Evaluation:
    """Results of :func:`evaluate` on one labelled set."""

    loss: float
    accuracy: float
    predictions: torch.Tensor  # (N,) int64 predicted classes
    probs: torch.Tensor  # (N, K) float32 softmax outputs

    def summary(self) -> dict[str, float]:
        return {"loss": self.loss, "accuracy": self.accuracy}


@torch.inference_mode()  # no autograd bookkeeping at all (cheaper than no_grad); outputs never need grads
def predict_probs(
    model: nn.Module,
    images: torch.Tensor,
    normalizer: Normalizer,
    device: torch.device,
    batch_size: int = 1024,
    memory_format: torch.memory_format = torch.contiguous_format,
) -> torch.Tensor:
    """Softmax outputs (N, K) float32 on the CPU for uint8 ``images`` (N, C, H, W).

    The model is put in eval mode for the call and its previous mode restored;
    ``memory_format`` is the layout of its input batches (channels_last for a model the
    trainer converted to it).
    """
    was_training = model.training
    model.eval()
    try:
        chunks = [
            torch.softmax(model(x).float(), dim=1).cpu()
            for _, x in iterate_eval_batches(images, batch_size, normalizer, device, memory_format)
        ]
    finally:
        model.train(was_training)
    return torch.cat(chunks)


def evaluate(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    normalizer: Normalizer,
    device: torch.device,
    batch_size: int = 1024,
    memory_format: torch.memory_format = torch.contiguous_format,
) -> Evaluation:
    """Mean cross-entropy and accuracy of ``model`` on a labelled set."""
    probs = predict_probs(model, images, normalizer, device, batch_size, memory_format)
    loss = F.nll_loss(torch.log(probs.clamp_min(1e-12)), labels).item()
    predictions = probs.argmax(dim=1)
    accuracy = (predictions == labels).float().mean().item()
    return Evaluation(loss=loss, accuracy=accuracy, predictions=predictions, probs=probs)


def relative_accuracy(student_accuracy: float, mentor_accuracy: float) -> float:
    """Student accuracy / mentor accuracy (the paper's "Relative Accuracy" column)."""
    return student_accuracy / mentor_accuracy if mentor_accuracy > 0 else float("nan")


def agreement(predictions_a: torch.Tensor, predictions_b: torch.Tensor) -> float:
    """Share of rows on which two prediction vectors (N,) name the same class."""
    return (predictions_a == predictions_b).float().mean().item()


def confusion_matrix(labels: torch.Tensor, predictions: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(K, K) int64 counts; row = true class, column = predicted class."""
    flat = labels * num_classes + predictions
    return torch.bincount(flat, minlength=num_classes * num_classes).view(num_classes, num_classes)
