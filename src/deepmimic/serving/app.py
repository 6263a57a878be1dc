"""The prediction endpoint: a FastAPI app around any ``predict(uint8 images) -> probs``.

Wire format (docs/wire-format.md; restated in docs/serving-and-export.md):

``POST /v1/predict`` with the JSON body::

    {"images": {"shape": [B, C, H, W], "dtype": "uint8", "data": "<base64 of the C-order bytes>"}}

answers 200 ``{"probs": [[p_1, ..., p_K], ...]}`` (B rows of K probabilities summing to 1).
``GET /v1/info`` answers ``{"num_classes": K, "in_shape": [C, H, W], "model": "<name>"}``.
With a token configured both need ``Authorization: Bearer <token>``.

Errors are JSON ``{"detail": "<one line>"}``:

* 400: the body is not valid JSON (or not UTF-8), or a bad Content-Length;
* 401: missing or wrong bearer token (with ``WWW-Authenticate: Bearer``);
* 413: the body is larger than ``max_body_bytes``, or B is larger than ``max_batch``;
* 422: a missing or mistyped field, a dtype other than ``uint8``, a shape that is not four
  positive integers or whose C, H, W differ from the model's, ``data`` that is not
  base64, or whose decoded length is not B*C*H*W bytes;
* 500: the model failed or returned something other than (B, K) finite probabilities.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import logging
import math
from collections.abc import Callable
from typing import Any

import torch
from fastapi import FastAPI, HTTPException, Request
from starlette.concurrency import run_in_threadpool

from deepmimic.errors import DeepMimicError

logger = logging.getLogger("deepmimic.serving")

Predict = Callable[[torch.Tensor], torch.Tensor]  # uint8 (B, C, H, W) -> float (B, K) probabilities

PREDICT_PATH = "/v1/predict"
INFO_PATH = "/v1/info"
_SLACK_BYTES = 64 * 1024  # JSON framing around the base64 payload


def default_max_body_bytes(max_batch: int, in_shape: tuple[int, int, int]) -> int:
    """Room for ``max_batch`` images in base64 (4 bytes per 3) plus 64 KiB of JSON around them."""
    raw = max_batch * math.prod(in_shape)
    return 4 * -(-raw // 3) + _SLACK_BYTES


def _fail(status: int, detail: str) -> HTTPException:
    return HTTPException(status_code=status, detail=detail)


def create_app(
    predict: Predict,
    *,
    num_classes: int,
    in_shape: tuple[int, int, int],
    model_name: str,
    token: str | None = None,
    max_batch: int = 1024,
    max_body_bytes: int | None = None,
) -> FastAPI:
    """A FastAPI app serving ``predict`` with the wire format above.

    ``predict`` gets a uint8 tensor (B, C, H, W) with C, H, W = ``in_shape`` and 1 <= B <=
    ``max_batch``, and returns float probabilities (B, ``num_classes``); it runs in a worker
    thread. ``token``: when set (non-empty), every request needs ``Authorization: Bearer
    <token>`` (compared in constant time). ``max_body_bytes``: larger bodies get 413 (default:
    room for ``max_batch`` images, see :func:`default_max_body_bytes`).
    """
    in_shape = tuple(int(v) for v in in_shape)  # type: ignore[assignment]
    if len(in_shape) != 3 or min(in_shape) < 1 or num_classes < 1 or max_batch < 1:
        raise ValueError(f"bad serving setup: in_shape {in_shape}, num_classes {num_classes}, max_batch {max_batch}")
    limit = default_max_body_bytes(max_batch, in_shape) if max_body_bytes is None else int(max_body_bytes)
    expected_token = token.encode("utf-8") if token else None
    app = FastAPI(title=f"deepmimic: {model_name}", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.model_name = model_name

    def check_auth(request: Request) -> None:
        if expected_token is None:
            return
        header = request.headers.get("authorization", "")
        scheme, _, given = header.partition(" ")
        ok = scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode("utf-8"), expected_token)
        if not ok:
            detail = "missing bearer token" if not header else "invalid bearer token"
            raise HTTPException(status_code=401, detail=detail, headers={"WWW-Authenticate": "Bearer"})

    async def read_body(request: Request) -> bytes:
        declared = request.headers.get("content-length")
        if declared is not None:
            if not declared.strip().isdigit():
                raise _fail(400, f"invalid Content-Length header '{declared}'")
            if int(declared) > limit:
                raise _fail(413, f"request body of {int(declared)} bytes exceeds the limit of {limit} bytes")
        chunks: list[bytes] = []
        total = 0
        async for chunk in request.stream():
            total += len(chunk)
            if total > limit:
                raise _fail(413, f"request body exceeds the limit of {limit} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    def decode(body: bytes) -> torch.Tensor:
        try:
            payload = json.loads(body)
        except UnicodeDecodeError:
            raise _fail(400, "request body is not UTF-8 JSON") from None
        except json.JSONDecodeError as exc:
            raise _fail(400, f"malformed JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
        if not isinstance(payload, dict):
            raise _fail(422, f"the body must be a JSON object with an 'images' field, got {type(payload).__name__}")
        images = payload.get("images")
        if images is None:
            raise _fail(422, "missing field 'images'")
        if not isinstance(images, dict):
            raise _fail(422, "'images' must be an object with 'shape', 'dtype' and 'data'")
        for key in ("shape", "dtype", "data"):
            if key not in images:
                raise _fail(422, f"missing field 'images.{key}'")
        shape = images["shape"]
        if (
            not isinstance(shape, list)
            or len(shape) != 4
            or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in shape)
        ):
            raise _fail(422, f"'images.shape' must be four positive integers [B, C, H, W], got {json.dumps(shape)[:100]}")
        dtype = images["dtype"]
        if dtype != "uint8":
            raise _fail(422, f"'images.dtype' must be 'uint8', got {json.dumps(dtype)[:50]}")
        b, c, h, w = shape
        if (c, h, w) != in_shape:
            raise _fail(422, f"images are {c}x{h}x{w} (C x H x W); this model takes {'x'.join(map(str, in_shape))}")
        if b > max_batch:
            raise _fail(413, f"batch of {b} images exceeds the limit of {max_batch} per request")
        data = images["data"]
        if not isinstance(data, str):
            raise _fail(422, f"'images.data' must be a base64 string, got {type(data).__name__}")
        try:
            raw = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            raise _fail(422, "'images.data' is not valid base64") from None
        needed = b * c * h * w
        if len(raw) != needed:
            raise _fail(422, f"'images.data' holds {len(raw)} bytes; shape {shape} needs {needed}")
        return torch.frombuffer(bytearray(raw), dtype=torch.uint8).reshape(b, c, h, w)

    def run_model(images: torch.Tensor) -> list[list[float]]:
        try:
            with torch.inference_mode():
                probs = predict(images)
        except DeepMimicError as exc:
            raise _fail(422, str(exc)) from None
        except Exception as exc:
            logger.exception("prediction failed")
            raise _fail(500, f"prediction failed ({type(exc).__name__})") from None
        if not isinstance(probs, torch.Tensor):
            probs = torch.as_tensor(probs)
        probs = probs.detach().to("cpu", torch.float32)
        if tuple(probs.shape) != (images.shape[0], num_classes) or not bool(torch.isfinite(probs).all()):
            logger.error("model returned %s %s for a batch of %d", probs.dtype, tuple(probs.shape), images.shape[0])
            raise _fail(500, f"model returned an invalid output of shape {tuple(probs.shape)}")
        return probs.tolist()

    @app.get(INFO_PATH)
    async def info(request: Request) -> dict[str, Any]:
        check_auth(request)
        return {"num_classes": num_classes, "in_shape": list(in_shape), "model": model_name}

    @app.post(PREDICT_PATH)
    async def predict_endpoint(request: Request) -> dict[str, Any]:
        check_auth(request)
        body = await read_body(request)
        images = decode(body)
        rows = await run_in_threadpool(run_model, images)
        return {"probs": rows}

    return app


def encode_images(images: torch.Tensor) -> dict[str, Any]:
    """The request body for uint8 ``images`` (B, C, H, W) (a helper for tests and scripts)."""
    if images.dtype != torch.uint8 or images.dim() != 4:
        raise ValueError(f"expected uint8 (B, C, H, W), got {images.dtype} {tuple(images.shape)}")
    data = base64.b64encode(images.contiguous().numpy().tobytes()).decode("ascii")
    return {"images": {"shape": list(images.shape), "dtype": "uint8", "data": data}}
