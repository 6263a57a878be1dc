"""The prediction endpoint: a FastAPI app around any ``predict(uint8 images) -> probs``.

Wire format (docs/wire-format.md; restated in docs/serving-and-export.md):

``POST /v1/predict`` with the JSON body::

    {"images": {"shape": [B, C, H, W], "dtype": "uint8", "data": "<base64 of the C-order bytes>"}}

answers 200 ``{"probs": [[p_1, ..., p_K], ...]}`` (B rows of K probabilities summing to 1).
``GET /v1/info`` answers ``{"num_classes": K, "in_shape": [C, H, W], "model": "<name>"}``, plus
``"answer": "<spec>"`` when the answers are defended (``top1``, ``topk:K``, ``round:D``; see
:mod:`deepmimic.teachers.defences`).
With a token configured both need ``Authorization: Bearer <token>``.

Errors are JSON ``{"detail": "<one line>"}``:

* 400: the body is not valid JSON: empty, not UTF-8, malformed, nested deeper than
  :data:`MAX_JSON_DEPTH` arrays/objects, a number literal longer than
  :data:`MAX_NUMBER_CHARS` characters or out of the float range (``1e999``), ``NaN`` or
  ``Infinity``, an object with a duplicate key; or a bad Content-Length, or the client
  went away before the body was complete;
* 401: missing or wrong bearer token (with ``WWW-Authenticate: Bearer``);
* 413: the body is larger than ``max_body_bytes``, or B is larger than ``max_batch``;
* 415: a Content-Type other than ``application/json`` (or ``application/*+json``; a
  ``charset`` must be UTF-8); a request without a Content-Type is read as JSON;
* 422: the body is not an object, a missing or mistyped field (``null`` included), a dtype
  other than ``uint8``, a shape that is not four positive integers or whose C, H, W differ
  from the model's, ``data`` that is not base64, or whose decoded length is not B*C*H*W bytes;
* 500: the model failed or returned something other than (B, K) finite probabilities
  (``"prediction failed (...)"``, ``"model returned an invalid output ..."``), or any other
  unexpected error (``"internal error"``; the server logs the traceback).

The body is checked before it is parsed (size, UTF-8, nesting depth), so a hostile body
costs at most a linear scan and never deep recursion; the shape is checked against the
model's (C, H, W) and ``max_batch`` before anything is sized from it.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import logging
import math
import re
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from deepmimic.errors import DeepMimicError
from deepmimic.teachers.defences import Defence, parse_defence

logger = logging.getLogger("deepmimic.serving")

Predict = Callable[[torch.Tensor], torch.Tensor]  # uint8 (B, C, H, W) -> float (B, K) probabilities

PREDICT_PATH = "/v1/predict"
INFO_PATH = "/v1/info"
MAX_JSON_DEPTH = 32  # nested arrays/objects; a valid request has 3
MAX_NUMBER_CHARS = 100  # characters in one JSON number literal
_SLACK_BYTES = 64 * 1024  # JSON framing around the base64 payload

_NOT_STRUCTURE = bytes(b for b in range(256) if b not in b'"[]{}')
_DEPTH_CHUNK = 1 << 20


def default_max_body_bytes(max_batch: int, in_shape: tuple[int, int, int]) -> int:
    """Room for ``max_batch`` images in base64 (4 bytes per 3) plus 64 KiB of JSON around them."""
    raw = max_batch * math.prod(in_shape)
    return 4 * -(-raw // 3) + _SLACK_BYTES


def _fail(status: int, detail: str) -> HTTPException:
    return HTTPException(status_code=status, detail=detail)


def _short(text: str, limit: int = 100) -> str:
    """``text`` on one line, at most ``limit`` characters (``...`` marks a cut)."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _dim(value: int) -> str:
    return str(value) if value < 10**12 else f"{value:.2e}"


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an array" if isinstance(value, list) else "an object"


def json_depth(body: bytes, stop_above: int | None = None) -> int:
    """The deepest nesting of arrays/objects in the JSON text ``body`` (brackets in strings ignored).

    Linear in ``len(body)``, vectorised and without recursion, for any input. On malformed JSON it
    is at least the depth a parser reaches before it finds the error. With ``stop_above``, the scan
    may stop (and return early) once the depth exceeds it.
    """
    # Escapes go first: "\\" pairs (left to right, as in a string), then escaped quotes. Every
    # quote left opens or closes a string; only quotes and brackets matter from here on.
    text = body.replace(b"\\\\", b"").replace(b'\\"', b"")
    marks = np.frombuffer(text.translate(None, _NOT_STRUCTURE), dtype=np.uint8)
    depth = deepest = quotes = 0
    for start in range(0, len(marks), _DEPTH_CHUNK):
        chunk = marks[start : start + _DEPTH_CHUNK]
        is_quote = chunk == ord('"')
        counted = np.cumsum(is_quote, dtype=np.int64) + quotes
        in_string = (counted & 1).astype(bool)  # for a bracket: an odd number of quotes before it
        # '[' 0x5B and '{' 0x7B have bit 2 clear, ']' 0x5D and '}' 0x7D have it set: +1 / -1.
        steps = np.where(is_quote | in_string, 0, 1 - ((chunk >> 1) & 2).astype(np.int64))
        running = np.cumsum(steps) + depth
        deepest = max(deepest, int(running.max()))
        depth, quotes = int(running[-1]), int(counted[-1])
        if stop_above is not None and deepest > stop_above:
            break
    return deepest


class _RejectedJSON(Exception):
    """Valid-looking JSON this server does not accept (raised from the parser's hooks)."""


def _parse_int(literal: str) -> int:
    if len(literal) > MAX_NUMBER_CHARS:
        raise _RejectedJSON(f"JSON number longer than {MAX_NUMBER_CHARS} characters")
    return int(literal)


def _parse_float(literal: str) -> float:
    if len(literal) > MAX_NUMBER_CHARS:
        raise _RejectedJSON(f"JSON number longer than {MAX_NUMBER_CHARS} characters")
    value = float(literal)
    if not math.isfinite(value):
        raise _RejectedJSON(f"JSON number out of range: {literal}")
    return value


def _parse_constant(name: str) -> float:
    raise _RejectedJSON(f"{name} is not valid JSON")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _RejectedJSON(f"duplicate key {_short(json.dumps(key), 60)} in a JSON object")
            seen.add(key)
    return obj


def parse_json(body: bytes) -> Any:
    """The JSON value of a request ``body``, or an HTTP 400 with a one-line detail.

    Strict: UTF-8 only (a leading byte-order mark is ignored), at most :data:`MAX_JSON_DEPTH`
    nested arrays/objects (checked before parsing), number literals of at most
    :data:`MAX_NUMBER_CHARS` characters within the float range, no ``NaN``/``Infinity``, no
    duplicate keys in an object.
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise _fail(400, "request body is not UTF-8 JSON") from None
    text = text.removeprefix("\ufeff")
    if not text.strip(" \t\r\n"):
        raise _fail(400, "request body is empty; expected a JSON object with an 'images' field")
    if json_depth(body, stop_above=MAX_JSON_DEPTH) > MAX_JSON_DEPTH:
        raise _fail(400, f"JSON nested deeper than {MAX_JSON_DEPTH} arrays/objects")
    try:
        return json.loads(
            text,
            parse_int=_parse_int,
            parse_float=_parse_float,
            parse_constant=_parse_constant,
            object_pairs_hook=_unique_keys,
        )
    except _RejectedJSON as exc:
        raise _fail(400, _short(str(exc))) from None
    except json.JSONDecodeError as exc:
        raise _fail(400, f"malformed JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:  # not reached after the depth check; kept as a guard
        raise _fail(400, "JSON nested too deeply") from None
    except ValueError:
        raise _fail(400, "malformed JSON") from None


def _check_content_type(request: Request) -> None:
    header = request.headers.get("content-type")
    if header is None:
        return
    media, *params = (part.strip() for part in header.split(";"))
    media = media.lower()
    if not (media == "application/json" or (media.startswith("application/") and media.endswith("+json"))):
        raise _fail(415, f"Content-Type must be application/json, got '{_short(header, 60)}'")
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"').lower() not in ("utf-8", "utf8"):
            raise _fail(415, f"JSON must be UTF-8, got Content-Type '{_short(header, 60)}'")


async def _internal_error(request: Request, exc: Exception) -> JSONResponse:
    """Anything that escaped the handlers: JSON 500 (the server still logs the traceback)."""
    return JSONResponse({"detail": "internal error"}, status_code=500)


def create_app(
    predict: Predict,
    *,
    num_classes: int,
    in_shape: tuple[int, int, int],
    model_name: str,
    token: str | None = None,
    max_batch: int = 1024,
    max_body_bytes: int | None = None,
    answer: str | Defence = "none",
) -> FastAPI:
    """A FastAPI app serving ``predict`` with the wire format above.

    ``predict`` gets a uint8 tensor (B, C, H, W) with C, H, W = ``in_shape`` and 1 <= B <=
    ``max_batch``, and returns float probabilities (B, ``num_classes``); it runs in a worker
    thread. ``token``: when set (non-empty), every request needs ``Authorization: Bearer
    <token>`` (compared in constant time). ``max_body_bytes``: larger bodies get 413 (default:
    room for ``max_batch`` images, see :func:`default_max_body_bytes`). ``answer``: the defence
    applied to the model's (checked) probabilities before they are returned, a spec for
    :func:`~deepmimic.teachers.defences.parse_defence` (``none``, ``top1``, ``topk:K``,
    ``round:D``; a bad one raises :class:`~deepmimic.errors.ConfigError`) or a ``Defence``.
    """
    in_shape = tuple(int(v) for v in in_shape)  # type: ignore[assignment]
    if len(in_shape) != 3 or min(in_shape) < 1 or num_classes < 1 or max_batch < 1:
        raise ValueError(f"bad serving setup: in_shape {in_shape}, num_classes {num_classes}, max_batch {max_batch}")
    defence = answer if isinstance(answer, Defence) else parse_defence(answer)
    limit = default_max_body_bytes(max_batch, in_shape) if max_body_bytes is None else int(max_body_bytes)
    expected_token = token.encode("utf-8") if token else None
    app = FastAPI(title=f"deepmimic: {model_name}", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.model_name = model_name
    app.state.answer = defence.name
    app.add_exception_handler(Exception, _internal_error)

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
            digits = declared.strip()
            if not re.fullmatch(r"[0-9]+", digits):
                raise _fail(400, f"invalid Content-Length header '{_short(declared, 40)}'")
            digits = digits.lstrip("0") or "0"
            if len(digits) > 18 or int(digits) > limit:
                shown = digits if len(digits) <= 18 else "more than 10^18"
                raise _fail(413, f"request body of {shown} bytes exceeds the limit of {limit} bytes")
        chunks: list[bytes] = []
        total = 0
        try:
            async for chunk in request.stream():
                total += len(chunk)
                if total > limit:
                    raise _fail(413, f"request body exceeds the limit of {limit} bytes")
                chunks.append(chunk)
        except ClientDisconnect:
            raise _fail(400, "the client disconnected before the request body was complete") from None
        return b"".join(chunks)

    def decode(payload: Any) -> torch.Tensor:
        if not isinstance(payload, dict):
            raise _fail(422, f"the body must be a JSON object with an 'images' field, got {_json_type(payload)}")
        if "images" not in payload:
            raise _fail(422, "missing field 'images'")
        images = payload["images"]
        if not isinstance(images, dict):
            raise _fail(422, f"'images' must be an object with 'shape', 'dtype' and 'data', got {_json_type(images)}")
        for key in ("shape", "dtype", "data"):
            if key not in images:
                raise _fail(422, f"missing field 'images.{key}'")
        shape = images["shape"]
        if (
            not isinstance(shape, list)
            or len(shape) != 4
            or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in shape)
        ):
            raise _fail(
                422, f"'images.shape' must be four positive integers [B, C, H, W], got {_short(json.dumps(shape), 100)}"
            )
        dtype = images["dtype"]
        if dtype != "uint8":
            raise _fail(422, f"'images.dtype' must be 'uint8', got {_short(json.dumps(dtype), 50)}")
        b, c, h, w = shape
        if (c, h, w) != in_shape:  # before anything is sized from the shape
            raise _fail(
                422,
                f"images are {_dim(c)}x{_dim(h)}x{_dim(w)} (C x H x W); "
                f"this model takes {'x'.join(map(str, in_shape))}",
            )
        if b > max_batch:
            raise _fail(413, f"batch of {_dim(b)} images exceeds the limit of {max_batch} per request")
        data = images["data"]
        if not isinstance(data, str):
            raise _fail(422, f"'images.data' must be a base64 string, got {_json_type(data)}")
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
            raise _fail(422, _short(str(exc), 300)) from None
        except Exception as exc:
            logger.exception("prediction failed")
            raise _fail(500, f"prediction failed ({type(exc).__name__})") from None
        try:
            if not isinstance(probs, torch.Tensor):
                probs = torch.as_tensor(probs)
            probs = probs.detach().to("cpu", torch.float32)
        except Exception as exc:
            logger.error("model returned %s, not probabilities: %s", type(probs).__name__, _short(str(exc)))
            raise _fail(500, f"model returned an invalid output ({type(probs).__name__})") from None
        if tuple(probs.shape) != (images.shape[0], num_classes) or not bool(torch.isfinite(probs).all()):
            logger.error("model returned %s %s for a batch of %d", probs.dtype, tuple(probs.shape), images.shape[0])
            raise _fail(500, f"model returned an invalid output of shape {tuple(probs.shape)}")
        with torch.inference_mode():  # after the check, so that a defence cannot hide a broken output
            answers = defence.apply(probs)
        return answers.tolist()

    @app.get(INFO_PATH)
    async def info(request: Request) -> dict[str, Any]:
        check_auth(request)
        described: dict[str, Any] = {"num_classes": num_classes, "in_shape": list(in_shape), "model": model_name}
        if defence.kind != "none":  # an undefended server answers as before
            described["answer"] = defence.name
        return described

    @app.post(PREDICT_PATH)
    async def predict_endpoint(request: Request) -> dict[str, Any]:
        check_auth(request)
        _check_content_type(request)
        body = await read_body(request)
        images = await run_in_threadpool(
            lambda: decode(parse_json(body))
        )  # off the event loop: a large body takes a while
        rows = await run_in_threadpool(run_model, images)
        return {"probs": rows}

    return app


def encode_images(images: torch.Tensor) -> dict[str, Any]:
    """The request body for uint8 ``images`` (B, C, H, W) (a helper for tests and scripts)."""
    if images.dtype != torch.uint8 or images.dim() != 4:
        raise ValueError(f"expected uint8 (B, C, H, W), got {images.dtype} {tuple(images.shape)}")
    data = base64.b64encode(images.contiguous().numpy().tobytes()).decode("ascii")
    return {"images": {"shape": list(images.shape), "dtype": "uint8", "data": data}}
