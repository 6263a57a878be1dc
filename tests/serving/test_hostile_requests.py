"""Hostile request bodies and headers: every one gets a 4xx JSON ``{"detail": "<one line>"}``.

Deep nesting, huge numbers, NaN, duplicate keys, wrong encodings and media types, odd
Content-Length headers, clients that go away; never a 500, never an exception escaping the
app (TestClient re-raises those), and the app keeps answering valid requests afterwards.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
import time
import warnings
from typing import Any

import httpx
import pytest
import torch
import uvicorn

from deepmimic.serving import create_app, encode_images
from deepmimic.serving.app import MAX_JSON_DEPTH, MAX_NUMBER_CHARS, json_depth

with warnings.catch_warnings():  # starlette's notice about its httpx-based client
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

IN_SHAPE = (1, 8, 8)
K = 4
MAX_BATCH = 8
BODY_LIMIT = 1_000_000  # room for the 100,000-digit number


def _predict(images: torch.Tensor) -> torch.Tensor:
    return torch.full((images.shape[0], K), 1.0 / K)


def _app(**kw: Any) -> Any:
    kw.setdefault("max_batch", MAX_BATCH)
    kw.setdefault("max_body_bytes", BODY_LIMIT)
    return create_app(_predict, num_classes=K, in_shape=IN_SHAPE, model_name="tiny", **kw)


@pytest.fixture(scope="module")
def client() -> TestClient:
    return TestClient(_app())  # raise_server_exceptions: anything escaping the app fails the test


def _valid() -> dict[str, Any]:
    return encode_images(torch.zeros(2, *IN_SHAPE, dtype=torch.uint8))


def _images_json(**fields: str) -> bytes:
    """The valid body with some of its ``images`` fields replaced by raw JSON text."""
    parts = {"shape": "[2, 1, 8, 8]", "dtype": '"uint8"', "data": json.dumps(_valid()["images"]["data"])}
    parts.update(fields)
    return ('{"images": {' + ", ".join(f'"{k}": {v}' for k, v in parts.items()) + "}}").encode()


def _check(response: httpx.Response, status: int, detail: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json", response.headers
    body = response.json()
    assert set(body) == {"detail"} and isinstance(body["detail"], str), body
    assert "\n" not in body["detail"] and "\r" not in body["detail"] and len(body["detail"]) <= 300, body
    assert "Traceback" not in body["detail"]
    assert detail in body["detail"], body


def _still_answers(client: TestClient) -> None:
    response = client.post("/v1/predict", json=_valid())
    assert response.status_code == 200, response.text
    assert len(response.json()["probs"]) == 2


DEEP = f"JSON nested deeper than {MAX_JSON_DEPTH} arrays/objects"
LONG_NUMBER = f"JSON number longer than {MAX_NUMBER_CHARS} characters"
HOSTILE = {
    # nesting: a RecursionError (500, plain text) before the depth check
    "1000 nested arrays": (b"[" * 1000 + b"]" * 1000, 400, DEEP),
    "1000 nested objects": (b'{"a": ' * 1000 + b"1" + b"}" * 1000, 400, DEEP),
    "1000 unclosed arrays": (b"[" * 1000, 400, DEEP),
    "nesting in images.data": (_images_json(data="[" * 1000 + "]" * 1000), 400, DEEP),
    "nesting in images": (b'{"images": ' + b"[" * 5000 + b"]" * 5000 + b"}", 400, DEEP),
    "nesting in shape": (_images_json(shape="[2, 1, 8, " + "[" * 1000 + "8" + "]" * 1000 + "]"), 400, DEEP),
    "nesting beside images": (b'{"x": ' + b'[{"y": ' * 600 + b"0" + b"}]" * 600 + b', "images": 1}', 400, DEEP),
    "nesting below the recursion limit": (b"[" * 900 + b"]" * 900, 400, DEEP),
    # numbers: ValueError "Exceeds the limit (4300 digits)" escaping json.loads before
    "100,000-digit integer": (b'{"images": ' + b"1" * 100_000 + b"}", 400, LONG_NUMBER),
    "100,000-digit integer in shape": (_images_json(shape="[" + "9" * 100_000 + ", 1, 8, 8]"), 400, LONG_NUMBER),
    "100,000-digit negative integer": (b"-" + b"1" * 100_000, 400, LONG_NUMBER),
    "100,000-digit fraction": (b'{"images": 0.' + b"1" * 100_000 + b"}", 400, LONG_NUMBER),
    "1e999999": (_images_json(data="1e999999"), 400, "JSON number out of range: 1e999999"),
    "-1e400 in shape": (_images_json(shape="[-1e400, 1, 8, 8]"), 400, "JSON number out of range"),
    "NaN in shape": (_images_json(shape="[NaN, 1, 8, 8]"), 400, "NaN is not valid JSON"),
    "Infinity at the top": (b"Infinity", 400, "Infinity is not valid JSON"),
    "-Infinity in data": (_images_json(data="-Infinity"), 400, "-Infinity is not valid JSON"),
    # encodings and empty bodies
    "invalid UTF-8": (b'{"images": "\xff\xfe"}', 400, "not UTF-8 JSON"),
    "truncated UTF-8": (b'{"images": "\xe2\x82"}', 400, "not UTF-8 JSON"),
    "UTF-16": ('{"images": {}}'.encode("utf-16"), 400, "not UTF-8 JSON"),
    "empty body": (b"", 400, "request body is empty"),
    "whitespace body": (b" \r\n\t ", 400, "request body is empty"),
    "NUL bytes": (b"\x00" * 64, 400, "malformed JSON"),
    "unterminated string": (b'{"images": "abc', 400, "malformed JSON"),
    "trailing garbage": (json.dumps(_valid()).encode() + b" []", 400, "malformed JSON: Extra data"),
    "control character in a string": (b'{"images": "a\x01b"}', 400, "malformed JSON: Invalid control character"),
    # ambiguous objects
    "duplicate images": (b'{"images": 1, "images": 2}', 400, 'duplicate key "images" in a JSON object'),
    "duplicate shape": (_images_json(shape='[2, 1, 8, 8], "shape": [1, 1, 8, 8]'), 400, 'duplicate key "shape"'),
    # well-formed JSON of the wrong kind
    "null": (b"null", 422, "must be a JSON object with an 'images' field, got null"),
    "top-level array": (b"[1, 2]", 422, "got an array"),
    "top-level string": (b'"images"', 422, "got a string"),
    "images null": (b'{"images": null}', 422, "'images' must be an object with 'shape', 'dtype' and 'data', got null"),
    "all fields null": (
        _images_json(shape="null", dtype="null", data="null"),
        422,
        "four positive integers [B, C, H, W], got null",
    ),
    "dtype null": (_images_json(dtype="null"), 422, "'images.dtype' must be 'uint8', got null"),
    "data null": (_images_json(data="null"), 422, "'images.data' must be a base64 string, got null"),
    "data array": (_images_json(data="[1, 2]"), 422, "'images.data' must be a base64 string, got an array"),
    "data not ASCII": (_images_json(data='"\\u00e9\\u00e9\\u00e9\\u00e9"'), 422, "not valid base64"),
    "data lone surrogate": (_images_json(data='"\\ud800AAA"'), 422, "not valid base64"),
    "dtype lone surrogate": (_images_json(dtype='"\\ud800"'), 422, "'images.dtype' must be 'uint8', got \"\\ud800\""),
    # shapes: checked against the model's (C, H, W) and max_batch before anything is sized from them
    "huge batch": (
        _images_json(shape=f"[{10**30}, 1, 8, 8]"),
        413,
        f"batch of 1.00e+30 images exceeds the limit of {MAX_BATCH}",
    ),
    "huge image": (
        _images_json(shape=f"[1, {10**30}, {10**30}, {10**30}]"),
        422,
        "images are 1.00e+30x1.00e+30x1.00e+30",
    ),
    "huge everything": (_images_json(shape=f"[{10**99}, {10**99}, {10**99}, {10**99}]"), 422, "this model takes 1x8x8"),
    "negative batch": (_images_json(shape="[-2, 1, 8, 8]"), 422, "four positive integers"),
    "zero height": (_images_json(shape="[2, 1, 0, 8]"), 422, "four positive integers"),
    "float batch": (_images_json(shape="[2.0, 1, 8, 8]"), 422, "four positive integers"),
    "float 1e2 batch": (_images_json(shape="[1e2, 1, 8, 8]"), 422, "four positive integers"),
    "boolean batch": (_images_json(shape="[true, 1, 8, 8]"), 422, "four positive integers"),
    "five dimensions": (_images_json(shape="[2, 1, 8, 8, 1]"), 422, "four positive integers"),
    "shape object": (_images_json(shape='{"B": 2}'), 422, "four positive integers"),
    "long shape": (_images_json(shape="[" + ", ".join(["1"] * 10_000) + "]"), 422, "four positive integers"),
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_body_gets_a_4xx_json_detail(client: TestClient, name: str) -> None:
    content, status, detail = HOSTILE[name]
    response = client.post("/v1/predict", content=content, headers={"content-type": "application/json"})
    _check(response, status, detail)
    _still_answers(client)


def test_limits_are_inclusive(client: TestClient) -> None:
    """Exactly MAX_JSON_DEPTH levels and MAX_NUMBER_CHARS-character numbers are fine; one more is not."""
    body = _valid()
    for depth, status in ((MAX_JSON_DEPTH, 200), (MAX_JSON_DEPTH + 1, 400)):
        extra = "[" * (depth - 1) + "]" * (depth - 1)  # the top-level object is one level
        content = json.dumps(body)[:-1] + f', "extra": {extra}}}'
        assert json_depth(content.encode()) == depth
        response = client.post("/v1/predict", content=content, headers={"content-type": "application/json"})
        assert response.status_code == status, (depth, response.text)
    for chars, status in ((MAX_NUMBER_CHARS, 200), (MAX_NUMBER_CHARS + 1, 400)):
        content = json.dumps(body)[:-1] + f', "extra": [{"7" * chars}, 0.{"5" * (chars - 2)}]}}'
        response = client.post("/v1/predict", content=content, headers={"content-type": "application/json"})
        assert response.status_code == status, (chars, response.text)
    # Brackets inside strings (escaped quotes and backslashes included) do not count.
    content = json.dumps(body)[:-1] + ', "extra": "' + '[{\\"\\\\' * 1000 + '"}'
    assert client.post("/v1/predict", content=content, headers={"content-type": "application/json"}).status_code == 200


@pytest.mark.parametrize(
    ("text", "depth"),
    [
        (b"", 0),
        (b"1", 0),
        (b"[]", 1),
        (b'{"a": [1, {"b": [[]]}], "c": []}', 5),
        (b'["[[[[", "]]]]]]", "{{"]', 1),
        (b'["\\"[[", "\\\\", []]', 2),  # an escaped quote, an escaped backslash before the closing quote
        (b'["\\\\\\"[["]', 1),  # \\ then \" inside one string
        (b'"unterminated [[[[', 0),
        (b"[[[", 3),
        (b"]]][[", 0),  # the parser stops at the first ']'
    ],
)
def test_json_depth(text: bytes, depth: int) -> None:
    assert json_depth(text) == depth


@pytest.mark.parametrize(
    ("content_type", "status"),
    [
        ("application/json", 200),
        ("Application/JSON; charset=UTF-8", 200),
        ('application/json; charset="utf-8"', 200),
        ("application/vnd.deepmimic+json", 200),
        (None, 200),  # no Content-Type: read as JSON
        ("text/plain", 415),
        ("application/x-www-form-urlencoded", 415),
        ("multipart/form-data; boundary=x", 415),
        ("application/json; charset=utf-16", 415),
        ("application/jsonx", 415),
        ("", 415),
    ],
)
def test_content_type(client: TestClient, content_type: str | None, status: int) -> None:
    headers = {} if content_type is None else {"content-type": content_type}
    response = client.post("/v1/predict", content=json.dumps(_valid()).encode(), headers=headers)
    if status == 200:
        assert response.status_code == 200, response.text
    else:
        _check(response, 415, "application/json")
    _still_answers(client)


def _asgi_post(app: Any, headers: dict[str, str], messages: list[dict[str, Any]]) -> tuple[int, dict[str, Any]]:
    """POST /v1/predict straight through ASGI (any headers, any receive sequence); (status, JSON)."""
    sent: list[dict[str, Any]] = []
    pending = list(messages)

    async def receive() -> dict[str, Any]:
        return pending.pop(0) if pending else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/predict",
        "raw_path": b"/v1/predict",
        "root_path": "",
        "query_string": b"",
        "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }
    asyncio.run(app(scope, receive, send))  # an exception escaping the app fails the test
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], json.loads(body)


@pytest.mark.parametrize(
    ("length", "status", "detail"),
    [
        ("abc", 400, "invalid Content-Length header 'abc'"),
        ("-5", 400, "invalid Content-Length"),
        ("\u00b2", 400, "invalid Content-Length"),  # str.isdigit() is true, int() fails
        ("1" * 5000, 413, "request body of more than 10^18 bytes exceeds the limit"),  # int() over 4300 digits fails
        ("9" * 19, 413, "exceeds the limit"),
        (str(BODY_LIMIT + 1), 413, f"request body of {BODY_LIMIT + 1} bytes exceeds the limit of {BODY_LIMIT} bytes"),
        ("x" * 1000, 400, "invalid Content-Length"),
    ],
)
def test_bad_content_length(length: str, status: int, detail: str) -> None:
    app = _app()
    got, body = _asgi_post(app, {"content-type": "application/json", "content-length": length}, [])
    assert got == status and detail in body["detail"] and "\n" not in body["detail"] and len(body["detail"]) < 200, body
    content = json.dumps(_valid()).encode()
    ok, probs = _asgi_post(
        app,
        {"content-type": "application/json", "content-length": "0" * 30 + str(len(content))},
        [{"type": "http.request", "body": content, "more_body": False}],
    )
    assert ok == 200 and len(probs["probs"]) == 2


def test_client_disconnecting_mid_body_is_a_400_not_an_exception() -> None:
    app = _app()
    status, body = _asgi_post(
        app, {"content-type": "application/json"}, [{"type": "http.request", "body": b'{"images": ', "more_body": True}]
    )  # then http.disconnect
    assert status == 400 and "disconnected" in body["detail"], body


def test_unexpected_errors_are_json_500() -> None:
    app = _app()

    @app.get("/boom")
    async def boom() -> None:
        raise ZeroDivisionError("a bug")

    response = TestClient(app, raise_server_exceptions=False).get("/boom")
    assert response.status_code == 500 and response.json() == {"detail": "internal error"}, response.text
    # Documented statuses are unchanged by the catch-all handler.
    client = TestClient(app)
    _check(client.get("/v1/predict"), 405, "Method Not Allowed")
    _check(client.get("/v2/predict"), 404, "Not Found")
    _check(client.post("/v1/predict", content=b"{"), 400, "malformed JSON")


@pytest.mark.parametrize(
    "output", ["not probabilities", object(), [[0.25] * K, [0.5]]], ids=["str", "object", "ragged"]
)
def test_a_model_returning_garbage_is_a_json_500(output: object) -> None:
    app = create_app(lambda images: output, num_classes=K, in_shape=IN_SHAPE, model_name="x")  # type: ignore[arg-type,return-value]
    response = TestClient(app).post("/v1/predict", json=_valid())
    _check(response, 500, "model returned an invalid output")


def test_hostile_bodies_over_a_real_socket_log_no_traceback(caplog: pytest.LogCaptureFixture) -> None:
    app = _app(token="tok")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="info", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    caplog.set_level(logging.INFO)
    thread.start()
    try:
        deadline = time.monotonic() + 5
        while not server.started:
            assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
            time.sleep(0.02)
        url = f"http://127.0.0.1:{port}/v1/predict"
        headers = {"Authorization": "Bearer tok", "Content-Type": "application/json"}
        with httpx.Client(timeout=5) as http:
            for name in (
                "1000 nested arrays",
                "1000 nested objects",
                "nesting in images.data",
                "100,000-digit integer",
                "NaN in shape",
                "invalid UTF-8",
                "empty body",
            ):
                content, status, detail = HOSTILE[name]
                _check(http.post(url, content=content, headers=headers), status, detail)
            assert http.post(url, json=_valid(), headers={"Authorization": "Bearer tok"}).status_code == 200
    finally:
        server.should_exit = True
        thread.join(timeout=5)
    assert not thread.is_alive()
    logged = "\n".join(f"{r.levelname} {r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
    assert "Traceback" not in logged and "Exception in ASGI application" not in logged and "ERROR" not in logged, logged
    assert not any(r.exc_info for r in caplog.records), logged
