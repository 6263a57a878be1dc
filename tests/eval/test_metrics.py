"""eval/: accuracy, loss, relative accuracy, agreement, confusion matrices and the Figs. 6-7 example picks."""

from __future__ import annotations

import math

import torch
from torch import nn

from deepmimic.data.batches import Normalizer
from deepmimic.eval.examples import pick_examples
from deepmimic.eval.metrics import agreement, confusion_matrix, evaluate, predict_probs, relative_accuracy


class FixedLogits(nn.Module):
    """Answers class = the first pixel's byte value mod 3, with a confident logit (inputs are byte / 255)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        classes = (x[:, 0, 0, 0] * 255).round().long() % 3
        return 10.0 * nn.functional.one_hot(classes, 3).float()


def _images(values: list[int]) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.uint8).view(-1, 1, 1, 1).expand(-1, 1, 2, 2).contiguous()


IDENTITY = Normalizer((0.0,), (1.0,))  # x / 255 only


def test_evaluate_counts_right_answers_and_the_mean_cross_entropy() -> None:
    images, labels = _images([0, 1, 2, 0]), torch.tensor([0, 1, 0, 0])  # the third is wrong
    result = evaluate(FixedLogits(), images, labels, IDENTITY, torch.device("cpu"), batch_size=3)
    assert result.accuracy == 0.75 and result.predictions.tolist() == [0, 1, 2, 0]
    p_right = math.exp(10) / (math.exp(10) + 2)
    expected = -(3 * math.log(p_right) + math.log((1 - p_right) / 2)) / 4
    assert math.isclose(result.loss, expected, rel_tol=1e-4)
    assert result.summary() == {"loss": result.loss, "accuracy": 0.75}


def test_predict_probs_rows_sum_to_one_and_restore_the_training_mode() -> None:
    model = FixedLogits().train()
    probs = predict_probs(model, _images([0, 1, 2]), IDENTITY, torch.device("cpu"))
    assert probs.shape == (3, 3) and torch.allclose(probs.sum(1), torch.ones(3)) and model.training


def test_relative_accuracy_agreement_and_confusion() -> None:
    assert math.isclose(relative_accuracy(0.72, 0.80), 0.9) and math.isnan(relative_accuracy(0.5, 0.0))
    assert agreement(torch.tensor([0, 1, 2, 2]), torch.tensor([0, 1, 1, 2])) == 0.75
    matrix = confusion_matrix(torch.tensor([0, 0, 1, 2]), torch.tensor([0, 1, 1, 1]), 3)
    assert matrix.tolist() == [[1, 1, 0], [0, 1, 0], [0, 1, 0]]  # rows = true class, columns = predicted


def test_pick_examples_splits_both_right_from_mentor_only_and_is_seeded() -> None:
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    mentor = torch.tensor([0, 1, 2, 0, 0, 2])
    student = torch.tensor([0, 2, 2, 1, 0, 2])
    picked = pick_examples(labels, mentor, student, limit=8, seed=3)
    assert picked["both_right"].tolist() == [0, 2, 5] and picked["mentor_only"].tolist() == [1, 3]
    assert (
        pick_examples(labels, mentor, student, limit=1, seed=3)["both_right"].tolist()
        == pick_examples(labels, mentor, student, limit=1, seed=3)["both_right"].tolist()
    )
