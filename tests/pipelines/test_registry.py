"""The pipeline registry: a fourth pipeline is its own file + one register line, and every layer dispatches on it."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Literal

import pytest
import yaml

from deepmimic.cli import main
from deepmimic.config import parse_config
from deepmimic.engine.settings import StrictModel, TrainSettings
from deepmimic.pipelines import registry
from deepmimic.pipelines.registry import Pipeline, get_pipeline, pipeline_of_results
from deepmimic.report.blocks import Table, pct
from deepmimic.report.run_data import ModelRun, RunData
from deepmimic.report.views import RunView
from pipeline_configs import tiny_config

SRC = Path(__file__).resolve().parents[2] / "src" / "deepmimic"


# ----------------------------------------------------------------------------- a toy pipeline, all in this file


class ToyConfig(StrictModel):
    pipeline: Literal["toy"] = "toy"
    name: str = "toy"
    output_dir: str
    guess: float = 0.5
    train: TrainSettings = TrainSettings(epochs=1, device="cpu")


def run_toy(
    config: ToyConfig,
    *,
    resume: bool = False,
    restart: Any = (),
    progress: Any = None,
    command: str | None = None,
    resume_advice: str | None = None,
) -> dict[str, Any]:
    """'Trains' one model whose accuracy is the configured guess; writes results.json like any pipeline."""
    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(yaml.safe_dump(config.model_dump(mode="json")))
    results = {
        "pipeline": "toy",
        "name": config.name,
        "command": command,
        "models": [{"name": "Guesser", "accuracy": config.guess}],
        "wall_time_s": 0.0,
    }
    (out / "results.json").write_text(json.dumps(results))
    return results


class ToyView(RunView):
    title = "Toy"

    def load_models(self, run_dir: Path, results: dict[str, Any], path: Path) -> list[ModelRun]:
        return [ModelRun(m["name"], "guesser", m) for m in results["models"]]

    def headline(self, run: RunData) -> str:
        return f"The guesser guessed {pct(run.models[0].summary['accuracy'])}."

    def results_table(self, run: RunData) -> Table:
        return Table(
            ("Model", "Accuracy"), tuple((m.name, pct(m.summary["accuracy"])) for m in run.models), (False, True)
        )

    def text_table(self, results: dict[str, Any]) -> str:
        return "\n".join(f"| {m['name']} | {pct(m['accuracy'])} |" for m in results["models"])

    def accuracies(self, results: dict[str, Any]) -> tuple[dict[str, float], dict[str, float]]:
        return {m["name"]: m["accuracy"] for m in results["models"]}, {}


@pytest.fixture()
def toy_pipeline() -> Any:
    registry.register(Pipeline("toy", ToyConfig, f"{__name__}:run_toy", ToyView(), main_train=lambda c: c.train))
    yield
    registry.unregister("toy")


def test_a_registered_toy_pipeline_runs_from_yaml_to_a_report(
    toy_pipeline: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "toy.yaml"
    path.write_text(yaml.safe_dump({"pipeline": "toy", "output_dir": str(tmp_path / "run"), "guess": 0.25}))
    assert main(["run", str(path), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "| Guesser | 25.00% |" in out  # the CLI printed the toy view's table
    report = (tmp_path / "run" / "report.md").read_text()
    assert report.startswith("# Toy report: toy") and "The guesser guessed 25.00%." in report
    assert "| Guesser | 25.00% |" in report  # the report used the toy view's results table


def test_a_toy_config_key_is_validated_strictly(toy_pipeline: None, tmp_path: Path) -> None:
    with pytest.raises(Exception, match="unknown key 'colour'"):
        parse_config({"pipeline": "toy", "output_dir": str(tmp_path), "colour": "red"})


def test_an_unknown_pipeline_names_the_registered_ones(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "x.yaml"
    path.write_text("pipeline: nope\n")
    assert main(["run", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown pipeline 'nope'" in err and "deepmimic, feed, mimic" in err


def test_results_name_their_pipeline_and_older_files_are_recognised_by_shape() -> None:
    assert pipeline_of_results({"pipeline": "feed"}).name == "feed"
    assert pipeline_of_results({"rows": []}).name == "feed"
    assert pipeline_of_results({"mentor": {}, "students": [], "queries": {}}).name == "mimic"
    assert pipeline_of_results({"mentor": {}, "students": []}).name == "deepmimic"
    with pytest.raises(Exception, match="names no pipeline"):
        pipeline_of_results({"something": 1})


def test_a_deepmimic_run_records_its_pipeline(tmp_path: Path) -> None:
    from deepmimic.pipelines.deepmimic import run_pipeline

    config = parse_config(tiny_config(tmp_path, train={"batch_size": 16, "epochs": 1, "device": "cpu"}))
    assert run_pipeline(config, progress=False)["pipeline"] == "deepmimic"
    assert get_pipeline("deepmimic").config_model is type(config)


# ----------------------------------------------------------------------------- the layout rules of issue 14


def test_no_pipeline_name_is_compared_outside_pipelines() -> None:
    """Layers above the pipelines dispatch on the registry, never on a literal pipeline name."""
    compare = re.compile(
        r"""(==|!=|\bin)\s*\(?\s*["'](deepmimic|feed|mimic)["']|["'](deepmimic|feed|mimic)["']\s*(==|!=)"""
    )
    offenders = []
    for path in SRC.rglob("*.py"):
        if path.parent.name == "pipelines":
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if compare.search(line) or '"feed"' in line:
                offenders.append(f"{path.relative_to(SRC)}:{number}: {line.strip()}")
    assert offenders == []
