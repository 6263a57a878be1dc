"""The command line: smoke runs and error paths (one line, exit 2, no traceback)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from deepmimic.cli import main
from pipeline_configs import tiny_config


def write_config(tmp_path: Path, **changes: object) -> Path:
    cfg = tiny_config(tmp_path)
    cfg["train"]["epochs"] = 1
    cfg.update(changes)
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_run_prints_table_and_writes_results(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_config(tmp_path)
    assert main(["run", str(path), "--no-progress", "--set", "students.1.train.epochs=2"]) == 0
    out = capsys.readouterr().out
    assert "| Mentor |" in out and "| Student-B |" in out
    saved = json.loads((tmp_path / "run" / "results.json").read_text())
    assert saved["command"] == f"deepmimic run {path} --no-progress --set students.1.train.epochs=2"


def test_run_writes_a_report_and_report_rebuilds_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_config(tmp_path)
    assert main(["run", str(path), "--no-progress"]) == 0
    html = (tmp_path / "run" / "report.html").read_text()
    md = (tmp_path / "run" / "report.md").read_text()
    assert "data:image/png;base64," in html and "| Student-A |" in md
    (tmp_path / "run" / "report.md").unlink()
    assert main(["report", str(tmp_path / "run")]) == 0
    assert (tmp_path / "run" / "report.md").read_text() == md
    assert main(["report", str(tmp_path / "nowhere")]) == 2
    assert "run directory not found" in capsys.readouterr().err


def test_eval_every_flag_beats_every_stage_and_no_report_skips_the_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    students = tiny_config(tmp_path)["students"]
    students[0]["train"] = {"eval_every": 1}  # a stage's own value loses to the flag
    path = write_config(tmp_path, students=students)
    argv = ["run", str(path), "--no-progress", "--no-report", "--eval-every", "2", "--set", "train.epochs=3"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert f"report:  skipped (--no-report); build it with: deepmimic report {tmp_path / 'run'}" in out
    run = tmp_path / "run"
    assert (run / "results.json").exists() and not (run / "report.md").exists() and not (run / "report.html").exists()
    for stage in ("mentor", "students/student-a", "students/student-b"):
        lines = [json.loads(line) for line in (run / stage / "metrics.jsonl").read_text().splitlines()]
        assert [r["epoch"] for r in lines if "test_accuracy" in r] == [2, 3], stage
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["students"][0]["train"]["eval_every"] == 2
    assert main(["report", str(run)]) == 0 and (run / "report.html").exists()  # built later from the saved files


def test_demo_runs_the_builtin_config_offline(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    one_epoch = ["mentor.train.epochs=3", "students.0.train.epochs=1", "students.1.train.epochs=1"]
    argv = ["demo", "--no-progress", "--out", str(tmp_path / "demo")]
    for assignment in one_epoch:
        argv += ["--set", assignment]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "| Mentor |" in out and "| Student-A |" in out and "| Student-B |" in out
    results = json.loads((tmp_path / "demo" / "results.json").read_text())
    assert results["data"]["name"] == "mnist-5k" and results["data"]["labeled"] == 800
    assert results["mentor"]["accuracy"] > 0.5  # real digits: 3 epochs on 800 of them learn well above chance (0.1)


def test_out_option_redirects_output(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    assert main(["run", str(path), "--no-progress", "--out", str(tmp_path / "elsewhere")]) == 0
    assert (tmp_path / "elsewhere" / "results.json").exists()


@pytest.mark.parametrize(
    "argv_tail,needle",
    [
        (["--set", "bogus=1"], "unknown key 'bogus'"),
        (["--set", "train.epochs=zero"], "epochs"),
        (["--set", "data.root=/nonexistent/dir"], "/nonexistent/dir"),
        (["--set", "data.name=imagenet-21k"], "imagenet-21k"),
        (["--set", "mentor.model=c-zz-s"], "zz"),
        (["--set", "students.0.method=magic"], "unknown method 'magic'"),
    ],
)
def test_user_errors_exit_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv_tail: list[str], needle: str
) -> None:
    path = write_config(tmp_path)
    assert main(["run", str(path), "--no-progress", *argv_tail]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ") and needle in err[-1]


def test_missing_config_file_exits_2_without_traceback(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "deepmimic", "run", str(tmp_path / "absent.yaml")], capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"error: {tmp_path / 'absent.yaml'}: no such config file"
    assert "Traceback" not in proc.stderr


def test_models_lists_presets_with_counts(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "mnist-mentor" in out and "cifar10-student-c" in out and "tinyimagenet-mentor" in out


def test_layers_lists_module_names_and_shapes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["layers", "c-mp-s", "--in-shape", "1,8,8", "--classes", "3"]) == 0
    out = capsys.readouterr().out
    assert "features.2" in out and "MaxPool2d" in out and "32x4x4" in out
    assert main(["layers", "c-mp-s", "--in-shape", "1,8"]) == 2
    assert "--in-shape expects C,H,W" in capsys.readouterr().err


def _commands() -> list[str]:
    from deepmimic.cli.main import build_parser  # noqa: PLC0415

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    return sorted(sub.choices)


@pytest.mark.parametrize("argv", [["--help"]] + [[command, "--help"] for command in _commands()])
def test_help_everywhere(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 0
    assert "usage: deepmimic" in capsys.readouterr().out


def test_every_command_group_registers_its_commands() -> None:
    assert _commands() == sorted(
        ["audit", "demo", "export", "label", "layers", "mimic", "models", "pack", "report", "reproduce", "run", "serve"]
    )


def test_no_command_prints_help_and_fails(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "COMMAND" in capsys.readouterr().out


# Issue 12, item 8 and "every CLI command's bad arguments": argparse mistakes are one line too.
@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["reproduce", "ladder-mnist", "--subset", "0"], "--subset: must be at least 1, got 0"),
        (["reproduce", "ladder-mnist", "--epochs", "x"], "--epochs: expected an integer, got 'x'"),
        (
            ["mimic", "--teacher", "t.npy", "--data", "mnist-5k", "--student", "s", "--subset", "0"],
            "--subset: must be at least 1",
        ),
        (
            ["mimic", "--teacher", "t.npy", "--data", "mnist-5k", "--student", "s", "--lr", "-1"],
            "--lr: must be a finite number above 0",
        ),
        (
            ["label", "--teacher", "t.npy", "--data", "mnist-5k", "--out", "o.npy", "--budget", "-1"],
            "--budget: must be non-negative",
        ),
        (["serve", "m", "--port", "70000"], "--port: must be a port number"),
        (["run", "c.yaml", "--eval-every", "0"], "--eval-every: expected 'auto' or an integer of at least 1, got '0'"),
        (["reproduce", "ladder-mnist", "--eval-every", "often"], "--eval-every: expected 'auto' or an integer"),
        (
            ["mimic", "--teacher", "t.npy", "--data", "mnist-5k", "--student", "s", "--budget-order", "best"],
            "--budget-order: invalid choice: 'best'",
        ),
        (["mimic", "--teacher", "t.npy"], "the following arguments are required"),
        (["audit", "--teacher", "t.onnx", "--data", "mnist-5k", "--student", "s", "--seeds", "0"], "--seeds"),
        (["audit", "--teacher", "t.onnx", "--data", "mnist-5k", "--student", "s", "--budgets", "1,x"], "--budgets"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
    ],
)
def test_argument_mistakes_are_one_line(argv: list[str], needle: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and needle in err, err


def test_resume_refusal_is_one_line_and_restart_stage_retrains(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "c.yaml"
    raw = tiny_config(tmp_path)
    raw["train"]["epochs"] = 1
    config.write_text(yaml.safe_dump(raw))
    assert main(["run", str(config), "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["run", str(config), "--resume", "--set", "split.seed=7", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "stage 'Mentor' was trained with other inputs (split.seed 0 -> 7)" in err
    assert (
        main(["run", str(config), "--resume", "--set", "split.seed=7", "--restart-stage", "Mentor", "--no-progress"])
        == 0
    )
    assert "retraining stage 'Mentor'" in capsys.readouterr().out
