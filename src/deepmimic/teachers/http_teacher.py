"""A black-box teacher behind an HTTP prediction endpoint (the wire format of docs/wire-format.md).

``POST {url}`` with JSON ``{"images": {"shape": [B, C, H, W], "dtype": "uint8", "data":
"<base64 of the C-order bytes>"}}`` answers ``{"probs": [[...], ...]}`` (B rows of K);
errors are 4xx/5xx with ``{"detail": "..."}``. ``GET`` of the URL with its last path
segment replaced by ``info`` answers ``{"num_classes": K, "in_shape": [C, H, W], "model": ...}``.

Connection errors, timeouts, 5xx and 429 are retried with exponential backoff and jitter;
other 4xx raise a TeacherError carrying the server's detail. Several batches can be in
flight at once (``concurrency``; :func:`deepmimic.labelling.black_box.run_labeler` uses it).
The query budget and the persistent query log are enforced by
:func:`deepmimic.labelling.black_box_job.label_dataset`; ``budget`` here is also a hard per-session cap.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import random
import threading
import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import torch

from deepmimic.errors import TeacherError
from deepmimic.teachers.blackbox import BudgetExhaustedError, check_images

DEFAULT_TOKEN_ENV = "DEEPMIMIC_TEACHER_TOKEN"
RETRY_STATUS = frozenset({429, 500, 502, 503, 504}) | frozenset(range(505, 600))


class _TooLarge(TeacherError):
    """HTTP 413: the server takes smaller batches (the batch is split and sent again)."""


def info_url(url: str) -> str:
    """The info endpoint of a predict URL: ``http://h/v1/predict`` -> ``http://h/v1/info``."""
    parts = urlsplit(url)
    head = parts.path.rsplit("/", 1)[0] if "/" in parts.path else ""
    return urlunsplit((parts.scheme, parts.netloc, f"{head}/info", "", ""))


def _public(url: str) -> str:
    """``url`` without user:password@ (it names the teacher in messages and logs)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))


def _detail(response: httpx.Response) -> str:
    """The server's ``detail`` (or body) as one short line."""
    try:
        payload = response.json()
        detail: Any = payload.get("detail", payload) if isinstance(payload, dict) else payload
    except ValueError:
        detail = response.text
    text = detail if isinstance(detail, str) else json.dumps(detail)
    text = " ".join(text.split())
    return text[:300] + ("..." if len(text) > 300 else "") if text else response.reason_phrase


def encode_images(images: torch.Tensor) -> dict[str, Any]:
    """The wire form of uint8 ``images`` (B, C, H, W): shape, dtype and base64 of the C-order bytes."""
    array = images.contiguous().numpy()
    return {"shape": list(array.shape), "dtype": "uint8", "data": base64.b64encode(array.tobytes()).decode("ascii")}


class HttpTeacher:
    """Labels uint8 images (B, C, H, W) by POSTing them to a prediction endpoint.

    Args:
        url: the full endpoint, e.g. ``http://127.0.0.1:8000/v1/predict``.
        num_classes: K; when None it is read from the info endpoint.
        timeout: seconds for connecting, sending and waiting for the answer of one request.
        retries: extra attempts after a connection error, timeout, 5xx or 429.
        backoff: the first retry waits about ``backoff`` seconds, then 2x, 4x, ... (each
            times a random factor in [0.5, 1.5)), at most ``max_backoff``; a numeric
            ``Retry-After`` header is honoured up to ``max_backoff``.
        concurrency: batches in flight at once.
        token_env: NAME of the environment variable holding a bearer token (sent as
            ``Authorization: Bearer <token>``). If the default variable is unset no token is
            sent; naming another variable that is unset is an error.
        budget: the most samples this object will send in its lifetime (the labelling job
            also counts earlier sessions through the query log).
        seed: seeds the jitter (tests).
        transport: an httpx transport (tests); default: the network.
    """

    def __init__(
        self,
        url: str,
        *,
        num_classes: int | None = None,
        timeout: float = 30.0,
        retries: int = 5,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        concurrency: int = 4,
        token_env: str | None = DEFAULT_TOKEN_ENV,
        budget: int | None = None,
        seed: int | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise TeacherError(f"not an http(s) URL: '{url}'")
        try:
            parts.port  # noqa: B018 - raises ValueError for a port that is not a number in 0..65535
        except ValueError:
            raise TeacherError(f"not an http(s) URL: '{url}' (the port must be a number 0..65535)") from None
        self.url = url
        self.source = _public(url)
        if timeout <= 0 or retries < 0 or backoff < 0 or concurrency < 1:
            raise TeacherError(
                f"{self.source}: timeout and concurrency must be positive, retries and backoff non-negative"
            )
        if budget is not None and budget < 0:
            raise TeacherError(f"{self.source}: budget must be non-negative, got {budget}")
        self.timeout = float(timeout)
        self.retries = int(retries)
        self.backoff = float(backoff)
        self.max_backoff = float(max_backoff)
        self.concurrency = int(concurrency)
        self.budget = budget
        self.sent = 0  # distinct samples submitted by this object (retries not counted again)
        self.requests = 0  # HTTP requests made, retries included
        self.retried = 0
        self.max_batch: int | None = None  # set when the server answers 413 to a larger batch
        self._lock = threading.Lock()
        self._random = random.Random(seed)
        headers = {"Accept": "application/json"}
        token = self._token(token_env)
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._client = httpx.Client(
            headers=headers,
            timeout=httpx.Timeout(self.timeout),
            follow_redirects=False,
            transport=transport,
            limits=httpx.Limits(max_connections=self.concurrency + 1, max_keepalive_connections=self.concurrency),
        )
        self.info: dict[str, Any] = {}
        self.in_shape: tuple[int, ...] | None = None
        if num_classes is None:
            self.info = self.fetch_info()
            num_classes = self.info.get("num_classes")
            if not isinstance(num_classes, int) or num_classes < 1:
                self.close()
                raise TeacherError(
                    f"{info_url(self.url)}: 'num_classes' must be a positive integer, got {num_classes!r}"
                )
            shape = self.info.get("in_shape")
            if isinstance(shape, list) and len(shape) == 3 and all(isinstance(d, int) for d in shape):
                self.in_shape = tuple(shape)
        self.num_classes = int(num_classes)

    def _token(self, token_env: str | None) -> str | None:
        if not token_env:
            return None
        token = os.environ.get(token_env)
        if token is None and token_env != DEFAULT_TOKEN_ENV:
            raise TeacherError(f"{self.source}: the environment variable {token_env} (token_env) is not set")
        return token.strip() if token else None

    # -- requests ---------------------------------------------------------------------------

    def _sleep_before_retry(self, attempt: int, response: httpx.Response | None) -> None:
        with self._lock:
            jitter = 0.5 + self._random.random()
            self.retried += 1
        delay = min(self.max_backoff, self.backoff * (2**attempt)) * jitter
        if response is not None:
            after = response.headers.get("Retry-After", "")
            with contextlib.suppress(ValueError):
                delay = max(delay, min(self.max_backoff, float(after)))
        time.sleep(delay)

    def _request(self, method: str, url: str, payload: dict[str, Any] | None = None) -> httpx.Response:
        """One call with retries; returns a 2xx response or raises TeacherError."""
        name = _public(url)
        last = ""
        for attempt in range(self.retries + 1):
            response: httpx.Response | None = None
            with self._lock:
                self.requests += 1
            try:
                response = self._client.request(method, url, json=payload)
            except httpx.TimeoutException:
                last = f"timed out after {self.timeout:g} s"
            except httpx.TransportError as exc:  # refused, reset, dropped without an answer
                last = f"connection failed ({type(exc).__name__}: {' '.join(str(exc).split()) or 'no detail'})"
            else:
                if response.is_success:
                    return response
                if response.status_code == 413 and method == "POST":
                    raise _TooLarge(
                        f"{name}: the server refused the batch as too large (HTTP 413: {_detail(response)})"
                    )
                if response.status_code not in RETRY_STATUS:
                    raise TeacherError(
                        f"{name}: the server refused the request (HTTP {response.status_code}: {_detail(response)})"
                    )
                last = f"HTTP {response.status_code}: {_detail(response)}"
            if attempt < self.retries:
                self._sleep_before_retry(attempt, response)
        raise TeacherError(f"{name}: no answer after {self.retries + 1} attempts (last: {last})")

    def fetch_info(self) -> dict[str, Any]:
        """The info endpoint's JSON: ``{"num_classes": K, "in_shape": [C, H, W], "model": name}``."""
        url = info_url(self.url)
        try:
            response = self._request("GET", url)
            payload = response.json()
        except TeacherError as exc:
            self.close()
            raise TeacherError(f"{exc} (asked to learn num_classes; or pass the option num_classes=K)") from exc
        except ValueError as exc:
            self.close()
            raise TeacherError(f"{url}: the info answer is not JSON; pass the option num_classes=K") from exc
        if not isinstance(payload, dict):
            self.close()
            raise TeacherError(f"{url}: the info answer is not a JSON object; pass the option num_classes=K")
        return payload

    def _reserve(self, count: int) -> None:
        with self._lock:
            if self.budget is not None and self.sent + count > self.budget:
                raise BudgetExhaustedError(
                    f"{self.source}: query budget of {self.budget} samples reached "
                    f"({self.sent} sent; {count} more asked for)",
                    labeled=self.sent,
                    total=self.sent + count,
                    budget=self.budget,
                )
            self.sent += count

    def label_batch(self, images: torch.Tensor) -> torch.Tensor:
        """Probabilities (B, K) float32 for uint8 ``images`` (B, C, H, W); thread-safe."""
        check_images(images, self.source)
        if self.in_shape is not None and tuple(images.shape[1:]) != self.in_shape:
            raise TeacherError(
                f"{self.source}: the server expects images of shape (C, H, W) = {self.in_shape}, "
                f"got {tuple(images.shape[1:])}"
            )
        b = images.shape[0]
        if b == 0:
            return torch.empty(0, self.num_classes)
        self._reserve(b)
        return self._post(images)

    def _post(self, images: torch.Tensor) -> torch.Tensor:
        """One POST (split in halves while the server answers 413) -> probs (B, K) float32."""
        b = images.shape[0]
        limit = self.max_batch
        if limit is not None and b > limit:  # learned from an earlier 413
            return torch.cat([self._post(part) for part in torch.split(images, limit)])
        try:
            response = self._request("POST", self.url, {"images": encode_images(images)})
        except _TooLarge:
            if b == 1:
                raise
            with self._lock:
                self.max_batch = min(self.max_batch or b, max(1, b // 2))
            return torch.cat([self._post(images[: b // 2]), self._post(images[b // 2 :])])
        try:
            payload = response.json()
        except ValueError as exc:
            raise TeacherError(f"{self.source}: the answer is not JSON") from exc
        rows = payload.get("probs") if isinstance(payload, dict) else None
        if not isinstance(rows, list):
            raise TeacherError(f"{self.source}: the answer has no 'probs' list")
        try:
            probs = torch.tensor(rows, dtype=torch.float64)
        except (TypeError, ValueError) as exc:
            raise TeacherError(f"{self.source}: 'probs' is not a (B, K) array of numbers") from exc
        if probs.shape != (b, self.num_classes):
            raise TeacherError(
                f"{self.source}: expected probabilities of shape ({b}, {self.num_classes}), got {tuple(probs.shape)}"
            )
        return probs.to(torch.float32)  # (B, K)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> HttpTeacher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
