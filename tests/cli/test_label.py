"""``deepmimic label``: black-box labelling from the command line; errors are one line, exit 2."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from deepmimic.cli import main
from deepmimic.data import load_dataset
from pipeline_configs import write_blobs_npz

N_TRAIN, K = 240, 4  # write_blobs_npz: 4 classes x 60 training images of (1, 8, 8)


def predictions(n: int = N_TRAIN, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).random((n, K)) + 0.05
    return (x / x.sum(axis=1, keepdims=True)).astype(np.float32)


def one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    lines = err.splitlines()  # progress lines may come first
    assert lines and lines[-1].startswith("error: ") and "Traceback" not in err, err
    assert sum(line.startswith("error") for line in lines) == 1, err
    return lines[-1]


def test_label_with_a_predictions_teacher(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = write_blobs_npz(tmp_path / "blobs.npz")
    np.save(tmp_path / "given.npy", predictions())
    out = tmp_path / "probs.npy"
    code = main(
        ["label", "--teacher", str(tmp_path / "given.npy"), "--data", f"npz:{data}", "--out", str(out), "--no-progress"]
    )
    assert code == 0
    np.testing.assert_array_equal(np.load(out), predictions())
    stdout = capsys.readouterr().out
    assert "240/240 images" in stdout and f"probabilities: {out}" in stdout


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_label_with_an_onnx_teacher_and_label_only(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = write_blobs_npz(tmp_path / "blobs.npz")
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, K)).eval()
    onnx_path = tmp_path / "teacher.onnx"
    torch.onnx.export(
        model, (torch.zeros(2, 1, 8, 8),), str(onnx_path), input_names=["x"], dynamic_axes={"x": {0: "b"}}, dynamo=False
    )
    test_images = load_dataset("npz", data).test.images
    with torch.no_grad():
        expected = torch.softmax(model((test_images.float() / 255 - 0.5) / 0.5), dim=1).numpy()

    out = tmp_path / "probs.npy"
    args = [
        "label",
        "--teacher",
        str(onnx_path),
        "--data",
        str(data),
        "--split",
        "test",
        "--out",
        str(out),
        "--no-progress",
    ]
    assert main([*args, "--option", "mean=0.5", "--option", "std=0.5", "--batch-size", "32"]) == 0
    np.testing.assert_allclose(np.load(out), expected, atol=1e-5)

    hard = tmp_path / "hard.npy"
    hard_args = ["--option", "mean=0.5", "--option", "std=0.5", "--option", "label_only=true", "--out", str(hard)]
    assert main([*args[:-3], *hard_args, "--no-progress"]) == 0
    np.testing.assert_array_equal(np.load(hard).argmax(axis=1), expected.argmax(axis=1))
    assert set(np.unique(np.load(hard)).tolist()) == {0.0, 1.0}
    capsys.readouterr()


def test_budget_stops_with_a_clear_error_and_a_rerun_resumes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = write_blobs_npz(tmp_path / "blobs.npz")
    np.save(tmp_path / "given.npy", predictions())
    out = tmp_path / "probs.npy"
    args = [
        "label",
        "--teacher",
        str(tmp_path / "given.npy"),
        "--data",
        f"npz:{data}",
        "--out",
        str(out),
        "--no-progress",
        "--batch-size",
        "16",
    ]
    assert main([*args, "--budget", "50"]) == 2
    err = one_error_line(capsys)
    assert "query budget of 50 samples reached: 50 of 240 images labelled" in err and not out.exists()
    assert main(args) == 0
    assert "50 from the query log, 190 queried" in capsys.readouterr().out
    np.testing.assert_array_equal(np.load(out), predictions())


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--teacher", "nowhere/teacher.bin"], "no such file or directory"),
        (["--teacher", "{given}", "--option", "colour=red"], "unknown option(s) colour for predictions teacher"),
        (["--teacher", "{given}", "--option", "novalue"], "--option expects KEY=VALUE, got 'novalue'"),
        (["--teacher", "{short}"], "100 rows of predictions but the unlabelled set has 240 images"),
        (["--teacher", "{bad_onnx}"], "not a readable ONNX model"),
        (["--teacher", "{given}", "--data", "imagenet:/nowhere"], "expected NAME or NAME:ROOT"),
        (["--teacher", "{given}", "--batch-size", "0"], "--batch-size: must be at least 1"),
    ],
)
def test_bad_input_is_one_error_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    data = write_blobs_npz(tmp_path / "blobs.npz")
    np.save(tmp_path / "given.npy", predictions())
    np.save(tmp_path / "short.npy", predictions(100))
    (tmp_path / "bad.onnx").write_bytes(b"garbage")
    files = {"given": tmp_path / "given.npy", "short": tmp_path / "short.npy", "bad_onnx": tmp_path / "bad.onnx"}
    extra = [arg.format(**files) for arg in extra]
    args = ["label", "--data", f"npz:{data}", "--out", str(tmp_path / "o.npy"), *extra]
    assert main(args) == 2
    assert message in one_error_line(capsys)
    assert not (tmp_path / "o.npy").exists()


# Issue 12, item 3: an output that cannot be written fails before a single image is labelled.
def test_label_checks_out_before_labelling(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_labelling(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("labelled before checking --out")

    monkeypatch.setattr("deepmimic.labelling.black_box_job.label_dataset_sharded", no_labelling)
    data = write_blobs_npz(tmp_path / "blobs.npz")
    np.save(tmp_path / "given.npy", predictions())
    (tmp_path / "taken").mkdir()
    base = ["label", "--teacher", str(tmp_path / "given.npy"), "--data", f"npz:{data}"]
    assert main([*base, "--out", str(tmp_path / "taken")]) == 2
    assert "is a folder; give a file name" in one_error_line(capsys)
    (tmp_path / "file").write_text("x")
    assert main([*base, "--out", str(tmp_path / "file" / "probs.npy")]) == 2
    assert "is not a folder" in one_error_line(capsys)
