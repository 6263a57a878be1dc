"""``deepmimic mimic`` end to end: a served mentor copied over loopback HTTP, ONNX top-1, budgets."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
import uvicorn
import yaml

from deepmimic.cli import main
from deepmimic.config import parse_config
from deepmimic.data import load_dataset
from deepmimic.models.bundle import load_trained
from deepmimic.pipelines.deepmimic import run_pipeline
from deepmimic.pipelines.mimic import run_mimic
from deepmimic.pipelines.mimic_config import MimicConfig
from deepmimic.serving.app import create_app
from pipeline_configs import tiny_config

STUDENT_OPTIONS = {"conv_channels": 8, "fc_units": 32}


@pytest.fixture(scope="module")
def mentor_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A trained tiny DeepMimic run; its mentor is the teacher to copy."""
    root = tmp_path_factory.mktemp("mentor")
    run_pipeline(parse_config(tiny_config(root)), progress=False)
    return root


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture()
def served_mentor(mentor_run: Path) -> Iterator[str]:
    """The mentor behind a real HTTP endpoint on 127.0.0.1 (the `deepmimic serve` app)."""
    trained = load_trained(mentor_run / "run" / "mentor")
    app = create_app(
        trained.probs, num_classes=trained.num_classes, in_shape=trained.in_shape, model_name="mentor", max_batch=64
    )
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}/v1/predict"
    finally:
        server.should_exit = True
        thread.join(timeout=5)


def _options(mentor_run: Path, out: Path, teacher: str, **extra: object) -> MimicConfig:
    return MimicConfig.model_validate(
        {
            "teacher": teacher,
            "data": f"npz:{mentor_run / 'blobs.npz'}",
            "student": "c-mp-fc-s",
            "output_dir": str(out),
            "student_options": STUDENT_OPTIONS,
            "train": {"epochs": 5, "batch_size": 16, "lr": 0.05, "device": "cpu"},
            **extra,
        }
    )


def test_student_copies_a_served_mentor_over_http(mentor_run: Path, served_mentor: str, tmp_path: Path) -> None:
    results = run_mimic(_options(mentor_run, tmp_path / "mimic", served_mentor), progress=False)
    mentor_accuracy = json.loads((mentor_run / "run" / "results.json").read_text())["mentor"]["accuracy"]
    teacher, student = results["mentor"], results["students"][0]
    assert teacher["accuracy"] == pytest.approx(mentor_accuracy)  # the endpoint answers as the mentor does
    assert student["accuracy"] >= 0.98 * teacher["accuracy"]
    assert student["agreement"] > 0.9
    queries = results["queries"]
    assert queries["unlabelled"]["queried"] == results["data"]["unlabeled"]
    assert queries["total_sent"] == results["data"]["unlabeled"] + results["data"]["test"]
    # Run again: every answer comes from the query log, nothing is sent.
    again = run_mimic(_options(mentor_run, tmp_path / "mimic", served_mentor), progress=False)
    assert again["queries"]["total_sent"] == 0 and again["students"][0]["accuracy"] == student["accuracy"]


def test_onnx_label_only_and_budget_from_the_command_line(
    mentor_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    onnx = tmp_path / "mentor.onnx"
    assert main(["export", str(mentor_run / "run" / "mentor"), "--onnx", str(onnx)]) == 0
    out = tmp_path / "top1"
    code = main(
        [
            "mimic",
            "--teacher",
            str(onnx),
            "--data",
            f"npz:{mentor_run / 'blobs.npz'}",
            "--student",
            "c-mp-fc-s",
            "--student-option",
            "conv_channels=8",
            "--student-option",
            "fc_units=32",
            "--label-only",
            "--budget",
            "100",
            "--epochs",
            "3",
            "--batch-size",
            "16",
            "--out",
            str(out),
            "--no-progress",
        ]
    )
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    assert results["label_only"] is True and "top-1" in results["students"][0]["method"]
    assert results["queries"]["unlabelled"]["labeled"] == 100 and results["queries"]["unlabelled"]["budget_exhausted"]
    assert "queries sent to the teacher" in capsys.readouterr().out
    assert (out / "report.html").exists() and "Teacher" in (out / "report.md").read_text()


def test_bad_teacher_spec_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "mimic",
            "--teacher",
            str(tmp_path / "missing.onnx"),
            "--data",
            "mnist-5k",
            "--student",
            "mnist-student-b",
            "--out",
            str(tmp_path / "o"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1


def test_trained_run_folder_as_teacher_and_the_label_only_gap(mentor_run: Path, tmp_path: Path) -> None:
    opts = _options(mentor_run, tmp_path / "both", str(mentor_run / "run" / "mentor"), compare_label_only=True)
    results = run_mimic(opts, progress=False)
    soft, top1 = results["students"]
    assert soft["name"] == "Student" and top1["name"] == "Student (top-1 only)" and "top-1" in top1["method"]
    assert (
        results["queries"]["total_sent"] == results["data"]["unlabeled"] + results["data"]["test"]
    )  # one pass, both students
    assert 0.0 <= top1["accuracy"] <= 1.0 and soft["agreement"] > 0.9
    from deepmimic.report.build import build_report

    report = build_report(tmp_path / "both")["report.md"].read_text()
    assert "Student (top-1 only)" in report


# Issue 12, item 3: everything is checked before the first query is paid for.
def _no_queries(*_args: object, **_kwargs: object) -> None:
    raise AssertionError("the teacher was queried before the options were checked")


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--student", "c-xx-s"], "xx"),
        (["--student", "c-mp-fc-s", "--student-option", "bogus=1"], "bogus"),
        (["--student", "c:99999999-s"], "parameters need about"),
    ],
)
def test_mimic_checks_the_student_before_querying(
    mentor_run: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    needle: str,
) -> None:
    monkeypatch.setattr("deepmimic.pipelines.mimic.label_dataset_sharded", _no_queries)
    out = tmp_path / "copy"
    argv = [
        "mimic",
        "--teacher",
        str(mentor_run / "run" / "mentor"),
        "--data",
        f"npz:{mentor_run / 'blobs.npz'}",
        "--out",
        str(out),
        *extra,
    ]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and needle in err, err
    assert not out.exists()


def test_mimic_refuses_an_output_path_that_is_a_file_before_querying(
    mentor_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("deepmimic.pipelines.mimic.label_dataset_sharded", _no_queries)
    (tmp_path / "file").write_text("x")
    argv = [
        "mimic",
        "--teacher",
        str(mentor_run / "run" / "mentor"),
        "--data",
        f"npz:{mentor_run / 'blobs.npz'}",
        "--student",
        "c-mp-fc-s",
        "--out",
        str(tmp_path / "file"),
    ]
    assert main(argv) == 2
    assert "exists and is not a folder" in capsys.readouterr().err


def test_mimic_with_a_predictions_file_and_a_subset_uses_the_subsets_rows(mentor_run: Path, tmp_path: Path) -> None:
    train = load_dataset("npz", mentor_run / "blobs.npz").train
    probs = np.eye(4, dtype=np.float32)[train.labels.numpy()]  # the true class as a one-hot "teacher"
    np.save(tmp_path / "preds.npy", probs)
    opts = MimicConfig.model_validate(
        {
            "teacher": str(tmp_path / "preds.npy"),
            "data": f"npz:{mentor_run / 'blobs.npz'}",
            "student": "c-mp-fc-s",
            "output_dir": str(tmp_path / "copy"),
            "subset": 50,
            "student_options": STUDENT_OPTIONS,
            "train": {"epochs": 1, "batch_size": 16},
        }
    )
    results = run_mimic(opts, progress=False)
    assert results["data"]["unlabeled"] == 50
    answers = np.load(tmp_path / "copy" / "teacher-probs.npy")
    keep = torch.randperm(len(train), generator=torch.Generator().manual_seed(0))[:50].sort().values
    assert np.array_equal(answers, probs[keep.numpy()])  # row i of the subset got the file's row keep[i]


def _one_hot_predictions(mentor_run: Path, path: Path) -> Path:
    train = load_dataset("npz", mentor_run / "blobs.npz").train
    np.save(path, np.eye(4, dtype=np.float32)[train.labels.numpy()])
    return path


def test_mimic_takes_a_method_and_its_options_and_its_config_reruns(
    mentor_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    preds = _one_hot_predictions(mentor_run, tmp_path / "preds.npy")
    data = f"npz:{mentor_run / 'blobs.npz'}"
    args = ["mimic", "--teacher", str(preds), "--data", data, "--student", "c-mp-fc-s", "--epochs", "1"]
    args += ["--student-option", "conv_channels=8", "--student-option", "fc_units=32", "--batch-size", "16"]
    args += ["--method", "kd", "--method-option", "temperature=2", "--no-progress"]
    assert main([*args, "--out", str(tmp_path / "kd")]) == 0
    results = json.loads((tmp_path / "kd" / "results.json").read_text())
    assert results["pipeline"] == "mimic" and results["students"][0]["method"] == "kd"
    saved = yaml.safe_load((tmp_path / "kd" / "config.yaml").read_text())
    assert saved["method"] == "kd" and saved["method_options"] == {"temperature": 2}
    # The saved config is a pipeline: mimic config: `deepmimic run` reruns it to the same numbers.
    assert main(["run", str(tmp_path / "kd" / "config.yaml"), "--out", str(tmp_path / "again"), "--no-progress"]) == 0
    again = json.loads((tmp_path / "again" / "results.json").read_text())
    assert again["students"][0]["accuracy"] == results["students"][0]["accuracy"]
    capsys.readouterr()

    # A bad method option is one line, before any query (no folder is left behind).
    assert main([*args, "--method-option", "temprature=2", "--out", str(tmp_path / "bad")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "temprature" in err and not (tmp_path / "bad").exists()


def test_budget_order_random_asks_a_seeded_sample_and_file_the_first_rows(mentor_run: Path, tmp_path: Path) -> None:
    """``budget_order: random`` answers a sample drawn with train.seed (the same rows for the same
    seed, others for another); ``file`` (the default) answers the first ``budget`` rows."""
    from deepmimic.labelling.query_log import read_query_log

    preds = _one_hot_predictions(mentor_run, tmp_path / "preds.npy")

    def rows(name: str, seed: int, **extra: object) -> list[int]:
        train = {"epochs": 1, "batch_size": 16, "device": "cpu", "seed": seed}
        results = run_mimic(
            _options(mentor_run, tmp_path / name, str(preds), budget=30, train=train, evaluate_test=False, **extra),
            progress=False,
        )
        assert results["queries"]["unlabelled"]["labeled"] == 30
        _, answered, _ = read_query_log(tmp_path / name / "teacher-probs.npy.querylog")
        return sorted(answered.tolist())

    assert rows("file", 0) == list(range(30))
    assert rows("file-seed-1", 1, budget_order="file") == list(range(30))  # file order ignores the seed
    first = rows("random", 0, budget_order="random")
    assert first != list(range(30)) and len(set(first)) == 30
    expected = torch.randperm(240, generator=torch.Generator().manual_seed(0))[:30].sort().values.tolist()
    assert first == expected
    assert rows("random-again", 0, budget_order="random") == first
    assert rows("random-seed-1", 1, budget_order="random") != first
    saved = yaml.safe_load((tmp_path / "random" / "config.yaml").read_text())
    assert saved["budget_order"] == "random" and saved["train"]["eval_every"] == "auto"


@pytest.mark.parametrize("subset", [None, 40])
def test_mimic_on_a_streamed_store_matches_the_same_data_in_memory(
    mentor_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, subset: int | None
) -> None:
    """Issue 17: a store read per batch (RowTable) gives mimic the same queries and the same student."""
    from deepmimic.data import store_read
    from deepmimic.data.rows import FileRows
    from deepmimic.data.store import pack_dataset

    pack_dataset(load_dataset("npz", mentor_run / "blobs.npz"), tmp_path / "b.dmstore", source="blobs")
    monkeypatch.setattr(store_read, "STREAM_ABOVE_BYTES", 0)  # every store streams
    reads = []
    real_read = FileRows.read
    monkeypatch.setattr(FileRows, "read", lambda self, rows: reads.append(len(rows)) or real_read(self, rows))
    teacher = str(mentor_run / "run" / "mentor")
    memory = run_mimic(_options(mentor_run, tmp_path / "memory", teacher, subset=subset), progress=False)
    streamed = run_mimic(
        _options(mentor_run, tmp_path / "streamed", teacher, data=str(tmp_path / "b.dmstore"), subset=subset),
        progress=False,
    )
    assert streamed["queries"]["total_sent"] == memory["queries"]["total_sent"]
    assert streamed["students"][0]["accuracy"] == memory["students"][0]["accuracy"]
    assert reads  # the rows really came from the store file


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("teacher.onnx", "black box (onnx)"),
        ("http://127.0.0.1:8000/predict", "black box (http)"),
        ("answers.npy", "black box (predictions)"),
        ("teacher.ts", "(pretrained TorchScript, queried)"),
        ("teacher.pt2", "(pretrained torch.export, queried)"),
    ],
)
def test_the_report_names_what_kind_of_teacher_answered(spec: str, expected: str) -> None:
    from deepmimic.pipelines.mimic import _teacher_architecture

    assert _teacher_architecture(spec) == expected
