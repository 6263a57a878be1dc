"""Hostile request bodies against the prediction endpoint (the FastAPI app, in-process).

Every one must get a 4xx answer whose body is exactly ``{"detail": "<one line>"}``: never
a 500, never an exception escaping the app (TestClient re-raises those), and the app
keeps answering a valid request afterwards.
"""

from __future__ import annotations

import base64
import json
import warnings
from collections.abc import Callable

import pytest
import torch

from deepmimic.serving import create_app, encode_images

with warnings.catch_warnings():  # starlette's notice about its httpx-based client
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

IN_SHAPE = (1, 8, 8)
K = 4


def _predict(images: torch.Tensor) -> torch.Tensor:
    return torch.full((images.shape[0], K), 1.0 / K)


@pytest.fixture(scope="module")
def client() -> TestClient:
    app = create_app(
        _predict, num_classes=K, in_shape=IN_SHAPE, model_name="tiny", max_batch=8, max_body_bytes=2_000_000
    )
    return TestClient(app)


def _b64(n: int) -> str:
    return base64.b64encode(bytes(n)).decode()


def _images(shape: str = "[2, 1, 8, 8]", dtype: str = '"uint8"', data: str | None = None) -> bytes:
    """A body with raw JSON text for each field of ``images``."""
    data = json.dumps(_b64(128)) if data is None else data
    return f'{{"images": {{"shape": {shape}, "dtype": {dtype}, "data": {data}}}}}'.encode()


def _nested_lists(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def _nested_objects(depth: int) -> bytes:
    return b'{"a": ' * depth + b"1" + b"}" * depth


BODIES: dict[str, Callable[[], bytes]] = {
    "1000-nested-lists": lambda: _nested_lists(1000),
    "100000-nested-lists": lambda: _nested_lists(100_000),
    "1000-nested-objects": lambda: _nested_objects(1000),
    "100000-nested-objects": lambda: _nested_objects(100_000),
    "nested-lists-in-shape": lambda: _images(shape=_nested_lists(5000).decode()),
    "nested-objects-in-images": lambda: b'{"images": ' + _nested_objects(5000) + b"}",
    "nested-lists-in-data": lambda: _images(data=_nested_lists(5000).decode()),
    "unclosed-10000-lists": lambda: b"[" * 10_000,
    "5000-digit-integer-in-shape": lambda: _images(shape="[" + "9" * 5000 + ", 1, 8, 8]"),
    "100000-digit-integer": lambda: b'{"images": ' + b"1" * 100_000 + b"}",
    "huge-exponent-float-in-shape": lambda: _images(shape="[1e400, 1, 8, 8]"),
    "batch-10^30": lambda: _images(shape="[1000000000000000000000000000000, 1, 8, 8]"),
    "height-10^30": lambda: _images(shape="[2, 1, 1000000000000000000000000000000, 8]"),
    "NaN-in-shape": lambda: _images(shape="[NaN, 1, 8, 8]"),
    "Infinity-in-shape": lambda: _images(shape="[Infinity, 1, 8, 8]"),
    "negative-batch": lambda: _images(shape="[-2, 1, 8, 8]"),
    "float-dims": lambda: _images(shape="[2.0, 1.0, 8.0, 8.0]"),
    "bool-dims": lambda: _images(shape="[true, 1, 8, 8]"),
    "shape-is-a-string": lambda: _images(shape='"2x1x8x8"'),
    "shape-is-an-object": lambda: _images(shape='{"b": 2}'),
    "shape-five-dims": lambda: _images(shape="[2, 1, 1, 8, 8]"),
    "shape-wrong-image-size": lambda: _images(shape="[2, 3, 32, 32]", data=json.dumps(_b64(2 * 3 * 32 * 32))),
    "dtype-float32": lambda: _images(dtype='"float32"'),
    "dtype-null": lambda: _images(dtype="null"),
    "dtype-list": lambda: _images(dtype='["uint8"]'),
    "dtype-huge-string": lambda: _images(dtype=json.dumps("u" * 100_000)),
    "data-not-base64": lambda: _images(data='"@@@ not base64 @@@"'),
    "data-non-ascii": lambda: _images(data=json.dumps("\u00e9" * 172)),
    "data-bad-padding": lambda: _images(data=json.dumps(_b64(128)[:-2] + "=")),
    "data-too-short": lambda: _images(data=json.dumps(_b64(127))),
    "data-too-long": lambda: _images(data=json.dumps(_b64(129))),
    "data-is-a-number": lambda: _images(data="12"),
    "data-is-a-list-of-bytes": lambda: _images(data=json.dumps(list(range(128)))),
    "data-null": lambda: _images(data="null"),
    "images-null": lambda: b'{"images": null}',
    "body-null": lambda: b"null",
    "body-string": lambda: b'"images"',
    "body-number": lambda: b"12",
    "body-empty": lambda: b"",
    "body-not-utf8": lambda: b"\xff\xfe\xfd",
    "body-lone-surrogate": lambda: b'{"images": "\\ud800"}',
    "body-nul-bytes": lambda: b"\x00" * 100,
    "duplicate-images-keys": lambda: b'{"images": 1, "images": {"shape": [2, 1, 8, 8]}}',
    "trailing-garbage": lambda: _images() + b" trailing",
}


@pytest.mark.parametrize("name", list(BODIES))
def test_hostile_body_gets_a_4xx_with_one_line_detail(client: TestClient, name: str) -> None:
    body = BODIES[name]()
    response = client.post("/v1/predict", content=body, headers={"content-type": "application/json"})
    shown = f"{name}: HTTP {response.status_code} {response.text[:300]!r}"
    assert 400 <= response.status_code < 500, shown
    payload = response.json()
    assert isinstance(payload, dict) and set(payload) == {"detail"}, shown
    detail = payload["detail"]
    assert isinstance(detail, str) and detail.strip(), shown
    assert "\n" not in detail and "\r" not in detail, shown
    assert len(detail) <= 500, f"{name}: a {len(detail)}-character detail (should be one short line)"
    # The app still works.
    ok = client.post("/v1/predict", json=encode_images(torch.zeros(1, *IN_SHAPE, dtype=torch.uint8)))
    assert ok.status_code == 200, f"after {name}: {ok.status_code} {ok.text[:200]}"


@pytest.mark.parametrize("length", ["-1", "abc", "1e3", " ", "99999999999999999999999999"])
def test_bad_content_length_is_a_4xx(client: TestClient, length: str) -> None:
    response = client.post(
        "/v1/predict", content=_images(), headers={"content-type": "application/json", "content-length": length}
    )
    assert 400 <= response.status_code < 500, f"Content-Length {length!r}: {response.status_code} {response.text[:200]}"
    assert set(response.json()) == {"detail"}
