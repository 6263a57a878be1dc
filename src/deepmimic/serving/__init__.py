"""Serving a trained model over HTTP (``deepmimic serve``).

:func:`deepmimic.serving.app.create_app` builds the FastAPI app for any
``predict(uint8 (B, C, H, W)) -> probs (B, K)``; :func:`deepmimic.serving.server.serve`
loads a trained stage folder, self-describing weights file (bundle) or ``.onnx`` file and
runs it with uvicorn.
The wire format is described in docs/wire-format.md and docs/serving-and-export.md.
"""

from deepmimic.serving.app import INFO_PATH, PREDICT_PATH, create_app, default_max_body_bytes, encode_images
from deepmimic.serving.server import DEFAULT_TOKEN_ENV, Predictor, ServeError, load_predictor, resolve_token, serve

__all__ = [
    "DEFAULT_TOKEN_ENV",
    "INFO_PATH",
    "PREDICT_PATH",
    "Predictor",
    "ServeError",
    "create_app",
    "default_max_body_bytes",
    "encode_images",
    "load_predictor",
    "resolve_token",
    "serve",
]
