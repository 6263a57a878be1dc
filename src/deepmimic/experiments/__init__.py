"""The papers' experiments as functions that build configs, run them and summarise."""

from deepmimic.experiments.sweeps import EXPERIMENTS, SweepOptions, run_experiment

__all__ = ["EXPERIMENTS", "SweepOptions", "run_experiment"]
