"""The training engine: learning, metrics files, checkpoints, resume, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from deepmimic.data.batches import Normalizer, TrainingSet
from deepmimic.engine.checkpoint import load_checkpoint
from deepmimic.engine.settings import TrainSettings
from deepmimic.engine.trainer import CHECKPOINT_NAME, METRICS_NAME, WEIGHTS_NAME, fit
from deepmimic.errors import TeacherError, TrainingError
from deepmimic.methods import Supervised
from synthetic import make_blobs_dataset


def tiny_cnn(num_classes: int = 4) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Dropout(0.1),
        nn.Flatten(),
        nn.Linear(4 * 16, num_classes),
    )


def supervised_setup(seed: int = 0) -> tuple[Supervised, TrainingSet, Normalizer]:
    torch.manual_seed(seed)
    ds = make_blobs_dataset(n_per_class=30)
    data = TrainingSet(ds.images, {"labels": ds.labels})
    return Supervised(tiny_cnn()), data, Normalizer.fit(ds.images)


SETTINGS = dict(batch_size=16, lr=0.1, epochs=4, seed=7, device="cpu")


def test_fit_learns_and_writes_metrics_checkpoint_and_weights(tmp_path: Path) -> None:
    method, data, norm = supervised_setup()
    test = make_blobs_dataset(n_per_class=10, seed=1)
    result = fit(method, data, norm, TrainSettings(**SETTINGS), test=test, run_dir=tmp_path, progress=False)
    assert len(result.history) == 4
    assert result.final["test_accuracy"] >= 0.9
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    lines = (tmp_path / METRICS_NAME).read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2, 3, 4]
    state = load_checkpoint(tmp_path / CHECKPOINT_NAME)
    assert state["epoch"] == 4
    assert (tmp_path / WEIGHTS_NAME).stat().st_size > 0
    assert not list(tmp_path.glob("*.tmp"))  # atomic writes leave no temporaries


def test_resume_after_interruption_matches_uninterrupted_run(tmp_path: Path) -> None:
    test = make_blobs_dataset(n_per_class=10, seed=1)
    method_a, data, norm = supervised_setup()
    # Reference: uninterrupted. Then the same run killed during epoch 3 and resumed from the
    # checkpoint of epoch 2 (checkpoint_seconds 0: a checkpoint after every epoch).
    settings = TrainSettings(**SETTINGS, checkpoint_seconds=0)
    fit(method_a, data, norm, settings, test=test, run_dir=tmp_path / "ref", progress=False)

    method_b, _, _ = supervised_setup()
    calls = {"n": 0}
    original = method_b.losses

    def dying_losses(batch):  # raise during epoch 3
        calls["n"] += 1
        if calls["n"] == 2 * 8 + 3:  # 120 images / 16 = 8 batches per epoch
            raise KeyboardInterrupt
        return original(batch)

    method_b.losses = dying_losses  # type: ignore[method-assign]
    with pytest.raises(KeyboardInterrupt):
        fit(method_b, data, norm, settings, test=test, run_dir=tmp_path / "killed", progress=False)
    assert len((tmp_path / "killed" / METRICS_NAME).read_text().splitlines()) == 2
    assert load_checkpoint(tmp_path / "killed" / CHECKPOINT_NAME)["epoch"] == 2

    method_c, _, _ = supervised_setup(seed=99)  # other initial weights: only the checkpoint can make it match
    resumed = fit(
        method_c,
        data,
        norm,
        settings,
        test=test,
        run_dir=tmp_path / "killed",
        resume=True,
        progress=False,
    )
    ref = json.loads((tmp_path / "ref" / METRICS_NAME).read_text().splitlines()[-1])
    assert resumed.final["test_accuracy"] == ref["test_accuracy"]
    assert resumed.final["test_loss"] == pytest.approx(ref["test_loss"], abs=1e-6)
    assert resumed.final["train_loss"] == pytest.approx(ref["train_loss"], abs=1e-6)
    for (name, a), (_, b) in zip(method_a.state_dict().items(), method_c.state_dict().items()):
        assert torch.allclose(a, b, atol=1e-6), name
    assert [json.loads(line)["epoch"] for line in (tmp_path / "killed" / METRICS_NAME).read_text().splitlines()] == [
        1,
        2,
        3,
        4,
    ]


def test_resume_of_finished_run_trains_nothing(tmp_path: Path) -> None:
    method, data, norm = supervised_setup()
    fit(method, data, norm, TrainSettings(**SETTINGS), run_dir=tmp_path, progress=False)
    again, _, _ = supervised_setup(seed=5)
    result = fit(again, data, norm, TrainSettings(**SETTINGS), run_dir=tmp_path, resume=True, progress=False)
    assert len(result.history) == 4
    for a, b in zip(method.state_dict().values(), again.state_dict().values()):
        assert torch.equal(a, b)


def test_resume_with_changed_settings_is_refused(tmp_path: Path) -> None:
    method, data, norm = supervised_setup()
    fit(method, data, norm, TrainSettings(**{**SETTINGS, "epochs": 1}), run_dir=tmp_path, progress=False)
    with pytest.raises(TrainingError, match="lr"):
        fit(method, data, norm, TrainSettings(**{**SETTINGS, "lr": 0.5}), run_dir=tmp_path, resume=True, progress=False)


def test_corrupt_checkpoint_gives_clear_error(tmp_path: Path) -> None:
    (tmp_path / CHECKPOINT_NAME).write_bytes(b"not a checkpoint")
    method, data, norm = supervised_setup()
    with pytest.raises(TrainingError, match="cannot load checkpoint"):
        fit(method, data, norm, TrainSettings(**SETTINGS), run_dir=tmp_path, resume=True, progress=False)


def test_non_finite_loss_stops_with_clear_error() -> None:
    method, data, norm = supervised_setup()
    with pytest.raises(TrainingError, match="non-finite loss"):
        fit(method, data, norm, TrainSettings(**{**SETTINGS, "lr": 1e30, "epochs": 3}), progress=False)


def test_label_needing_method_on_unlabelled_data_fails_before_training() -> None:
    ds = make_blobs_dataset()
    data = TrainingSet(ds.images, {}, name="students")
    with pytest.raises(TeacherError, match="needs ground-truth labels, but the training set 'students' is unlabelled"):
        fit(Supervised(tiny_cnn()), data, Normalizer.fit(ds.images), TrainSettings(**SETTINGS), progress=False)


def test_same_seed_same_result_on_cpu() -> None:
    results = []
    for _ in range(2):
        method, data, norm = supervised_setup()
        results.append(
            fit(method, data, norm, TrainSettings(**{**SETTINGS, "epochs": 2}), progress=False).final["train_loss"]
        )
    assert results[0] == results[1]


@pytest.mark.parametrize("optimizer,schedule", [("adam", "step"), ("sgd", "constant"), ("sgd", "cosine")])
def test_optimizers_and_schedules_run(optimizer: str, schedule: str) -> None:
    method, data, norm = supervised_setup()
    settings = TrainSettings(
        **{**SETTINGS, "optimizer": optimizer, "schedule": schedule, "step_size": 1, "lr": 0.01, "epochs": 2}
    )
    result = fit(method, data, norm, settings, progress=False)
    if schedule == "step":
        assert result.history[1]["lr"] == pytest.approx(0.001)
    elif schedule == "constant":
        assert result.history[1]["lr"] == pytest.approx(0.01)


def test_resume_into_another_architecture_is_a_one_line_error(tmp_path: Path) -> None:
    """Issue 12, item 8: load_state_dict's multi-line message becomes one line."""
    method, data, norm = supervised_setup()
    fit(method, data, norm, TrainSettings(**{**SETTINGS, "epochs": 1}), run_dir=tmp_path, progress=False)
    wider = Supervised(
        nn.Sequential(nn.Conv2d(1, 6, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(6 * 16, 4))
    )
    with pytest.raises(TrainingError, match="checkpoint does not fit this model") as err:
        fit(
            wider, data, norm, TrainSettings(**{**SETTINGS, "epochs": 1}), run_dir=tmp_path, resume=True, progress=False
        )
    assert "\n" not in str(err.value)


def test_resume_with_more_epochs_continues_at_the_longer_schedules_rates(tmp_path: Path) -> None:
    """Issue 12, item 2: a cosine run of 2 epochs extended to 4 trains epochs 3-4 at lr > 0,
    with the rates of a 4-epoch run, and ends where a 4-epoch run resumed after epoch 2 ends."""
    method, data, norm = supervised_setup()
    fit(method, data, norm, TrainSettings(**{**SETTINGS, "epochs": 2}), run_dir=tmp_path / "short", progress=False)
    extended = fit(
        method, data, norm, TrainSettings(**SETTINGS), run_dir=tmp_path / "short", resume=True, progress=False
    )
    lrs = [r["lr"] for r in extended.history]
    long_method, _, _ = supervised_setup()
    planned = [r["lr"] for r in fit(long_method, data, norm, TrainSettings(**SETTINGS), progress=False).history]
    assert lrs[2:] == pytest.approx(planned[2:], rel=1e-12) and min(lrs) > 0


def _epochs_with(history: list[dict], key: str) -> list[int]:
    return [r["epoch"] for r in history if key in r]


@pytest.mark.parametrize(
    "epochs,eval_every,expected",
    [
        (12, "auto", [2, 4, 6, 8, 10, 12]),  # auto: every ceil(12 / 10) = 2 epochs
        (4, "auto", [1, 2, 3, 4]),  # short runs: every epoch
        (5, 3, [3, 5]),  # every 3 epochs, and always the last
    ],
)
def test_evaluation_cadence(epochs: int, eval_every: int | str, expected: list[int]) -> None:
    method, data, norm = supervised_setup()
    test = make_blobs_dataset(n_per_class=10, seed=1)
    settings = TrainSettings(**{**SETTINGS, "epochs": epochs, "eval_every": eval_every})
    history = fit(method, data, norm, settings, test=test, progress=False).history
    assert _epochs_with(history, "test_accuracy") == expected
    assert _epochs_with(history, "test_loss") == expected


def test_eval_subset_is_for_curve_points_and_cadence_does_not_change_training(tmp_path: Path) -> None:
    test = make_blobs_dataset(n_per_class=10, seed=1)  # 40 rows, 4 classes
    every, _, _ = supervised_setup()
    sparse, data, norm = supervised_setup()
    dense = fit(every, data, norm, TrainSettings(**{**SETTINGS, "eval_every": 1}), test=test, progress=False)
    settings = TrainSettings(**{**SETTINGS, "eval_every": 1, "eval_subset": 12})
    result = fit(sparse, data, norm, settings, test=test, run_dir=tmp_path, progress=False)
    # Curve points on a fixed 12-row stratified subset, the last epoch on all 40 rows.
    assert [r["test_rows"] for r in result.history] == [12, 12, 12, 40]
    assert result.final["test_accuracy"] == dense.final["test_accuracy"]
    assert result.final["test_loss"] == dense.final["test_loss"]
    # When and on what the test set is evaluated changes nothing that is trained.
    for (name, a), b in zip(every.state_dict().items(), sparse.state_dict().values()):
        assert torch.equal(a, b), name
    assert [r["train_loss"] for r in result.history] == [r["train_loss"] for r in dense.history]


@pytest.mark.parametrize(
    "cadence,expected",
    [
        ({}, [5]),  # default: every 60 s, so a fast run writes only its last epoch
        ({"checkpoint_seconds": 0}, [1, 2, 3, 4, 5]),
        ({"checkpoint_every": 2, "checkpoint_seconds": 1e9}, [2, 4, 5]),
    ],
)
def test_checkpoint_cadence(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cadence: dict, expected: list[int]
) -> None:
    import deepmimic.engine.trainer as trainer

    written: list[int] = []
    original = trainer.save_checkpoint

    def recording(path: Path, state: dict) -> None:
        written.append(state["epoch"])
        original(path, state)

    monkeypatch.setattr(trainer, "save_checkpoint", recording)
    method, data, norm = supervised_setup()
    fit(method, data, norm, TrainSettings(**{**SETTINGS, "epochs": 5, **cadence}), run_dir=tmp_path, progress=False)
    assert written == expected
    assert load_checkpoint(tmp_path / CHECKPOINT_NAME)["epoch"] == 5  # --resume of the finished stage still works


def test_sparse_checkpoints_resume_bit_identical(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Checkpoints every 3 epochs; a run that dies in epoch 5 resumes from epoch 3, trains 4-5
    again and ends bit for bit where an uninterrupted run ends, its metrics.jsonl line for line."""
    from safetensors.torch import load_file

    import deepmimic.engine.trainer as trainer

    test = make_blobs_dataset(n_per_class=10, seed=1)
    settings = TrainSettings(**{**SETTINGS, "epochs": 6, "checkpoint_every": 3, "checkpoint_seconds": 1e9})
    reference, data, norm = supervised_setup()
    fit(reference, data, norm, settings, test=test, run_dir=tmp_path / "ref", progress=False)

    original = trainer._train_one_epoch

    def dying(*args: object, **kwargs: object) -> dict:
        if args[7] == 5:  # the epoch argument
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(trainer, "_train_one_epoch", dying)
    killed, _, _ = supervised_setup()
    with pytest.raises(KeyboardInterrupt):
        fit(killed, data, norm, settings, test=test, run_dir=tmp_path / "killed", progress=False)
    assert len((tmp_path / "killed" / METRICS_NAME).read_text().splitlines()) == 4
    assert load_checkpoint(tmp_path / "killed" / CHECKPOINT_NAME)["epoch"] == 3
    monkeypatch.setattr(trainer, "_train_one_epoch", original)

    resumed, _, _ = supervised_setup(seed=99)  # other initial weights: only the checkpoint can make it match
    fit(resumed, data, norm, settings, test=test, run_dir=tmp_path / "killed", resume=True, progress=False)
    for (name, a), b in zip(reference.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name
    ours = load_file(str(tmp_path / "killed" / WEIGHTS_NAME))
    theirs = load_file(str(tmp_path / "ref" / WEIGHTS_NAME))
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)

    def results(run: str) -> list[dict]:
        timing = ("epoch_time_s", "images_per_s")
        lines = (tmp_path / run / METRICS_NAME).read_text().splitlines()
        return [{k: v for k, v in json.loads(line).items() if k not in timing} for line in lines]

    assert results("killed") == results("ref")
    assert [r["epoch"] for r in results("killed")] == [1, 2, 3, 4, 5, 6]
