"""How a pipeline's saved files read back into a report: the :class:`RunView` contract.

Each registered pipeline (:mod:`deepmimic.pipelines.registry`) has a view. The report
(:func:`deepmimic.report.markdown.report_blocks`), the command line's results table and the
experiments' summaries ask the view, so none of them branches on a pipeline's name. A view
reads only the run's files (results.json, config.yaml, metrics.jsonl): it never imports
the training engine.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from deepmimic.errors import DataError
from deepmimic.report.blocks import Table, count, duration, num
from deepmimic.report.run_data import ModelRun, RunData


def require(results: dict[str, Any], key: str, kind: type, path: Path) -> Any:
    """``results[key]`` if it is a ``kind``; otherwise a :class:`DataError` naming the file and key."""
    value = results.get(key)
    if not isinstance(value, kind):
        raise DataError(f"{path}: '{key}' is missing or not a {kind.__name__}")
    return value


class RunView:
    """What a report needs to know about one pipeline's runs. Subclasses fill in the abstract parts.

    ``title`` heads the report ("FEED report: ..."); :meth:`load_models` lists the run's
    models with their curves; :meth:`headline`, :meth:`results_table` and :meth:`data_items`
    are the report's pipeline-specific text; :meth:`text_table` is the table the command line
    prints; :meth:`accuracies` feeds the experiments' mean +- std over seeds.
    """

    title: str = "Run"

    def load_models(self, run_dir: Path, results: dict[str, Any], path: Path) -> list[ModelRun]:
        raise NotImplementedError

    def headline(self, run: RunData) -> str:
        raise NotImplementedError

    def results_table(self, run: RunData) -> Table:
        raise NotImplementedError

    def text_table(self, results: dict[str, Any]) -> str:
        """The Markdown table the command line prints after a run (from results.json alone)."""
        raise NotImplementedError

    def accuracies(self, results: dict[str, Any]) -> tuple[dict[str, float], dict[str, float]]:
        """(test accuracy by model name, relative accuracy by model name) of one run."""
        raise NotImplementedError

    def data_items(self, run: RunData) -> list[str]:
        """Bullets on the data: what was read, the subset, and anything else the run records."""
        return [self.subset_item(run)]

    def train_settings(self, run: RunData, model: ModelRun) -> dict[str, Any]:
        """The model's ``train`` block from config.yaml (``{}`` when unknown)."""
        return dict((run.config or {}).get("train") or {})

    # Helpers the subclasses share.

    @staticmethod
    def subset_item(run: RunData) -> str:
        """'Subset: ...' from results.json's data block, or the config's ``data`` block."""
        data = run.results.get("data") or {}
        source = data if ("train_subset" in data or "test_subset" in data) else ((run.config or {}).get("data") or {})
        if not isinstance(source, dict):  # mimic's config names its data by a spec string
            source = {}
        train_subset, test_subset = source.get("train_subset"), source.get("test_subset")
        validation = source.get("validation_fraction")
        if validation:  # tuning runs: every "test" number in the report is on held-out training images
            return (
                f"Evaluation set: {validation:.0%} of the {count(train_subset) if train_subset else 'all'} training "
                "images, held out (stratified); the test set was not used. Every 'test' figure here is on it."
            )
        if train_subset or test_subset:
            return (
                f"Subset: {count(train_subset) if train_subset else 'all'} training images, "
                f"{count(test_subset) if test_subset else 'all'} test images (stratified)."
            )
        return "Subset: none (full data set)."

    @staticmethod
    def soft_label_items(run: RunData) -> list[str]:
        """'Soft labels: ...' when the run recorded how its soft labels were made."""
        soft = run.results.get("soft_labels") or {}
        if not soft:
            return []
        how = "read from the cache" if soft.get("cached") else "computed once by the mentor"
        return [f"Soft labels: {how} in {duration(soft.get('time_s'))} (key `{str(soft.get('key', '?'))[:12]}`)."]

    @staticmethod
    def best(models: list[ModelRun]) -> ModelRun | None:
        """The model with the highest recorded accuracy (``None`` when none has one)."""
        scored = [m for m in models if num(m.summary.get("accuracy")) is not None]
        return max(scored, key=lambda m: float(m.summary["accuracy"])) if scored else None
