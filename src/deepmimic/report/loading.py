"""Read a finished run directory into a :class:`RunData`, asking its pipeline which models it holds.

The pipeline is the one results.json names (``"pipeline"``), or for runs written before it
did, the one its shape shows (:func:`deepmimic.pipelines.registry.pipeline_of_results`).
Only files are read; the training engine is never imported.
"""

from __future__ import annotations

from pathlib import Path

from deepmimic.errors import ConfigError, DataError
from deepmimic.pipelines.registry import pipeline_of_results
from deepmimic.report.run_data import RunData, read_config, read_results


def load_run(run_dir: str | Path) -> RunData:
    """Read a finished run directory of any registered pipeline.

    Raises :class:`DataError` when the directory or its results.json is missing or
    unreadable, or a metrics line is malformed; :class:`ConfigError` for a corrupt config.yaml.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise DataError(f"{run_dir}: run directory not found")
    results_path = run_dir / "results.json"
    results = read_results(results_path)
    config = read_config(run_dir / "config.yaml")
    try:
        pipeline = pipeline_of_results(results, str(results_path))
    except ConfigError as exc:
        raise DataError(str(exc)) from None
    return RunData(run_dir, pipeline.name, results, config, pipeline.view.load_models(run_dir, results, results_path))
