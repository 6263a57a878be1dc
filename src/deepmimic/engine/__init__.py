"""The training engine: one loop for every method."""

from deepmimic.engine.settings import TrainSettings
from deepmimic.engine.trainer import FitResult, fit

__all__ = ["FitResult", "TrainSettings", "fit"]
