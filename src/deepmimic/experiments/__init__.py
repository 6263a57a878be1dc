"""The papers' experiments as functions that build configs, run them and summarise."""

from deepmimic.experiments.catalog import EXPERIMENTS, run_experiment
from deepmimic.experiments.options import SweepOptions

__all__ = ["EXPERIMENTS", "SweepOptions", "run_experiment"]
