"""The paper's experiments as sweeps, end to end on tiny generated data (seconds each)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from deepmimic.cli import main
from deepmimic.config import parse_config
from deepmimic.errors import ConfigError
from deepmimic.experiments import SweepOptions, run_experiment, sweeps
from deepmimic.experiments.points import run_accuracies
from pipeline_configs import write_blobs_npz
from synthetic import make_blobs_dataset

TINY = {"conv_channels": 4, "fc_units": 8}


def options(tmp_path: Path, **extra: object) -> SweepOptions:
    pool = make_blobs_dataset(n_per_class=60, num_classes=2, seed=7)
    np.savez(tmp_path / "pool.npz", images=pool.images.numpy(), labels=pool.labels.numpy())
    return SweepOptions(
        out=str(tmp_path / "out"),
        epochs=2,
        seeds=2,
        dataset="mnist",
        data_name="npz",
        data_root=str(write_blobs_npz(tmp_path / "blobs.npz")),
        pool=str(tmp_path / "pool.npz"),
        model_options=TINY,
        command="deepmimic reproduce (test)",
        **extra,
    )


@pytest.mark.parametrize(
    "experiment,points",
    [
        ("ladder-mnist", 1),
        ("ladder-cifar10", 1),
        ("ladder-tinyimagenet", 1),
        ("split-ratio", 2),
        ("unbalanced-removal", 2),
        ("out-of-domain", 2),
    ],
)
def test_experiment_runs_and_summarises_over_seeds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, experiment: str, points: int
) -> None:
    monkeypatch.setattr(sweeps, "RATIOS", (0.2, 0.5))
    monkeypatch.setattr(sweeps, "REMOVAL_BOUNDS", (0.1, 0.8))
    monkeypatch.setattr(sweeps, "OOD_FRACTIONS", (0.1, 0.6))
    summary = run_experiment(experiment, options(tmp_path))
    assert len(summary["rows"]) == points
    out = tmp_path / "out" / experiment
    saved = json.loads((out / "summary.json").read_text())
    assert saved["rows"][0]["point"] == summary["rows"][0]["point"]
    mean, std = summary["rows"][0]["accuracy"]["Student-A"]
    assert 0 <= mean <= 1 and std >= 0
    assert len(summary["rows"][0]["runs"]) == 2 and len(summary["rows"][0]["run_wall_time_s"]) == 2
    assert "±" in (out / "summary.md").read_text()
    reports = list(out.glob("*/seed-*/report.html"))
    assert len(reports) == 2 * points
    pngs = list(out.glob("*/seed-0/curves.png")) + [out / "sweep.png"]
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
    report = (out / "report.md").read_text()
    assert "Command:" in report and "Wall time" in report and "seed-1/report.md" in report
    assert "data:image/png;base64," in (out / "report.html").read_text()
    if experiment == "split-ratio":
        assert summary["rows"][0]["unlabeled"] > summary["rows"][1]["unlabeled"]
    if experiment == "unbalanced-removal":
        assert summary["rows"][0]["unlabeled"] > summary["rows"][1]["unlabeled"]
    if experiment == "out-of-domain":
        assert summary["rows"][0]["unlabeled"] < summary["rows"][1]["unlabeled"]
    if experiment in ("unbalanced-removal", "out-of-domain"):  # the mentor is trained once per seed and reused
        first, second = (json.loads((out / r["runs"][1] / "results.json").read_text()) for r in summary["rows"])
        assert first["mentor"]["accuracy"] == second["mentor"]["accuracy"]
        # Copied, not trained again: a new training would log its own images/s in the metrics.
        first_log, second_log = (out / r["runs"][1] / "mentor" / "metrics.jsonl" for r in summary["rows"])
        assert second_log.read_bytes() == first_log.read_bytes() and "images_per_s" in first_log.read_text()
        assert [r["Mentor"] for r in (row["accuracy"] for row in summary["rows"])][0] == summary["rows"][1]["accuracy"][
            "Mentor"
        ]
    if experiment == "ladder-mnist":  # section 4.2: the same students on true one-hot labels
        names = list(summary["rows"][0]["accuracy"])
        assert names == ["Mentor", "Student-A", "Student-B", "Student-A one-hot", "Student-B one-hot"]
        results = json.loads((out / summary["rows"][0]["runs"][0] / "results.json").read_text())
        assert [s["uses_true_labels"] for s in results["students"]] == [False, False, True, True]
        assert summary["rows"][0]["paper"]["Student-A"] == 97.38
        assert "one-hot" in (out / summary["rows"][0]["runs"][0] / "report.md").read_text()


def test_sweep_report_rebuilds_identically_and_resume_reuses_points(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sweeps, "REMOVAL_BOUNDS", (0.1, 0.8))
    opts = options(tmp_path)
    summary = run_experiment("unbalanced-removal", SweepOptions(**{**opts.__dict__, "seeds": 1}))
    out = tmp_path / "out" / "unbalanced-removal"
    before = {p.name: p.read_bytes() for p in out.glob("report.*")} | {"sweep.png": (out / "sweep.png").read_bytes()}
    assert main(["report", str(out)]) == 0
    after = {p.name: p.read_bytes() for p in out.glob("report.*")} | {"sweep.png": (out / "sweep.png").read_bytes()}
    assert before == after
    capsys.readouterr()
    again = run_experiment("unbalanced-removal", SweepOptions(**{**opts.__dict__, "seeds": 1, "resume": True}))
    assert "finished earlier" in capsys.readouterr().out
    assert "read back with --resume" in (out / "report.md").read_text()
    assert again["rows"][1]["accuracy"] == summary["rows"][1]["accuracy"]


def test_unknown_students_letter(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--students"):
        run_experiment("ladder-mnist", SweepOptions(**{**options(tmp_path).__dict__, "students": "ac"}))


def test_unknown_experiment_and_bad_seeds(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown experiment"):
        run_experiment("ladder-imagenet", options(tmp_path))
    with pytest.raises(ConfigError, match="--seeds"):
        run_experiment("ladder-mnist", options(tmp_path).__class__(seeds=0, data_root=str(tmp_path)))


def test_reproduce_cli_rejects_missing_data(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "reproduce",
            "ladder-mnist",
            "--data-dir",
            str(tmp_path / "none"),
            "--out",
            str(tmp_path / "o"),
            "--no-progress",
        ]
    )
    assert code == 2
    assert "no such directory" in capsys.readouterr().err


def test_inference_time_times_every_ladder_model(tmp_path: Path) -> None:
    from deepmimic.report.sweep import summary_table

    opts = options(tmp_path)
    summary = run_experiment("inference-time", opts)
    assert [r["model"] for r in summary["rows"]] == [
        "Mentor",
        "Student-B",
    ]  # MNIST ladder: A shares the mentor's architecture
    assert all(r["cpu"]["mean_s"] > 0 and r["cpu"]["std_s"] >= 0 for r in summary["rows"])
    table = (tmp_path / "out" / "inference-time" / "summary.md").read_text()
    assert "CPU s (mean ± std)" in table and "1.00x" in table
    assert table.strip() == summary_table(summary).strip()
    assert (tmp_path / "out" / "inference-time" / "sweep.png").read_bytes()[:4] == b"\x89PNG"
    assert "Wall time" in (tmp_path / "out" / "inference-time" / "report.md").read_text()


def test_resume_refuses_a_finished_point_run_with_other_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 12, item 1 for sweeps: a finished point is reused only with the same settings."""
    monkeypatch.setattr(sweeps, "RATIOS", (0.2,))
    opts = SweepOptions(**{**options(tmp_path).__dict__, "seeds": 1, "epochs": 1})
    run_experiment("split-ratio", opts)
    with pytest.raises(ConfigError, match=r"cannot resume .*finished with other settings \(.*epochs 1 -> 2"):
        run_experiment("split-ratio", SweepOptions(**{**opts.__dict__, "epochs": 2, "resume": True}))


# Issue 13, item 1: the paper's recipe by default, with command-line overrides.
def test_ladder_configs_follow_the_paper_recipe_by_default(tmp_path: Path) -> None:
    from deepmimic.experiments.sweeps import _base_config  # noqa: PLC0415

    raw = _base_config(SweepOptions(), "cifar10", "x", 0, tmp_path, "abc", one_hot=True)
    config = parse_config(raw)
    assert config.mentor.model == "cifar10-mentor-dropout" and config.mentor.train.epochs == 150
    assert all(s.train.epochs == 150 for s in config.students)  # the same epochs for every model
    assert all(st.train.optimizer == "sgd" for st in [config.mentor, *config.students])
    assert config.split.labeled_fraction == 0.2 and config.data.test_subset is None and config.data.train_subset is None
    from deepmimic.models.presets import PRESETS  # noqa: PLC0415

    assert "-d-" in PRESETS[config.mentor.model].notation and all(
        "-d-" not in PRESETS[s.model].notation for s in config.students
    )
    assert (
        parse_config(
            _base_config(SweepOptions(), "tinyimagenet", "x", 0, tmp_path, "abc", one_hot=False)
        ).mentor.train.epochs
        == 100
    )


def test_recipe_overrides_from_the_command_line(tmp_path: Path) -> None:
    from deepmimic.experiments.sweeps import _base_config  # noqa: PLC0415

    opts = SweepOptions(epochs=6, student_epochs=3, optimizer="adam")
    config = parse_config(_base_config(opts, "cifar10", "x", 0, tmp_path, "ab", one_hot=False))
    assert config.mentor.train.epochs == 6 and [s.train.epochs for s in config.students] == [3, 3]
    assert config.mentor.train.optimizer == "adam" and config.mentor.train.lr == 1e-3
    config = parse_config(_base_config(SweepOptions(lr=0.01), "mnist", "x", 0, tmp_path, "a", one_hot=False))
    assert (
        config.mentor.train.lr == 0.01 and config.mentor.train.optimizer == "sgd" and config.mentor.train.epochs == 15
    )


def test_reproduce_help_shows_the_recipe(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["reproduce", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "the paper's recipe: CIFAR-10 150" in text and "--student-epochs" in text and "the paper's SGD" in text


def test_a_sweep_page_states_the_recipe_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sweeps, "RATIOS", (0.2,))
    summary = run_experiment(
        "split-ratio", SweepOptions(**{**options(tmp_path).__dict__, "seeds": 1, "epochs": 1, "lr": 0.02})
    )
    assert summary["recipe"]["train"]["lr"] == 0.02 and summary["student_epochs"] == 1
    report = (tmp_path / "out" / "split-ratio" / "report.md").read_text()
    assert (
        "Recipe: mentor `mnist-mentor-dropout`" in report
        and "lr 0.02" in report
        and "our choices where it is silent" in report
    )


def test_out_of_domain_points_the_pool_cannot_cover_are_skipped_with_a_note(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 13, item 4: a fraction needing more pool images than exist is skipped, and the page says why."""
    monkeypatch.setattr(sweeps, "OOD_FRACTIONS", (0.05, 0.9, 1.0))
    opts = options(tmp_path)
    small = make_blobs_dataset(n_per_class=10, num_classes=2, seed=7)  # 20 pool images for ~190 student images
    np.savez(tmp_path / "pool.npz", images=small.images.numpy(), labels=small.labels.numpy())
    summary = run_experiment("out-of-domain", SweepOptions(**{**opts.__dict__, "seeds": 1, "epochs": 1}))
    assert [row["point"] for row in summary["rows"]] == ["ood 5%"]
    note = next(n for n in summary["notes"] if "skipped" in n)
    assert "ood 90%, ood 100% were skipped" in note and "pool images" in note and "covers fractions up to" in note
    assert "covers fractions up to" in (tmp_path / "out" / "out-of-domain" / "report.md").read_text()


def test_resume_accepts_the_same_point_named_by_another_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The finished-point check compares where the inputs are, not how the path was spelled."""
    monkeypatch.setattr(sweeps, "RATIOS", (0.2,))
    monkeypatch.chdir(tmp_path)
    base = {**options(tmp_path).__dict__, "seeds": 1, "epochs": 1}
    run_experiment("split-ratio", SweepOptions(**{**base, "out": "out", "data_root": "blobs.npz"}))
    again = run_experiment(
        "split-ratio",
        SweepOptions(
            **{**base, "out": str(tmp_path / "out"), "data_root": str(tmp_path / "blobs.npz"), "resume": True}
        ),
    )
    assert again["rows"][0]["point"] == "ratio 20%"


def test_reproduce_command_line_reaches_the_sweep_options(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    seen: list[SweepOptions] = []

    def fake(experiment: str, opts: SweepOptions, progress: bool | None = None) -> dict:
        seen.append(opts)
        raise ConfigError("stop here")

    monkeypatch.setattr("deepmimic.experiments.run_experiment", fake)
    argv = [
        "reproduce",
        "ladder-cifar10",
        "--epochs",
        "6",
        "--student-epochs",
        "3",
        "--optimizer",
        "adam",
        "--lr",
        "0.002",
    ]
    assert main(argv) == 2 and "stop here" in capsys.readouterr().err
    assert (seen[0].epochs, seen[0].student_epochs, seen[0].optimizer, seen[0].lr) == (6, 3, "adam", 0.002)
    assert (seen[0].eval_every, seen[0].report) == (None, True)
    assert main([*argv, "--eval-every", "auto", "--no-report"]) == 2
    assert (seen[1].eval_every, seen[1].report) == ("auto", False)
    assert main([*argv, "--eval-every", "3"]) == 2 and seen[2].eval_every == 3
    assert main(["reproduce", "ladder-cifar10", "--optimizer", "rmsprop"]) == 2
    assert "invalid choice: 'rmsprop'" in capsys.readouterr().err


def test_no_report_writes_the_summary_but_no_report_and_eval_every_reaches_every_model(tmp_path: Path) -> None:
    opts = SweepOptions(**{**options(tmp_path).__dict__, "seeds": 1, "eval_every": 2, "report": False, "epochs": 3})
    summary = run_experiment("ladder-mnist", opts)
    out = tmp_path / "out" / "ladder-mnist"
    assert (out / "summary.json").exists() and (out / "summary.md").exists()
    assert not list(out.rglob("report.*")) and not list(out.rglob("*.png"))
    run = out / summary["rows"][0]["runs"][0]
    for metrics in run.rglob("metrics.jsonl"):
        lines = [json.loads(line) for line in metrics.read_text().splitlines()]
        assert [r["epoch"] for r in lines if "test_accuracy" in r] == [2, 3], metrics
    assert main(["report", str(run)]) == 0 and (run / "report.html").exists()  # built later from the saved files
    assert main(["report", str(out)]) == 0 and (out / "report.html").exists()


def test_points_choose_a_coarser_grid_from_the_command_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """--points replaces the paper's grid (sorted, duplicates dropped); a value outside (0, 1) is one line, exit 2."""
    seen: list[SweepOptions] = []

    def fake(experiment: str, opts: SweepOptions, progress: bool | None = None) -> dict:
        seen.append(opts)
        raise ConfigError("stop here")

    monkeypatch.setattr("deepmimic.experiments.run_experiment", fake)
    assert main(["reproduce", "unbalanced-removal", "--points", "0.9,0.1,0.5"]) == 2
    assert seen[0].points == (0.9, 0.1, 0.5)
    assert main(["reproduce", "unbalanced-removal", "--points", "0.1,1.5"]) == 2
    assert "between 0 and 1, got 1.5" in capsys.readouterr().err
    monkeypatch.undo()
    opts = SweepOptions(**{**options(tmp_path).__dict__, "seeds": 1, "epochs": 1, "points": (0.3, 0.1, 0.3)})
    summary = run_experiment("unbalanced-removal", opts)
    assert [row["point"] for row in summary["rows"]] == ["bound 10%", "bound 30%"]
    with pytest.raises(ConfigError, match="between 0 and 1"):
        run_experiment("split-ratio", SweepOptions(**{**opts.__dict__, "points": (0.0,)}))


def test_first_seed_lets_seeds_run_in_parallel_processes_and_be_read_back_together(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--seeds 1 --first-seed 1 writes seed-1 only; with seed-0 run apart, --seeds 2 --resume reads both back."""
    monkeypatch.setattr(sweeps, "RATIOS", (0.5,))
    base = options(tmp_path)
    second = run_experiment("split-ratio", SweepOptions(**{**base.__dict__, "seeds": 1, "first_seed": 1}))
    out = tmp_path / "out" / "split-ratio"
    assert [p.name for p in out.glob("*/seed-*")] == ["seed-1"]
    assert second["first_seed"] == 1 and second["rows"][0]["runs"][0].endswith("seed-1")
    run_experiment("split-ratio", SweepOptions(**{**base.__dict__, "seeds": 1}))
    both = run_experiment("split-ratio", SweepOptions(**{**base.__dict__, "resume": True}))
    assert both["read_back_runs"] == 2 and len(both["rows"][0]["runs"]) == 2
    per_seed = [
        run_accuracies(json.loads((tmp_path / "out" / "split-ratio" / run / "results.json").read_text()))[0][
            "Student-A"
        ]
        for run in both["rows"][0]["runs"]
    ]
    assert both["rows"][0]["accuracy"]["Student-A"][0] == pytest.approx(sum(per_seed) / 2)
    with pytest.raises(ConfigError, match="--first-seed must be >= 0"):
        run_experiment("split-ratio", SweepOptions(**{**base.__dict__, "first_seed": -1}))
