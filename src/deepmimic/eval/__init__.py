"""Evaluation metrics."""

from deepmimic.eval.metrics import Evaluation, agreement, confusion_matrix, evaluate, predict_probs, relative_accuracy

__all__ = ["Evaluation", "agreement", "confusion_matrix", "evaluate", "predict_probs", "relative_accuracy"]
