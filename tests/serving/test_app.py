"""The prediction endpoint: wire format, every malformed request, tokens, and one real socket."""

from __future__ import annotations

import base64
import json
import socket
import threading
import time
import warnings
from pathlib import Path

import httpx
import pytest
import torch
import uvicorn

from deepmimic.cli import main
from deepmimic.data.batches import Normalizer
from deepmimic.errors import ConfigError
from deepmimic.export import export_onnx
from deepmimic.models import create_model
from deepmimic.models.bundle import TrainedModel, save_bundle
from deepmimic.serving import ServeError, create_app, encode_images, load_predictor, resolve_token
from deepmimic.teachers.defences import parse_defence
from deepmimic.teachers.label_only import one_hot_top1

with warnings.catch_warnings():  # starlette's notice about its httpx-based client
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

IN_SHAPE = (1, 8, 8)
K = 4


@pytest.fixture(scope="module")
def trained() -> TrainedModel:
    torch.manual_seed(0)
    model = create_model("c-mp-fc-s", IN_SHAPE, K, conv_channels=4, fc_units=8).eval()
    return TrainedModel(
        model, Normalizer((0.3,), (0.2,)), K, IN_SHAPE, "tiny", "c-mp-fc-s", {"conv_channels": 4, "fc_units": 8}
    )


def _client(trained: TrainedModel, **kw: object) -> TestClient:
    app = create_app(trained.probs, num_classes=K, in_shape=IN_SHAPE, model_name=trained.name, **kw)  # type: ignore[arg-type]
    return TestClient(app)


def _images(n: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (n, *IN_SHAPE), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def test_predict_returns_the_models_probabilities(trained: TrainedModel) -> None:
    client = _client(trained)
    images = _images(5)
    response = client.post("/v1/predict", json=encode_images(images))
    assert response.status_code == 200, response.text
    probs = torch.tensor(response.json()["probs"])
    assert probs.shape == (5, K)
    assert torch.allclose(probs, trained.probs(images), atol=1e-7)
    assert torch.allclose(probs.sum(1), torch.ones(5), atol=1e-5)
    # The wire format by hand: base64 of the C-order bytes.
    body = {"images": {"shape": [1, *IN_SHAPE], "dtype": "uint8", "data": base64.b64encode(bytes(range(64))).decode()}}
    one = client.post("/v1/predict", json=body).json()["probs"]
    expected = trained.probs(torch.arange(64, dtype=torch.uint8).reshape(1, *IN_SHAPE))
    assert torch.allclose(torch.tensor(one), expected, atol=1e-7)


def test_info(trained: TrainedModel) -> None:
    assert _client(trained).get("/v1/info").json() == {"num_classes": K, "in_shape": list(IN_SHAPE), "model": "tiny"}


def test_top1_answers_are_one_hot_and_info_shows_the_defence(trained: TrainedModel) -> None:
    client = _client(trained, answer="top1")
    images = _images(6, seed=1)
    response = client.post("/v1/predict", json=encode_images(images))
    assert response.status_code == 200, response.text
    probs = torch.tensor(response.json()["probs"])
    assert torch.equal(probs, one_hot_top1(trained.probs(images)))
    assert client.get("/v1/info").json() == {
        "num_classes": K,
        "in_shape": list(IN_SHAPE),
        "model": "tiny",
        "answer": "top1",
    }


@pytest.mark.parametrize("spec", ["topk:2", "round:1", "Round:2"])
def test_defended_answers_are_what_the_defence_gives(trained: TrainedModel, spec: str) -> None:
    client = _client(trained, answer=spec)
    images = _images(8, seed=2)
    probs = torch.tensor(client.post("/v1/predict", json=encode_images(images)).json()["probs"])
    assert torch.allclose(probs, parse_defence(spec).apply(trained.probs(images)), atol=1e-7)
    # Still what the wire format promises (and HttpTeacher checks): finite, non-negative rows summing to 1.
    assert bool(torch.isfinite(probs).all()) and bool((probs >= 0).all())
    assert torch.allclose(probs.sum(1), torch.ones(8), atol=1e-5)
    assert client.get("/v1/info").json()["answer"] == parse_defence(spec).name


def test_a_defence_does_not_hide_a_broken_model() -> None:
    def nan(images: torch.Tensor) -> torch.Tensor:
        return torch.full((images.shape[0], K), float("nan"))

    client = TestClient(create_app(nan, num_classes=K, in_shape=IN_SHAPE, model_name="x", answer="top1"))
    response = client.post("/v1/predict", json=encode_images(_images(2)))
    assert response.status_code == 500 and "invalid output" in response.json()["detail"]


def test_a_bad_answer_spec_is_refused() -> None:
    with pytest.raises(ConfigError, match="unknown defence 'bogus'"):
        create_app(lambda x: x, num_classes=K, in_shape=IN_SHAPE, model_name="x", answer="bogus")


def test_serve_answer_flag(
    trained: TrainedModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    seen: dict[str, object] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: seen.update(app=app, **kw))
    monkeypatch.delenv("DEEPMIMIC_SERVE_TOKEN", raising=False)
    bundle = save_bundle(trained, tmp_path / "tiny.safetensors")
    assert main(["serve", str(bundle), "--port", str(_free_port()), "--answer", "topk:2"]) == 0
    assert "; answers topk:2, not the full probabilities" in capsys.readouterr().out
    client = TestClient(seen["app"])  # type: ignore[arg-type]
    assert client.get("/v1/info").json()["answer"] == "topk:2"
    probs = torch.tensor(client.post("/v1/predict", json=encode_images(_images(3))).json()["probs"])
    assert ((probs > 0).sum(1) <= 2).all() and torch.allclose(probs.sum(1), torch.ones(3), atol=1e-5)


@pytest.mark.parametrize(
    ("spec", "message"),
    [("bogus", "unknown defence 'bogus'; known: none, top1, topk:K or round:D"), ("topk:0", "topk takes an integer")],
)
def test_serve_with_a_bad_answer_exits_2_with_one_line(
    spec: str, message: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: pytest.fail("the server started"))
    assert main(["serve", "no/such/model", "--answer", spec]) == 2  # refused before the model is even looked at
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "--answer" in err and message in err and err.count("\n") == 1, err
    assert "Traceback" not in err


def _body(**images: object) -> dict:
    base = {"shape": [2, *IN_SHAPE], "dtype": "uint8", "data": base64.b64encode(bytes(2 * 64)).decode()}
    base.update(images)
    return {"images": {k: v for k, v in base.items() if v is not ...}}


@pytest.mark.parametrize(
    ("content", "status", "detail"),
    [
        (b"{not json", 400, "malformed JSON"),
        (b"\xff\xfe\x00", 400, "not UTF-8 JSON"),
        (b"[1, 2]", 422, "must be a JSON object"),
        (b"{}", 422, "missing field 'images'"),
        (json.dumps({"images": "abc"}).encode(), 422, "'images' must be an object"),
        (json.dumps(_body(shape=...)).encode(), 422, "missing field 'images.shape'"),
        (json.dumps(_body(dtype=...)).encode(), 422, "missing field 'images.dtype'"),
        (json.dumps(_body(data=...)).encode(), 422, "missing field 'images.data'"),
        (json.dumps(_body(dtype="float32")).encode(), 422, "'images.dtype' must be 'uint8', got \"float32\""),
        (json.dumps(_body(shape=[2, 8, 8])).encode(), 422, "four positive integers"),
        (json.dumps(_body(shape=[0, 1, 8, 8])).encode(), 422, "four positive integers"),
        (json.dumps(_body(shape=[2, 1, 8, "8"])).encode(), 422, "four positive integers"),
        (json.dumps(_body(shape=[2, 3, 8, 8])).encode(), 422, "images are 3x8x8 (C x H x W); this model takes 1x8x8"),
        (json.dumps(_body(shape=[2, 1, 16, 16])).encode(), 422, "this model takes 1x8x8"),
        (json.dumps(_body(data="@@@not base64@@@")).encode(), 422, "not valid base64"),
        (json.dumps(_body(data=12)).encode(), 422, "must be a base64 string"),
        (
            json.dumps(_body(data=base64.b64encode(bytes(100)).decode())).encode(),
            422,
            "holds 100 bytes; shape [2, 1, 8, 8] needs 128",
        ),
        (json.dumps(_body(shape=[9, 1, 8, 8])).encode(), 413, "batch of 9 images exceeds the limit of 8"),
    ],
)
def test_malformed_requests_get_a_4xx_with_a_detail(
    trained: TrainedModel, content: bytes, status: int, detail: str
) -> None:
    client = _client(trained, max_batch=8)
    response = client.post("/v1/predict", content=content, headers={"content-type": "application/json"})
    assert response.status_code == status, response.text
    assert detail in response.json()["detail"]


def test_body_over_the_limit_is_413(trained: TrainedModel) -> None:
    client = _client(trained, max_body_bytes=1000)
    response = client.post("/v1/predict", json=encode_images(_images(20)))
    assert response.status_code == 413
    assert "exceeds the limit of 1000 bytes" in response.json()["detail"]
    # Without a Content-Length (chunked upload) the limit still holds.
    chunks = iter([b'{"images": {"data": "', b"A" * 2000, b'"}}'])
    response = client.post("/v1/predict", content=chunks, headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert _client(trained, max_body_bytes=2000).post("/v1/predict", json=encode_images(_images(4))).status_code == 200


def test_token_is_required_when_configured(trained: TrainedModel) -> None:
    client = _client(trained, token="s3cret")
    body = encode_images(_images(2))
    for path, call in (
        ("/v1/info", lambda **kw: client.get("/v1/info", **kw)),
        ("/v1/predict", lambda **kw: client.post("/v1/predict", json=body, **kw)),
    ):
        missing = call()
        assert missing.status_code == 401 and missing.json()["detail"] == "missing bearer token", path
        assert missing.headers["www-authenticate"] == "Bearer"
        for header in ("Bearer wrong", "Basic s3cret", "s3cret", "Bearer s3cret2"):
            wrong = call(headers={"Authorization": header})
            assert wrong.status_code == 401 and wrong.json()["detail"] == "invalid bearer token", (path, header)
        assert call(headers={"Authorization": "Bearer s3cret"}).status_code == 200, path
    # Auth is checked before the body is looked at.
    assert client.post("/v1/predict", content=b"{bad").status_code == 401


def test_model_failures_are_500_with_a_detail() -> None:
    def broken(images: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("boom")

    def wrong_shape(images: torch.Tensor) -> torch.Tensor:
        return torch.ones(images.shape[0], K + 1)

    for predict, detail in ((broken, "prediction failed (RuntimeError)"), (wrong_shape, "invalid output of shape")):
        client = TestClient(create_app(predict, num_classes=K, in_shape=IN_SHAPE, model_name="x"))
        response = client.post("/v1/predict", json=encode_images(_images(2)))
        assert response.status_code == 500 and detail in response.json()["detail"]


def test_wrong_method_and_path(trained: TrainedModel) -> None:
    client = _client(trained)
    assert client.get("/v1/predict").status_code == 405
    assert client.get("/v2/predict").status_code == 404


def test_predictors_for_bundles_and_onnx_files(trained: TrainedModel, tmp_path: Path) -> None:
    images = _images(6, seed=3)
    expected = trained.probs(images)
    bundle = load_predictor(save_bundle(trained, tmp_path / "tiny.safetensors"))
    assert (bundle.num_classes, bundle.in_shape, bundle.name) == (K, IN_SHAPE, "tiny")
    assert torch.allclose(bundle.predict(images), expected, atol=1e-7)

    export_onnx(trained, tmp_path / "tiny.onnx")
    exported = load_predictor(tmp_path / "tiny.onnx")
    assert (exported.num_classes, exported.in_shape, exported.name) == (K, IN_SHAPE, "tiny")
    assert torch.allclose(exported.predict(images), expected, atol=1e-5)

    # A foreign ONNX classifier (no deepmimic metadata, fixed batch of 4): normalisation from the options.
    class Plain(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = trained.model

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.model(x)

    foreign = tmp_path / "foreign.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            Plain().eval(),
            (torch.zeros(4, *IN_SHAPE),),
            str(foreign),
            input_names=["x"],
            output_names=["out"],
            dynamo=False,
        )
    plain = load_predictor(foreign, onnx_mean=[0.3], onnx_std=[0.2])
    assert (plain.num_classes, plain.in_shape) == (K, IN_SHAPE)
    assert torch.allclose(plain.predict(images), expected, atol=1e-5)  # 6 images in chunks of 4, softmax applied
    with pytest.raises(ServeError, match="std must be positive"):
        load_predictor(foreign, onnx_std=[0.0])
    with pytest.raises(ServeError, match="no such ONNX file"):
        load_predictor(tmp_path / "missing.onnx")


def test_token_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DEEPMIMIC_SERVE_TOKEN", raising=False)
    assert resolve_token(None) is None
    monkeypatch.setenv("DEEPMIMIC_SERVE_TOKEN", "abc")
    assert resolve_token(None) == "abc"
    monkeypatch.setenv("MY_TOKEN", "xyz")
    assert resolve_token("MY_TOKEN") == "xyz"
    with pytest.raises(ServeError, match="--token-env UNSET_TOKEN_VAR: the environment variable is not set"):
        resolve_token("UNSET_TOKEN_VAR")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_real_socket_round_trip(trained: TrainedModel) -> None:
    app = create_app(trained.probs, num_classes=K, in_shape=IN_SHAPE, model_name="tiny", token="tok")
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 5
        while not server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            assert thread.is_alive(), "uvicorn exited"
            time.sleep(0.02)
        images = _images(3, seed=7)
        response = httpx.post(
            f"http://127.0.0.1:{port}/v1/predict",
            json=encode_images(images),
            headers={"Authorization": "Bearer tok"},
            timeout=5,
        )
        assert response.status_code == 200
        assert torch.allclose(torch.tensor(response.json()["probs"]), trained.probs(images), atol=1e-7)
    finally:
        server.should_exit = True
        thread.join(timeout=5)
    assert not thread.is_alive()
