"""Every experiment ``deepmimic reproduce`` knows, and the one function that runs any of them.

* sweeps of DeepMimic runs (:mod:`deepmimic.experiments.sweeps`): the ladders (Tables 1, 2, 5),
  split ratio (Fig. 1), unbalanced removal (Table 3), out-of-domain (Table 4);
* inference time (:mod:`deepmimic.experiments.inference_time`, Table 6);
* shipped-config tables (:mod:`deepmimic.experiments.config_runs`): the imitation game's
  Table 1 and FEED's Tables 1, 2, 4.
"""

from __future__ import annotations

from typing import Any

from deepmimic.errors import ConfigError
from deepmimic.experiments.config_runs import CONFIGS, run_config_experiment
from deepmimic.experiments.inference_time import run_inference_time
from deepmimic.experiments.options import SweepOptions, check_options
from deepmimic.experiments.sweeps import SWEEPS, run_sweep

EXPERIMENTS = (*SWEEPS, "inference-time", *CONFIGS)


def run_experiment(experiment: str, opts: SweepOptions, progress: bool | None = None) -> dict[str, Any]:
    """Run every point x seed of ``experiment``; write and return its summary (and its report)."""
    check_options(opts)
    if experiment in SWEEPS:
        return run_sweep(experiment, opts, progress)
    if experiment == "inference-time":
        return run_inference_time(opts)
    if experiment in CONFIGS:
        return run_config_experiment(experiment, opts, progress)
    raise ConfigError(f"unknown experiment '{experiment}'; known: {', '.join(EXPERIMENTS)}")
