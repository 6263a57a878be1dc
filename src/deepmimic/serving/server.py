"""``deepmimic serve``: load a model (trained stage folder, weights file, bundle or .onnx) and run uvicorn.

A trained stage folder, its ``weights.safetensors`` or a bundle is loaded with
:func:`deepmimic.models.bundle.load_trained`, from the self-describing weights file alone
(architecture, classes and normalisation are in its metadata), and predicts with PyTorch.
An ``.onnx`` file runs with onnxruntime: a file written by
``deepmimic export`` is recognised by its metadata (float 0-1 input, mean/std and softmax
inside); any other ONNX classifier is served with the input convention given by
``onnx_layout`` (NCHW or NHWC), ``onnx_scale`` (pixels are multiplied by it; default: divided by 255),
``onnx_mean``/``onnx_std`` (per channel, applied after scaling) and ``onnx_output``
(``logits``: softmax applied; ``probs``: used as is; ``auto``: probs when the output's name
says so, else logits). ``answer`` chooses what clients get back: the full probabilities
(``none``) or a defence from :mod:`deepmimic.teachers.defences` (``top1``, ``topk:K``,
``round:D``), the same ones ``deepmimic audit`` measures.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from deepmimic.errors import DeepMimicError
from deepmimic.teachers.defences import parse_defence

DEFAULT_TOKEN_ENV = "DEEPMIMIC_SERVE_TOKEN"
_LOOPBACK = ("127.0.0.1", "localhost", "::1")


class ServeError(DeepMimicError):
    """The server cannot start: bad model file, missing token, bad options."""


@dataclass(frozen=True)
class Predictor:
    """A ``predict(uint8 (B, C, H, W)) -> float32 (B, K)`` function with what the endpoint reports."""

    predict: Callable[[torch.Tensor], torch.Tensor]
    num_classes: int
    in_shape: tuple[int, int, int]
    name: str


def load_predictor(
    model_path: str | Path,
    *,
    onnx_layout: str = "NCHW",
    onnx_scale: float | None = None,
    onnx_mean: Sequence[float] | None = None,
    onnx_std: Sequence[float] | None = None,
    onnx_output: str = "auto",
) -> Predictor:
    """The predictor for a stage folder / weights file / bundle (PyTorch) or an ``.onnx`` file (onnxruntime)."""
    path = Path(model_path)
    if path.suffix.lower() == ".onnx":
        return _onnx_predictor(path, onnx_layout, onnx_scale, onnx_mean, onnx_std, onnx_output)
    from deepmimic.models.bundle import load_trained  # noqa: PLC0415

    trained = load_trained(path)
    return Predictor(trained.probs, trained.num_classes, trained.in_shape, trained.name)


def _onnx_predictor(
    path: Path, layout: str, scale: float | None, mean: Sequence[float] | None, std: Sequence[float] | None, output: str
) -> Predictor:
    import onnxruntime as ort  # noqa: PLC0415

    if not path.is_file():
        raise ServeError(f"{path}: no such ONNX file")
    if layout not in ("NCHW", "NHWC"):
        raise ServeError(f"onnx layout must be NCHW or NHWC, got '{layout}'")
    if output not in ("auto", "logits", "probs"):
        raise ServeError(f"onnx output must be auto, logits or probs, got '{output}'")
    try:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise ServeError(f"{path}: onnxruntime cannot load it ({' '.join(str(exc).split())[:200]})") from None
    meta = dict(session.get_modelmeta().custom_metadata_map)
    inputs, outputs = session.get_inputs(), session.get_outputs()
    if len(inputs) != 1:
        raise ServeError(f"{path}: expected one input, the model has {len(inputs)}")
    inp = inputs[0]

    if "deepmimic.in_shape" in meta:  # written by deepmimic export: float 0-1 NCHW in, (logits, probs) out
        try:
            in_shape = tuple(int(v) for v in json.loads(meta["deepmimic.in_shape"]))
            num_classes = int(meta["deepmimic.num_classes"])
        except (KeyError, ValueError, TypeError):
            raise ServeError(f"{path}: malformed deepmimic metadata") from None
        names = [o.name for o in outputs]
        probs_name = "probs" if "probs" in names else names[0]
        name = meta.get("deepmimic.name") or path.stem

        def predict_exported(images: torch.Tensor) -> torch.Tensor:
            x = images.numpy().astype(np.float32)
            if meta.get("deepmimic.input_range", "0-1") == "0-1":
                x /= np.float32(255)
            (probs,) = session.run([probs_name], {inp.name: x})
            return torch.from_numpy(probs)

        return Predictor(predict_exported, num_classes, in_shape, name)  # type: ignore[arg-type]

    dims = list(inp.shape)
    if len(dims) != 4 or not all(isinstance(d, int) and d > 0 for d in dims[1:]):
        raise ServeError(f"{path}: input '{inp.name}' must be 4-D with fixed image dimensions, got {dims}")
    c, h, w = (dims[1], dims[2], dims[3]) if layout == "NCHW" else (dims[3], dims[1], dims[2])
    fixed_batch = dims[0] if isinstance(dims[0], int) and dims[0] > 0 else None
    out = outputs[0]
    out_dims = list(out.shape)
    if len(out_dims) != 2 or not isinstance(out_dims[1], int):
        raise ServeError(f"{path}: output '{out.name}' must be (B, K) with a fixed K, got {out_dims}")
    num_classes = out_dims[1]
    lowered = out.name.lower()
    is_probs = output == "probs" or (output == "auto" and ("prob" in lowered or "softmax" in lowered))
    uint8_input = inp.type == "tensor(uint8)"
    if not uint8_input and inp.type != "tensor(float)":
        raise ServeError(f"{path}: input type {inp.type} is not supported (uint8 or float32)")
    m = _channel_vector(mean, c, "mean", 0.0)
    s = _channel_vector(std, c, "std", 1.0)

    def prepare(images: torch.Tensor) -> np.ndarray:
        if uint8_input:
            x = images.numpy()
        else:
            x = images.numpy().astype(np.float32)
            x = x / np.float32(255) if scale is None else x * np.float32(scale)
            x = (x - m) / s
        return np.ascontiguousarray(x.transpose(0, 2, 3, 1)) if layout == "NHWC" else x

    def predict_onnx(images: torch.Tensor) -> torch.Tensor:
        x = prepare(images)
        if fixed_batch is None:
            (y,) = session.run([out.name], {inp.name: x})
        else:  # a model exported for one batch size: run chunks of it, padding the last
            parts = []
            for start in range(0, x.shape[0], fixed_batch):
                chunk = x[start : start + fixed_batch]
                pad = fixed_batch - chunk.shape[0]
                if pad:
                    chunk = np.concatenate([chunk, np.zeros((pad, *chunk.shape[1:]), dtype=chunk.dtype)])
                parts.append(session.run([out.name], {inp.name: chunk})[0][: fixed_batch - pad])
            y = np.concatenate(parts)
        result = torch.from_numpy(np.asarray(y, dtype=np.float32))
        return result if is_probs else torch.softmax(result, dim=1)

    return Predictor(predict_onnx, num_classes, (c, h, w), path.stem)


def _channel_vector(values: Sequence[float] | None, channels: int, what: str, default: float) -> np.ndarray:
    if values is None:
        return np.full((1, channels, 1, 1), default, dtype=np.float32)
    vals = [float(v) for v in values]
    if len(vals) == 1:
        vals = vals * channels
    if len(vals) != channels:
        raise ServeError(f"onnx {what} needs 1 or {channels} values, got {len(vals)}")
    if what == "std" and min(vals) <= 0:
        raise ServeError(f"onnx std must be positive, got {vals}")
    return np.asarray(vals, dtype=np.float32).reshape(1, channels, 1, 1)


def resolve_token(token_env: str | None) -> str | None:
    """The bearer token from the environment variable ``token_env``.

    ``None`` reads :data:`DEFAULT_TOKEN_ENV` when it is set (no token otherwise); a named
    variable must be set and non-empty.
    """
    if token_env is None:
        return os.environ.get(DEFAULT_TOKEN_ENV) or None
    value = os.environ.get(token_env)
    if not value:
        raise ServeError(f"--token-env {token_env}: the environment variable is not set (or empty)")
    return value


def serve(
    model_path: str | Path,
    host: str = "127.0.0.1",
    port: int = 8000,
    token_env: str | None = None,
    *,
    max_batch: int = 1024,
    max_body_bytes: int | None = None,
    log_level: str = "info",
    answer: str = "none",
    **onnx_options: Any,
) -> None:
    """Load ``model_path`` and serve it with uvicorn until interrupted (loopback by default).

    The bearer token comes from the environment variable ``token_env`` (see
    :func:`resolve_token`); it is never taken from the command line. ``answer``: the defence
    applied to every answer (``none``, ``top1``, ``topk:K``, ``round:D``; a bad spec raises
    :class:`~deepmimic.errors.ConfigError` before the model is loaded). ``onnx_options`` go
    to :func:`load_predictor` (``onnx_layout``, ``onnx_scale``, ``onnx_mean``, ``onnx_std``,
    ``onnx_output``).
    """
    import uvicorn  # noqa: PLC0415

    from deepmimic.serving.app import INFO_PATH, PREDICT_PATH, create_app  # noqa: PLC0415

    if not 0 <= port <= 65535:
        raise ServeError(f"port must be in 0..65535, got {port}")
    if max_batch < 1:
        raise ServeError(f"max batch must be at least 1, got {max_batch}")
    defence = parse_defence(answer)
    token = resolve_token(token_env)
    predictor = load_predictor(model_path, **onnx_options)
    app = create_app(
        predictor.predict,
        num_classes=predictor.num_classes,
        in_shape=predictor.in_shape,
        model_name=predictor.name,
        token=token,
        max_batch=max_batch,
        max_body_bytes=max_body_bytes,
        answer=defence,
    )
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{port}"
    print(
        f"serving {predictor.name} ({'x'.join(map(str, predictor.in_shape))} -> {predictor.num_classes} classes) "
        f"at {url}{PREDICT_PATH} (info: {url}{INFO_PATH}); token {'required' if token else 'not required'}"
        + ("" if defence.kind == "none" else f"; answers {defence.name}, not the full probabilities"),
        flush=True,
    )
    if host not in _LOOPBACK and not token:
        print(
            f"warning: listening on {host} without a token: anyone who can reach it can use the model",
            file=sys.stderr,
            flush=True,
        )
    _check_bind(host, port)
    uvicorn.run(app, host=host, port=port, log_level=log_level)


def _check_bind(host: str, port: int) -> None:
    """Fail with one line when the address cannot be bound (uvicorn would log and exit 1)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ServeError(f"cannot resolve host '{host}' ({exc.strerror})") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:  # address in use, permission denied, not a local address
            raise ServeError(f"cannot listen on {host}:{port} ({exc.strerror or exc})") from None


__all__ = ["DEFAULT_TOKEN_ENV", "Predictor", "ServeError", "load_predictor", "resolve_token", "serve"]
