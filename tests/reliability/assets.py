"""The shared, read-only assets of the bad-input corpus (built once per session by conftest.py).

* ``blobs.npz``: 40 training images (1x8x8, 4 classes) and 16 test images;
* ``preds.npy``: 40 rows of valid probabilities for it (a predictions teacher);
* ``trained/``: a finished one-epoch run on it (``trained/mentor`` is a stage folder);
* ``teacher.onnx``: that mentor exported (1x8x8 in, 4 classes out);
* ``wrong-shape.onnx``: a classifier that takes 3x32x32 images;
* a recording HTTP teacher on 127.0.0.1 (counts every request it gets) and the URL of a closed port.
"""

from __future__ import annotations

import base64
import json
import socket
import threading
import warnings
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from reliability import builders


class RecordingTeacher:
    """A wire-format endpoint (docs/wire-format.md) answering uniform probabilities; counts requests."""

    def __init__(
        self, num_classes: int = builders.K, in_shape: tuple[int, int, int] = (1, builders.SIDE, builders.SIDE)
    ) -> None:
        self.requests = 0
        self._lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # quiet
                pass

            def _send(self, status: int, payload: object) -> None:
                body = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:  # noqa: N802
                with owner._lock:
                    owner.requests += 1
                self._send(200, {"num_classes": num_classes, "in_shape": list(in_shape), "model": "recording"})

            def do_POST(self) -> None:  # noqa: N802
                with owner._lock:
                    owner.requests += 1
                length = int(self.headers.get("Content-Length") or 0)
                payload = json.loads(self.rfile.read(length))
                b = int(payload["images"]["shape"][0])
                base64.b64decode(payload["images"]["data"])
                self._send(200, {"probs": [[1.0 / num_classes] * num_classes] * b})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/v1/predict"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def count(self) -> int:
        with self._lock:
            return self.requests

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Assets:
    root: Path
    npz: Path
    preds: Path
    trained: Path  # run folder
    stage: Path  # trained/mentor
    onnx: Path
    wrong_onnx: Path
    server: RecordingTeacher
    closed_url: str

    def placeholders(self) -> dict[str, str]:
        return {
            "assets": str(self.root),
            "npz": str(self.npz),
            "preds": str(self.preds),
            "trained": str(self.trained),
            "stage": str(self.stage),
            "onnx": str(self.onnx),
            "wrong_onnx": str(self.wrong_onnx),
            "url": self.server.url,
            "closed": self.closed_url,
        }


def tiny_config(output_dir: Path, npz: Path, epochs: int = 1) -> dict:
    """A mentor and one student on the tiny npz, tiny widths, CPU, one epoch."""
    return {
        "name": "tiny",
        "output_dir": str(output_dir),
        "data": {"name": "npz", "root": str(npz)},
        "train": {"batch_size": 16, "lr": 0.05, "epochs": epochs, "device": "cpu"},
        "mentor": {"name": "Mentor", "model": "c:4-mp-fc:8-s", "method": "supervised"},
        "students": [{"name": "Student", "model": "fc:8-s"}],
    }


def _wrong_shape_onnx(path: Path) -> Path:
    import torch
    from torch import nn

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(2 * 30 * 30, builders.K)).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (torch.zeros(1, 3, 32, 32),),
            str(path),
            input_names=["x"],
            output_names=["logits"],
            dynamic_axes={"x": {0: "b"}, "logits": {0: "b"}},
            dynamo=False,
        )
    return path


def build_assets(root: Path) -> Assets:
    from deepmimic.config import parse_config
    from deepmimic.export import export_onnx
    from deepmimic.models.bundle import load_trained
    from deepmimic.pipelines.deepmimic import run_pipeline

    npz = builders.npz(root / "blobs.npz")
    preds = builders.save_npy(root / "preds.npy", builders.probs(40))
    trained = root / "trained"
    run_pipeline(parse_config(tiny_config(trained, npz)), progress=False)
    onnx_path = root / "teacher.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        export_onnx(load_trained(trained / "mentor"), onnx_path)
    wrong = _wrong_shape_onnx(root / "wrong-shape.onnx")
    server = RecordingTeacher()
    return Assets(
        root,
        npz,
        preds,
        trained,
        trained / "mentor",
        onnx_path,
        wrong,
        server,
        f"http://127.0.0.1:{closed_port()}/v1/predict",
    )
