"""Issue 12, items 1, 2 and 7: a resume never reuses a stage trained on other inputs,
a longer resume re-plans the schedule, and a run that fails validation writes nothing."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from deepmimic.config import parse_config
from deepmimic.engine.optim import build_scheduler
from deepmimic.engine.settings import TrainSettings
from deepmimic.errors import ConfigError, DeepMimicError, ModelSpecError
from deepmimic.pipelines.deepmimic import run_pipeline
from deepmimic.pipelines.resume_guard import INPUTS_NAME, differences
from pipeline_configs import tiny_config


def _config(tmp_path: Path, *overrides: str, epochs: int = 2):
    raw = json.loads(json.dumps(tiny_config(tmp_path)))  # no shared option dicts between stages
    raw["train"]["epochs"] = epochs
    raw["students"] = raw["students"][:1]  # mentor + Student-A keep these tests quick
    return parse_config(raw, overrides=list(overrides))


def _bytes(path: Path) -> bytes:
    return path.read_bytes()


@pytest.fixture()
def finished(tmp_path: Path) -> Path:
    run_pipeline(_config(tmp_path), progress=False)
    return tmp_path


@pytest.mark.parametrize(
    ("override", "named"),
    [("split.labeled_fraction=0.3", "split.labeled_fraction 0.2 -> 0.3"), ("split.seed=7", "split.seed 0 -> 7")],
)
def test_resume_with_a_changed_split_is_refused_and_writes_nothing(finished: Path, override: str, named: str) -> None:
    run = finished / "run"
    before = {p: _bytes(run / p) for p in ("config.yaml", "split.json", "results.json", "mentor/weights.safetensors")}
    with pytest.raises(ConfigError) as err:
        run_pipeline(_config(finished, override), resume=True, progress=False)
    message = str(err.value)
    assert "stage 'Mentor'" in message and named in message and "--restart-stage Mentor" in message
    assert "\n" not in message
    assert {p: _bytes(run / p) for p in before} == before  # config.yaml and split.json still describe the models


def test_restart_stage_retrains_the_stage_and_the_students_that_learn_from_it(
    finished: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    run = finished / "run"
    old_mentor = _bytes(run / "mentor" / "weights.safetensors")
    results = run_pipeline(_config(finished, "split.seed=7"), resume=True, restart=["Mentor"], progress=False)
    assert _bytes(run / "mentor" / "weights.safetensors") != old_mentor
    # The restarted run equals a fresh run of the new config, bit for bit.
    fresh_root = tmp_path_factory.mktemp("fresh")
    fresh = run_pipeline(_config(fresh_root, "split.seed=7"), progress=False)
    for stage in ("mentor", "students/student-a"):
        assert _bytes(run / stage / "weights.safetensors") == _bytes(fresh_root / "run" / stage / "weights.safetensors")
    assert results["students"][0]["accuracy"] == fresh["students"][0]["accuracy"]
    assert json.loads((run / "mentor" / INPUTS_NAME).read_text())["split"]["seed"] == 7


def test_a_changed_student_is_refused_alone_and_restarting_it_keeps_the_mentor(finished: Path) -> None:
    run = finished / "run"
    mentor = _bytes(run / "mentor" / "checkpoint.pt")
    change = "students.0.model_options.fc_units=16"
    with pytest.raises(ConfigError, match=r"stage 'Student-A'.*model_options\.fc_units 32 -> 16"):
        run_pipeline(_config(finished, change), resume=True, progress=False)
    run_pipeline(_config(finished, change), resume=True, restart=["Student-A"], progress=False)
    assert _bytes(run / "mentor" / "checkpoint.pt") == mentor


@pytest.mark.parametrize(
    ("override", "stage"),
    [
        ("mentor.model_options.fc_units=16", "Mentor"),
        ("students.0.method_options.temperature=2.0", "Student-A"),
        ("students.0.teacher=online", "Student-A"),
        ("mentor.train.lr=0.01", "Mentor"),
        ("data.test_subset=20", "Mentor"),
        ("split.removal_ratio_bound=0.5", "Student-A"),
    ],
)
def test_every_input_of_a_stage_is_compared(finished: Path, override: str, stage: str) -> None:
    with pytest.raises(ConfigError, match=f"stage '{stage}'"):
        run_pipeline(_config(finished, override), resume=True, progress=False)


def test_changed_data_content_is_refused(finished: Path) -> None:
    arrays = dict(np.load(finished / "blobs.npz"))
    arrays["images"][0] = 255 - arrays["images"][0]
    np.savez(finished / "changed.npz", **arrays)
    with pytest.raises(ConfigError, match=r"data\.root .*data\.fingerprint"):
        run_pipeline(_config(finished, f"data.root={finished / 'changed.npz'}"), resume=True, progress=False)


def test_a_longer_mentor_makes_its_students_stale(finished: Path) -> None:
    with pytest.raises(ConfigError, match=r"stage 'Student-A'.*mentor\.epochs 2 -> 3"):
        run_pipeline(_config(finished, "mentor.train.epochs=3"), resume=True, progress=False)


def test_unknown_restart_stage_and_a_stage_without_a_record_are_refused(finished: Path) -> None:
    with pytest.raises(ConfigError, match="--restart-stage Nobody: no such stage; stages: Mentor, Student-A"):
        run_pipeline(_config(finished), resume=True, restart=["Nobody"], progress=False)
    (finished / "run" / "mentor" / INPUTS_NAME).unlink()
    with pytest.raises(ConfigError, match="stage 'Mentor'.*no record of what it was trained on"):
        run_pipeline(_config(finished), resume=True, progress=False)


def test_an_unchanged_resume_is_accepted_with_free_settings_changed(finished: Path) -> None:
    run = finished / "run"
    weights = _bytes(run / "students" / "student-a" / "weights.safetensors")
    run_pipeline(_config(finished, "train.eval_batch_size=7", "train.eval_every=2"), resume=True, progress=False)
    assert _bytes(run / "students" / "student-a" / "weights.safetensors") == weights


# --- item 2: more epochs on resume --------------------------------------------------------


def _lrs(path: Path) -> list[float]:
    return [json.loads(line)["lr"] for line in path.read_text().splitlines()]


@pytest.mark.parametrize("schedule", ["cosine", "step", "constant"])
def test_resuming_with_more_epochs_follows_the_longer_schedule(tmp_path: Path, schedule: str) -> None:
    over = [f"train.schedule={schedule}", "train.step_size=1", "train.gamma=0.5"]
    run_pipeline(_config(tmp_path, *over, epochs=2), progress=False)
    run_pipeline(_config(tmp_path, *over, "train.epochs=4"), resume=True, restart=["Student-A"], progress=False)
    lrs = _lrs(tmp_path / "run" / "mentor" / "metrics.jsonl")
    assert len(lrs) == 4 and min(lrs) > 0
    # Epochs 3-4 use what a 4-epoch schedule uses there (built and stepped as the engine does).
    settings = TrainSettings(epochs=4, lr=0.05, schedule=schedule, step_size=1, gamma=0.5)
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=settings.lr)
    sched = build_scheduler(opt, settings)
    planned = []
    for _ in range(4):
        planned.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[2:] == pytest.approx(planned[2:], rel=1e-12)


def test_resuming_with_fewer_epochs_than_trained_is_refused(finished: Path) -> None:
    with pytest.raises(ConfigError, match="stage 'Mentor' has trained 2 epochs, more than the 1 asked for"):
        run_pipeline(_config(finished, "train.epochs=1"), resume=True, restart=["Student-A"], progress=False)


# --- item 7: nothing is written before everything is validated ----------------------------


@pytest.mark.parametrize(
    ("override", "error", "needle"),
    [
        ("students.0.model=c-xx-s", ModelSpecError, "xx"),
        ("students.0.model=c:99999999-s", ModelSpecError, "parameters need about"),
        ("students.0.method=nope", ConfigError, "unknown method"),
        ("students.0.method_options.bogus=1", ConfigError, "bogus"),
        ("train.device=banana", ConfigError, "device 'banana'"),
        ("train.device=cuda", ConfigError, "CUDA is not available"),
        ("students.0.method=supervised", None, None),  # valid: the one-hot baseline
    ],
)
def test_a_run_that_fails_validation_leaves_no_folder(
    tmp_path: Path, override: str, error: type[DeepMimicError] | None, needle: str | None
) -> None:
    if error is None or (override.endswith("cuda") and torch.cuda.is_available()):
        pytest.skip("valid here")
    with pytest.raises(error, match=needle):
        run_pipeline(_config(tmp_path, override), progress=False)
    assert not (tmp_path / "run").exists()


def test_an_output_path_that_is_a_file_or_unwritable_is_refused_first(tmp_path: Path) -> None:
    (tmp_path / "taken").write_text("x")
    with pytest.raises(ConfigError, match="exists and is not a folder"):
        run_pipeline(_config(tmp_path, f"output_dir={tmp_path / 'taken'}"), progress=False)
    with pytest.raises(ConfigError, match="cannot be created"):
        run_pipeline(_config(tmp_path, f"output_dir={tmp_path / 'taken' / 'below'}"), progress=False)
    assert (tmp_path / "taken").read_text() == "x"


def test_differences_are_readable() -> None:
    old = {"split": {"seed": 0}, "data": {"fingerprint": "a" * 64}, "x": [1]}
    new = {"split": {"seed": 7}, "data": {"fingerprint": "b" * 64}, "y": 2}
    assert differences(old, new) == [
        "split.seed 0 -> 7",
        f"data.fingerprint {'a' * 12} -> {'b' * 12}",
        "x removed (was [1])",
        "y added (2)",
    ]


def test_config_yaml_of_a_refused_resume_is_untouched(finished: Path) -> None:
    saved = yaml.safe_load((finished / "run" / "config.yaml").read_text())
    with pytest.raises(ConfigError):
        run_pipeline(_config(finished, "split.seed=3"), resume=True, progress=False)
    assert yaml.safe_load((finished / "run" / "config.yaml").read_text()) == saved


# Review findings: a fresh run clears old stage state; fewer epochs are refused before any write.
def test_a_fresh_run_in_a_used_folder_leaves_no_stale_checkpoint_for_a_later_resume(
    finished: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import deepmimic.pipelines.deepmimic as pipeline  # noqa: PLC0415

    run = finished / "run"
    old_student = _bytes(run / "students" / "student-a" / "weights.safetensors")
    real_fit = pipeline.fit

    def killed_at_the_student(*args: object, **kwargs: object) -> object:
        if kwargs.get("label") == "Student-A":
            raise KeyboardInterrupt  # the fresh run dies before the student's first checkpoint
        return real_fit(*args, **kwargs)

    monkeypatch.setattr(pipeline, "fit", killed_at_the_student)
    with pytest.raises(KeyboardInterrupt):
        run_pipeline(_config(finished, "split.seed=7"), progress=False)
    assert not (run / "students" / "student-a" / "checkpoint.pt").exists()
    monkeypatch.setattr(pipeline, "fit", real_fit)
    run_pipeline(_config(finished, "split.seed=7"), resume=True, progress=False)
    assert _bytes(run / "students" / "student-a" / "weights.safetensors") != old_student


def test_fewer_student_epochs_are_refused_before_anything_is_written(finished: Path) -> None:
    run = finished / "run"
    config_before = _bytes(run / "config.yaml")
    with pytest.raises(ConfigError, match="stage 'Student-A' has trained 2 epochs, more than the 1 asked for"):
        run_pipeline(_config(finished, "students.0.train.epochs=1"), resume=True, progress=False)
    assert _bytes(run / "config.yaml") == config_before


def test_how_a_store_is_read_does_not_block_a_resume() -> None:
    """Issue 17: stream/verify change how a store's rows are read, not which; other options still count."""
    from deepmimic.config_schema import DataConfig
    from deepmimic.pipelines.resume_guard import data_record

    def record(**options: object) -> dict:
        return data_record(DataConfig(name="store", root="x.dmstore", options=options), "sha")

    assert record(stream=True, verify=True) == record() == record(stream=False)
    assert record(test_fraction=0.3) != record()
