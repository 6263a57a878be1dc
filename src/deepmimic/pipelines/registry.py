"""Pipelines by name: one file (or a few) per pipeline, one line here.

A pipeline is a multi-stage recipe (DeepMimic's mentor -> soft labels -> students, FEED's
scratch models -> ensemble -> KD / pFEED / sFEED, mimic's queried teacher -> student). Every
layer above the pipelines (the CLI, config loading, reports, experiments) dispatches on
this registry or on ``results["pipeline"]``, never on a literal pipeline name.

A :class:`Pipeline` declares:

* ``config_model``: its strict pydantic config (``pipeline: <name>`` picks it);
* ``runner``: ``"module:function"`` of ``run(config, *, resume, restart, progress, command,
  resume_advice) -> results``; imported only when the pipeline runs, so parsing a config or
  building a report never imports the training engine;
* ``view``: how its saved files read back into a report (results table, headline, data
  lines; see :class:`deepmimic.report.views.RunView`), engine-free;
* ``vary``: how ``deepmimic reproduce`` shifts seeds, epochs and widths in a raw config
  of this pipeline (:class:`deepmimic.pipelines.variation.Variation`);
* ``prepare``: an optional raw-mapping step before validation (e.g. DeepMimic's top-level
  ``train:`` defaults).

Adding a pipeline: write its config, run function and view, then one :func:`register` line.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from deepmimic.engine.settings import TrainSettings
from deepmimic.errors import ConfigError
from deepmimic.pipelines import deepmimic_config, feed_config, mimic_config
from deepmimic.pipelines.deepmimic_config import PipelineConfig, merge_train_defaults
from deepmimic.pipelines.deepmimic_view import DeepMimicView
from deepmimic.pipelines.feed_config import FeedConfig
from deepmimic.pipelines.feed_view import FeedView
from deepmimic.pipelines.mimic_config import MimicConfig
from deepmimic.pipelines.mimic_view import MimicView
from deepmimic.pipelines.variation import Variation
from deepmimic.report.views import RunView

DEFAULT_PIPELINE = "deepmimic"  # a config without a ``pipeline:`` key


def _identity(raw: dict[str, Any]) -> dict[str, Any]:
    return raw


def _fixed(raw: dict[str, Any], variation: Variation) -> dict[str, Any]:
    """A pipeline that declares no ``vary`` runs its configs as they are (no seeds or epochs to shift)."""
    if variation != Variation(seed=variation.seed) or variation.seed:
        raise ConfigError(
            f"{raw.get('pipeline')}: this pipeline's configs take no reproduce variations (seeds, epochs, widths)"
        )
    return raw


@dataclass(frozen=True)
class Pipeline:
    """One registered pipeline (see the module docstring)."""

    name: str
    config_model: type[BaseModel]
    runner: str  # "package.module:function"
    view: RunView
    main_train: Callable[[Any], TrainSettings]  # the settings whose device the process group uses
    vary: Callable[[dict[str, Any], Variation], dict[str, Any]] = (
        _fixed  # reproduce's seeds, epochs, widths on a raw config
    )
    prepare: Callable[[dict[str, Any]], dict[str, Any]] = _identity

    def run(self, config: Any, **kwargs: Any) -> dict[str, Any]:
        """Import the runner and call it; the results it returns carry ``"pipeline": name``."""
        module_name, _, function_name = self.runner.partition(":")
        run = getattr(importlib.import_module(module_name), function_name)
        results: dict[str, Any] = run(config, **kwargs)
        return results


PIPELINES: dict[str, Pipeline] = {}


def register(pipeline: Pipeline) -> Pipeline:
    """Add ``pipeline`` to the registry (its name must be new)."""
    if pipeline.name in PIPELINES:
        raise ValueError(f"pipeline '{pipeline.name}' is already registered")
    PIPELINES[pipeline.name] = pipeline
    return pipeline


def unregister(name: str) -> None:
    """Remove a pipeline (tests that register a toy one clean up with this)."""
    PIPELINES.pop(name, None)


def get_pipeline(name: str, source: str = "config") -> Pipeline:
    """The pipeline called ``name``; an unknown name is a one-line :class:`ConfigError`."""
    if not isinstance(name, str) or name not in PIPELINES:
        raise ConfigError(f"{source}: unknown pipeline '{name}'; known: {', '.join(PIPELINES)}")
    return PIPELINES[name]


def pipeline_of(config: Any) -> Pipeline:
    """The pipeline a validated config belongs to (its ``pipeline`` field)."""
    return get_pipeline(config.pipeline)


def pipeline_of_results(results: dict[str, Any], source: str = "results.json") -> Pipeline:
    """The pipeline that wrote ``results``: its ``pipeline`` key, or (older runs) the shape of the file."""
    name = results.get("pipeline")
    if name is None:  # written before results.json named its pipeline
        name = (
            "feed"
            if "rows" in results
            else "mimic"
            if "queries" in results
            else "deepmimic"
            if "mentor" in results
            else None
        )
        if name is None:
            raise ConfigError(
                f"{source}: names no pipeline and has neither 'mentor' (DeepMimic, mimic) nor 'rows' (FEED)"
            )
    return get_pipeline(name, source)


register(
    Pipeline(
        "deepmimic",
        PipelineConfig,
        "deepmimic.pipelines.deepmimic:run_pipeline",
        DeepMimicView(),
        main_train=lambda c: c.mentor.train,
        vary=deepmimic_config.vary,
        prepare=merge_train_defaults,
    )
)
register(
    Pipeline(
        "feed",
        FeedConfig,
        "deepmimic.pipelines.feed:run_feed",
        FeedView(),
        main_train=lambda c: c.train,
        vary=feed_config.vary,
    )
)
register(
    Pipeline(
        "mimic",
        MimicConfig,
        "deepmimic.pipelines.mimic:run_mimic",
        MimicView(),
        main_train=lambda c: c.train,
        vary=mimic_config.vary,
    )
)
