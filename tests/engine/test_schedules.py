"""Learning-rate schedules: multistep milestones as fractions of the run, linear warm-up."""

from __future__ import annotations

import warnings

import pytest
import torch

from deepmimic.config import parse_config
from deepmimic.engine.optim import build_scheduler
from deepmimic.engine.settings import TrainSettings
from deepmimic.errors import ConfigError


def _rates(settings: TrainSettings) -> list[float]:
    """The lr of each epoch, as the engine steps it (once per epoch)."""
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=settings.lr)
    scheduler = build_scheduler(opt, settings)
    rates = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        for _ in range(settings.epochs):
            rates.append(opt.param_groups[0]["lr"])
            opt.step()
            scheduler.step()
    return rates


def test_multistep_drops_at_fractions_of_the_run() -> None:
    # FEED's recipe: 160 epochs with drops at 80 and 120 are milestones [0.5, 0.75].
    rates = _rates(TrainSettings(epochs=160, lr=0.1, schedule="multistep", milestones=[0.5, 0.75], gamma=0.1))
    assert rates[79] == pytest.approx(0.1) and rates[80] == pytest.approx(0.01)
    assert (
        rates[119] == pytest.approx(0.01) and rates[120] == pytest.approx(0.001) and rates[-1] == pytest.approx(0.001)
    )
    assert TrainSettings(epochs=8, schedule="multistep", milestones=[0.5, 0.75]).milestone_epochs() == [4, 6]


def test_warmup_ramps_linearly_then_hands_over() -> None:
    rates = _rates(TrainSettings(epochs=8, lr=0.1, schedule="multistep", milestones=[0.5], warmup_epochs=3))
    assert rates[:4] == pytest.approx([0.025, 0.05, 0.075, 0.1])
    assert rates[4:] == pytest.approx([0.01] * 4)  # the milestone stays at epoch 4 of the whole run
    cosine = _rates(TrainSettings(epochs=5, lr=0.1, schedule="cosine", warmup_epochs=1))
    assert cosine[:2] == pytest.approx([0.05, 0.1]) and cosine[-1] > 0


@pytest.mark.parametrize("milestones", [[0.0], [1.0], [0.75, 0.5], [0.5, 0.5], [-0.1]])
def test_milestones_must_be_increasing_fractions(milestones: list[float]) -> None:
    raw = {
        "mentor": {"name": "M", "model": "mnist-mentor", "method": "supervised"},
        "students": [{"name": "S", "model": "mnist-student-a"}],
        "train": {"schedule": "multistep", "milestones": milestones},
    }
    with pytest.raises(ConfigError, match="milestones must be increasing fractions"):
        parse_config(raw)
