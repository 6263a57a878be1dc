"""``deepmimic export`` and ``deepmimic serve`` from the command line (uvicorn itself not started)."""

from __future__ import annotations

import socket
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch

from deepmimic.cli import main
from deepmimic.config import parse_config
from deepmimic.pipelines.deepmimic import run_pipeline
from deepmimic.serving import encode_images
from pipeline_configs import tiny_config

with warnings.catch_warnings():  # starlette's notice about its httpx-based client
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("cli-serve")
    cfg = tiny_config(tmp)
    cfg["train"]["epochs"] = 1
    cfg["students"] = cfg["students"][1:]  # Student-B only
    run_pipeline(parse_config(cfg), progress=False)
    return tmp / "run"


def test_export_onnx_prints_the_verified_difference(
    run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "student-b.onnx"
    assert main(["export", str(run_dir / "students" / "student-b"), "--onnx", str(out), "--batch-size", "5"]) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out} (onnx); verified with onnxruntime on batches of 5 and 1: max abs diff probs" in printed
    assert "pixels / 255 (0-1; mean/std inside)" in printed
    assert out.is_file()


def test_export_torchscript_and_bundle(run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", str(run_dir / "mentor"), "--torchscript", str(tmp_path / "m.pt")]) == 0
    assert "(torchscript); verified with torch.jit.load" in capsys.readouterr().out
    assert main(["export", str(run_dir / "mentor"), "--bundle", str(tmp_path / "m.safetensors")]) == 0
    assert "(bundle); reloaded and verified" in capsys.readouterr().out
    assert main(["export", str(tmp_path / "m.safetensors"), "--onnx", str(tmp_path / "m.onnx")]) == 0
    assert "max abs diff" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["export", "no/such/stage", "--onnx", "x.onnx"], "error: no/such/stage: no such file or folder"),
        (["export", "{run}", "--onnx", "x.onnx"], "this is a run folder"),
        (["export", "{run}/mentor", "--onnx", "{run}/config.yaml/x.onnx"], "cannot write"),
        (
            ["export", "{run}/mentor", "--onnx", "x.onnx", "--batch-size", "0"],
            "--batch-size: must be between 1 and 4,096",
        ),
        (["serve", "no/such/stage"], "error: no/such/stage: no such file or folder"),
        (["serve", "missing.onnx"], "error: missing.onnx: no such ONNX file"),
        (["serve", "{run}/mentor", "--token-env", "DEEPMIMIC_TEST_UNSET_TOKEN"], "the environment variable is not set"),
        (["serve", "{run}/mentor", "--onnx-mean", "a,b"], "--onnx-mean expects comma-separated numbers"),
    ],
)
def test_user_errors_exit_2_with_one_line(
    run_dir: Path, args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([a.replace("{run}", str(run_dir)) for a in args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1, err
    assert "Traceback" not in err


def test_export_needs_exactly_one_target(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", str(run_dir / "mentor")]) == 2
    err = capsys.readouterr().err
    assert "one of the arguments --onnx --torchscript --bundle is required" in err and err.count("\n") == 1


def test_serve_builds_the_app_and_prints_the_url(
    run_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import uvicorn

    seen: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: seen.update(app=app, **kw))
    monkeypatch.setenv("MY_SERVE_TOKEN", "t0k")
    with socket.socket() as s:  # a free port
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert (
        main(
            [
                "serve",
                str(run_dir / "students" / "student-b"),
                "--port",
                str(port),
                "--token-env",
                "MY_SERVE_TOKEN",
                "--max-batch",
                "2",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert (
        f"serving Student-B (1x8x8 -> 4 classes) at http://127.0.0.1:{port}/v1/predict" in out
        and "token required" in out
    )
    assert seen["host"] == "127.0.0.1" and seen["port"] == port
    client = TestClient(seen["app"])
    auth = {"Authorization": "Bearer t0k"}
    assert client.get("/v1/info", headers=auth).json() == {
        "num_classes": 4,
        "in_shape": [1, 8, 8],
        "model": "Student-B",
    }
    images = torch.randint(0, 256, (2, 1, 8, 8), dtype=torch.uint8)
    assert client.post("/v1/predict", json=encode_images(images), headers=auth).status_code == 200
    assert client.post("/v1/predict", json=encode_images(images.repeat(2, 1, 1, 1)), headers=auth).status_code == 413
    # Hostile bodies get a one-line JSON 400 (issue 12: 1,000 nested '[' was a RecursionError and a plain-text 500).
    for hostile in (b"[" * 1000 + b"]" * 1000, b'{"images": ' + b"1" * 10_000 + b"}", b"NaN", b""):
        response = client.post("/v1/predict", content=hostile, headers={**auth, "content-type": "application/json"})
        assert response.status_code == 400 and "\n" not in response.json()["detail"], response.text
    assert client.post("/v1/predict", json=encode_images(images), headers=auth).status_code == 200


def test_serve_reports_a_busy_port(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        assert main(["serve", str(run_dir / "mentor"), "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: cannot listen on 127.0.0.1:{port}") and err.count("\n") == 1
