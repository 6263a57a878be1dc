"""imitation-table and feed-tables: a shipped config per seed, adjusted by the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from deepmimic.config import parse_config
from deepmimic.errors import ConfigError, DataError
from deepmimic.experiments import SweepOptions, config_runs, run_experiment
from deepmimic.experiments.points import summarise
from pipeline_configs import write_blobs_npz

TINY_IMITATION = {
    "name": "imitation-tiny",
    "data": {"name": "npz", "root": "../shared/data/blobs.npz", "train_subset": 200},
    "split": {"labeled_fraction": 0.3, "seed": 0},
    "train": {"batch_size": 32, "lr": 0.01, "optimizer": "adam", "seed": 0},
    "mentor": {
        "name": "Teacher",
        "model": "c-bn-mp-c-s",
        "model_options": {"conv_channels": 6},
        "method": "supervised",
        "train": {"epochs": 9},
    },
    "students": [
        {
            "name": "Rec",
            "model": "c-bn-mp-c-s",
            "model_options": {"conv_channels": 4},
            "method": "imitation",
            "train": {"epochs": 9},
        },
        {
            "name": "KD",
            "model": "c-bn-mp-c-s",
            "model_options": {"conv_channels": 4},
            "method": "kd",
            "train": {"epochs": 9},
        },
    ],
    "paper": {"source": "Imitation game, Table 1", "accuracy": {"Rec": 84.3}},
}
TINY_FEED = {
    "pipeline": "feed",
    "name": "feed-tiny",
    "data": {"name": "npz", "root": "../shared/data/blobs.npz"},
    "model": "c-bn-mp-c-s",
    "model_options": {"conv_channels": 6},
    "train": {"epochs": 9, "batch_size": 32, "lr": 0.05},
    "scratch_seeds": [0, 1],
    "student_seed": 100,
    "ensemble_students": [
        {"name": "KD from ensemble", "method": "kd", "method_options": {"temperature": 4.0, "alpha": 1.0}},
        {"name": "pFEED (k={k})", "method": "pfeed", "method_options": {"beta": 10.0}},
    ],
    "sequential": [
        {"stacks": 2, "method": "factor_transfer", "method_options": {"beta": 10.0, "paraphraser_epochs": 1}}
    ],
}


@pytest.fixture()
def shipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Replace the shipped configs by tiny ones whose data root sits under a fake ../shared/data."""
    (tmp_path / "data").mkdir()
    write_blobs_npz(tmp_path / "data" / "blobs.npz")
    paths = {"imitation-table": tmp_path / "imitation.yaml", "feed-tables": tmp_path / "feed.yaml"}
    paths["imitation-table"].write_text(yaml.safe_dump(TINY_IMITATION))
    paths["feed-tables"].write_text(yaml.safe_dump(TINY_FEED))
    monkeypatch.setattr(config_runs, "builtin_config_path", lambda experiment, dataset: paths[experiment])
    return tmp_path


def test_imitation_table_runs_each_seed_with_the_command_line_applied(shipped: Path) -> None:
    opts = SweepOptions(
        data_dir=str(shipped / "data"),
        out=str(shipped / "out"),
        epochs=2,
        seeds=2,
        command="deepmimic reproduce imitation-table",
    )
    summary = run_experiment("imitation-table", opts)
    out = shipped / "out" / "imitation-table"
    row = summary["rows"][0]
    assert list(row["accuracy"]) == ["Teacher", "Rec", "KD"] and row["paper"] == {"Rec": 84.3}
    config = yaml.safe_load((out / "seed-1" / "config.yaml").read_text())
    assert config["data"]["root"] == str(shipped / "data" / "blobs.npz")  # ../shared/data replaced by --data-dir
    assert (
        config["mentor"]["train"]["epochs"] == 2 and config["students"][0]["train"]["epochs"] == 2
    )  # same epochs, as the paper
    assert config["split"]["seed"] == 1 and config["mentor"]["train"]["seed"] == 1
    assert (out / "seed-0" / "report.html").exists() and (out / "report.html").exists()
    report = (out / "report.md").read_text()
    assert "Imitation game, Table 1" in report and "84.30" in report
    assert "| Model | Accuracy (%) | Relative to mentor (%) | Paper (%) | Δ vs paper (points) |" in report


def test_feed_tables_runs_the_feed_pipeline(shipped: Path) -> None:
    """Two seeds: each moves the scratch seeds to a new block, and the summary still pairs the rows."""
    opts = SweepOptions(data_dir=str(shipped / "data"), out=str(shipped / "out"), epochs=1, seeds=2)
    summary = run_experiment("feed-tables", opts)
    accuracy = summary["rows"][0]["accuracy"]
    names = list(accuracy)
    assert names[:4] == ["Scratch model 1", "Scratch model 2", "Scratch (mean of 2)", "Ensemble of 2"]
    assert "sFEED stack 2" in names
    runs = [json.loads((shipped / "out" / "feed-tables" / f"seed-{s}" / "results.json").read_text()) for s in (0, 1)]
    assert [r["rows"][0]["name"] for r in runs] == ["Scratch (seed 0)", "Scratch (seed 2)"]
    first_model = [r["rows"][0]["accuracy"] for r in runs]
    assert accuracy["Scratch model 1"][0] == pytest.approx(sum(first_model) / 2)
    table = (shipped / "out" / "feed-tables" / "summary.md").read_text()
    assert "| Model | Accuracy (%) |\n" in table  # no mentor and no paper numbers: no empty columns
    assert (shipped / "out" / "feed-tables" / "sweep.png").read_bytes()[:4] == b"\x89PNG"


def test_models_dir_moves_a_pretrained_teachers_file(tmp_path: Path) -> None:
    """--models-dir replaces the ../shared/models prefix of a pretrained teacher, as --data-dir does for data."""
    raw = {
        **TINY_FEED,
        "pretrained_students": [
            {"name": "KD A", "pretrained": "resnet32:../shared/models/zoo/a.th", "method": "kd"},
            {"name": "KD B", "pretrained": "../shared/models/b.ts", "method": "kd"},
            {"name": "KD C", "pretrained": "resnet20:/elsewhere/c.th", "method": "kd"},
        ],
    }
    opts = SweepOptions(data_dir=str(tmp_path / "data"), models_dir=str(tmp_path / "models"))
    adjusted = config_runs._adjusted(raw, opts, 0, tmp_path / "run")
    assert [s["pretrained"] for s in adjusted["pretrained_students"]] == [
        f"resnet32:{tmp_path / 'models' / 'zoo' / 'a.th'}",
        str(tmp_path / "models" / "b.ts"),
        "resnet20:/elsewhere/c.th",
    ]
    assert raw["pretrained_students"][0]["pretrained"] == "resnet32:../shared/models/zoo/a.th"  # not edited in place
    default = config_runs._adjusted(raw, SweepOptions(), 0, tmp_path / "run")
    assert default["pretrained_students"][0]["pretrained"] == "resnet32:../shared/models/zoo/a.th"
    # A pretrained mentor (the imitation game's strong teacher) moves the same way.
    mentor = {"name": "T", "pretrained": "resnet20:../shared/models/zoo/t.th", "pretrained_options": {"mean": "0.5"}}
    imitation = config_runs._adjusted({**TINY_IMITATION, "mentor": mentor}, opts, 0, tmp_path / "run")
    assert imitation["mentor"]["pretrained"] == f"resnet20:{tmp_path / 'models' / 'zoo' / 't.th'}"
    assert imitation["mentor"]["pretrained_options"] == {"mean": "0.5"} and mentor["pretrained"].startswith(
        "resnet20:../"
    )


def test_shipped_configs_parse_and_unknown_dataset_is_refused() -> None:
    for experiment, datasets in config_runs.CONFIGS.items():
        for dataset in datasets:
            parse_config(yaml.safe_load(config_runs.builtin_config_path(experiment, dataset).read_text()))
    with pytest.raises(ConfigError, match="feed-tables is defined for --dataset cifar10"):
        config_runs.builtin_config_path("feed-tables", "mnist")


def test_summary_refuses_seeds_whose_models_differ(tmp_path: Path) -> None:
    """Seeds are averaged row by row; a run with other models is named, not a KeyError."""

    def feed_run(names: list[str]) -> dict:
        rows = [{"name": n, "kind": "kd", "accuracy": 0.5, "error": 0.5, "parameters": 1} for n in names]
        return {"pipeline": "feed", "rows": rows}

    runs = [(tmp_path / "seed-0", feed_run(["KD", "pFEED (k=2)"])), (tmp_path / "seed-1", feed_run(["KD"]))]
    with pytest.raises(
        DataError, match=r"seed-1: its models differ from .*seed-0's \(missing: pFEED \(k=2\); extra: -\)"
    ):
        summarise("p", None, runs, tmp_path, None)
    runs[1] = (tmp_path / "seed-1", feed_run(["KD", "pFEED (k=3)"]))
    with pytest.raises(DataError, match=r"missing: pFEED \(k=2\); extra: pFEED \(k=3\)\)"):
        summarise("p", None, runs, tmp_path, None)
