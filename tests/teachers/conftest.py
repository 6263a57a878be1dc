"""A tiny in-process prediction server speaking docs/wire-format.md, with fault injection.

Each test image encodes its row index in its first two pixels (row = p0 + 256 * p1), so
the server can record which rows it was asked about and which it answered. Its "model"
is a fixed linear map + softmax, so the true probabilities are known exactly.
"""

from __future__ import annotations

import base64
import json
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
import pytest
import torch


def make_row_images(n: int, shape: tuple[int, int, int] = (1, 4, 4), seed: int = 0) -> torch.Tensor:
    """uint8 (n, C, H, W) random images whose pixels [0, 0, 0] and [0, 0, 1] hold the row index."""
    gen = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, *shape), generator=gen, dtype=torch.int64)
    rows = torch.arange(n)
    images[:, 0, 0, 0] = rows % 256
    images[:, 0, 0, 1] = rows // 256
    return images.to(torch.uint8).contiguous()


def rows_of(images: np.ndarray) -> list[int]:
    """Row indices encoded in uint8 images (B, C, H, W)."""
    return [int(r) for r in images[:, 0, 0, 0].astype(np.int64) + 256 * images[:, 0, 0, 1].astype(np.int64)]


def true_probs(images: np.ndarray | torch.Tensor, num_classes: int = 3) -> np.ndarray:
    """The server's model: softmax((x / 255) @ W), float64 (B, K), W fixed by a seed."""
    x = np.asarray(images, dtype=np.float64).reshape(len(images), -1) / 255.0
    w = np.random.default_rng(1234).normal(size=(x.shape[1], num_classes))
    logits = x @ w
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


class WireServer:
    """ThreadingHTTPServer on 127.0.0.1:<random port> implementing POST /v1/predict and GET /v1/info.

    Faults (decided per request from ``seed``, the batch's first row and size, and how many
    times that batch was seen, so the same run always sees the same faults):
    ``fault_rate`` of the requests fail with 500, are dropped (connection closed without
    an answer) or answered late (after ``late_s``, past the client's timeout), in equal shares.

    Records: ``requests`` (arrival time, rows, outcome) and ``answered`` (rows of every
    answer delivered in time: a late answer is not counted, the client has given up).
    """

    def __init__(
        self,
        num_classes: int = 3,
        in_shape: tuple[int, int, int] = (1, 4, 4),
        fault_rate: float = 0.0,
        seed: int = 0,
        delay_s: float = 0.0,
        late_s: float = 0.6,
        token: str | None = None,
        max_batch: int | None = None,
        answer: Callable[[np.ndarray], Any] | None = None,
        always_fail: int | None = None,
    ) -> None:
        self.num_classes = num_classes
        self.in_shape = in_shape
        self.fault_rate = fault_rate
        self.seed = seed
        self.delay_s = delay_s
        self.late_s = late_s
        self.token = token
        self.max_batch = max_batch
        self.answer = answer
        self.always_fail = always_fail
        self.lock = threading.Lock()
        self.requests: list[tuple[float, list[int], str]] = []
        self.answered: list[int] = []
        self.outcomes: Counter[str] = Counter()
        self._seen: Counter[tuple[int, int]] = Counter()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1/predict"
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def rows_requested_since(self, t: float) -> set[int]:
        with self.lock:
            return {r for when, rows, _ in self.requests if when >= t for r in rows}

    def _fault(self, rows: list[int]) -> str | None:
        key = (rows[0], len(rows))
        with self.lock:
            attempt = self._seen[key]
            self._seen[key] += 1
        draw = random.Random(f"{self.seed}/{key}/{attempt}")
        if draw.random() >= self.fault_rate:
            return None
        return ("error", "drop", "late")[draw.randrange(3)]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"  # one request per connection: "drop" closes it

            def log_message(self, *args: object) -> None:  # quiet
                pass

            def _send(self, status: int, payload: Any) -> None:
                body = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    pass  # the client went away (after a timeout)

            def _authorised(self) -> bool:
                if server.token is None:
                    return True
                if self.headers.get("Authorization") == f"Bearer {server.token}":
                    return True
                self._send(401, {"detail": "invalid bearer token"})
                return False

            def do_GET(self) -> None:  # noqa: N802
                if not self._authorised():
                    return
                if self.path != "/v1/info":
                    self._send(404, {"detail": "not found"})
                    return
                self._send(
                    200, {"num_classes": server.num_classes, "in_shape": list(server.in_shape), "model": "wire-test"}
                )

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if not self._authorised():
                    return
                try:
                    spec = json.loads(body)["images"]
                    raw = base64.b64decode(spec["data"], validate=True)
                    images = np.frombuffer(raw, dtype=np.uint8).reshape(spec["shape"])
                    assert spec["dtype"] == "uint8"
                except Exception as exc:  # noqa: BLE001
                    self._send(422, {"detail": f"bad images: {exc}"})
                    return
                rows = rows_of(images)
                now = time.monotonic()
                if server.max_batch is not None and len(rows) > server.max_batch:
                    outcome = "too-large"
                elif server.always_fail is not None:
                    outcome = f"status-{server.always_fail}"
                else:
                    outcome = server._fault(rows) or "ok"
                with server.lock:
                    server.requests.append((now, rows, outcome))
                    server.outcomes[outcome] += 1
                if server.delay_s:
                    time.sleep(server.delay_s)
                if outcome == "too-large":
                    self._send(413, {"detail": f"batch of {len(rows)} is larger than max_batch {server.max_batch}"})
                elif outcome.startswith("status-"):
                    self._send(server.always_fail or 500, {"detail": "always failing"})
                elif outcome == "error":
                    self._send(500, {"detail": "injected failure"})
                elif outcome == "drop":
                    self.close_connection = True  # close without answering
                elif outcome == "late":
                    time.sleep(server.late_s)
                    self._send(200, {"probs": true_probs(images, server.num_classes).tolist()})
                else:
                    probs = server.answer(images) if server.answer else true_probs(images, server.num_classes).tolist()
                    with server.lock:
                        server.answered.extend(rows)
                    self._send(200, {"probs": probs})

        return Handler


@pytest.fixture
def wire_server() -> Iterator[Callable[..., WireServer]]:
    """Factory: ``wire_server(fault_rate=0.2, ...)`` starts a server, stopped after the test."""
    servers: list[WireServer] = []

    def start(**kwargs: Any) -> WireServer:
        server = WireServer(**kwargs)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def row_images() -> Callable[..., torch.Tensor]:
    return make_row_images


@pytest.fixture
def wire_true_probs() -> Callable[..., np.ndarray]:
    return true_probs
