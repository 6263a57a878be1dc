"""A black-box teacher read from an ONNX file and run with onnxruntime on the CPU.

The model's own preprocessing is described by options: the tensor layout it expects
(``nchw`` or ``nhwc``), the pixel scale (``unit``: x / 255 in [0, 1]; ``byte``: floats in
0..255), an optional per-channel mean/std (in the chosen scale), and whether its output
is logits or probabilities (``auto`` decides from the first batch).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from deepmimic.errors import TeacherError
from deepmimic.teachers.blackbox import check_images

LAYOUTS = ("nchw", "nhwc")
SCALES = ("unit", "byte")
OUTPUTS = ("auto", "logits", "probs")
_FLOAT_TYPES = {"tensor(float)": np.float32, "tensor(double)": np.float64, "tensor(float16)": np.float16}


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:300]}" if text else type(exc).__name__


def looks_like_probs(values: torch.Tensor, atol: float = 1e-3) -> bool:
    """True when every row of ``values`` (B, K) is non-negative and sums to 1 within ``atol``."""
    if values.numel() == 0 or not torch.isfinite(values).all():
        return False
    return bool((values >= 0).all()) and float((values.sum(dim=1) - 1).abs().max()) <= atol


class OnnxTeacher:
    """Labels uint8 images (B, C, H, W) with an ONNX classifier (onnxruntime, CPUExecutionProvider).

    Args:
        path: the ``.onnx`` file.
        input_name: the model input to feed (default: its first input).
        output_name: the output holding the class scores (default: its first output), shape (B, K).
        layout: ``"nchw"`` (B, C, H, W) or ``"nhwc"`` (B, H, W, C) as the model expects.
        scale: ``"unit"`` feeds x / 255, ``"byte"`` feeds the 0..255 values as floats.
        mean, std: per-channel statistics in the chosen scale (one value or one per channel):
            the model gets ``(x - mean) / std``.
        outputs: ``"logits"`` (softmax applied), ``"probs"`` (used as they are) or ``"auto"``
            (probabilities if the first batch's rows are non-negative and sum to 1 within 1e-3).
        num_classes: K, needed only when neither the output's nor the input's shape is static.
        threads: onnxruntime intra-op threads (default: onnxruntime's choice).

    A model whose batch dimension is fixed (exported with batch 1, say) is run on chunks of
    that size, the last one zero-padded.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        input_name: str | None = None,
        output_name: str | None = None,
        layout: str = "nchw",
        scale: str = "unit",
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        outputs: str = "auto",
        num_classes: int | None = None,
        threads: int | None = None,
    ) -> None:
        import onnxruntime as ort

        self.path = Path(path).expanduser()
        self.source = self.path.name
        for name, value, allowed in (
            ("layout", layout, LAYOUTS),
            ("scale", scale, SCALES),
            ("outputs", outputs, OUTPUTS),
        ):
            if value not in allowed:
                raise TeacherError(f"{self.source}: {name} must be one of {', '.join(allowed)}, got '{value}'")
        if not self.path.is_file():
            raise TeacherError(f"{self.path}: no such ONNX file")
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only: no warnings on stderr
        # onnxruntime's threads busy-wait after each run by default; between batches that steals
        # the cores from the torch work around it (about 10% of labelling time on 2 cores).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if threads is not None:
            options.intra_op_num_threads = int(threads)
        try:
            self.session = ort.InferenceSession(
                str(self.path), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own exception types for corrupt files
            raise TeacherError(f"{self.path}: not a readable ONNX model ({_one_line(exc)})") from exc

        inputs = {i.name: i for i in self.session.get_inputs()}
        outputs_meta = {o.name: o for o in self.session.get_outputs()}
        self.input_name = input_name or self.session.get_inputs()[0].name
        self.output_name = output_name or self.session.get_outputs()[0].name
        if self.input_name not in inputs:
            raise TeacherError(f"{self.source}: no input named '{self.input_name}' (inputs: {', '.join(inputs)})")
        if self.output_name not in outputs_meta:
            raise TeacherError(
                f"{self.source}: no output named '{self.output_name}' (outputs: {', '.join(outputs_meta)})"
            )
        meta = inputs[self.input_name]
        if meta.type not in _FLOAT_TYPES:
            raise TeacherError(
                f"{self.source}: input '{self.input_name}' has type {meta.type}; only float inputs are supported"
            )
        self._dtype = _FLOAT_TYPES[meta.type]
        if len(meta.shape) != 4:
            raise TeacherError(
                f"{self.source}: input '{self.input_name}' has shape {meta.shape}; expected 4 dimensions ({layout})"
            )
        self.input_shape: list[int | str | None] = list(meta.shape)  # as declared: ints or symbolic names
        first = self.input_shape[0]
        self.fixed_batch = first if isinstance(first, int) and first > 0 else None
        self.layout, self.scale, self.outputs = layout, scale, outputs
        self._resolved: str | None = None if outputs == "auto" else outputs
        self.mean = self._stats("mean", mean)
        self.std = self._stats("std", std)
        if self.std is not None and (self.std == 0).any():
            raise TeacherError(f"{self.source}: std must be non-zero")
        self.num_classes = self._find_num_classes(outputs_meta[self.output_name].shape, num_classes)
        stats = "".join(
            f" {name}={','.join(f'{v:g}' for v in t.reshape(-1).tolist())}"
            for name, t in (("mean", self.mean), ("std", self.std))
            if t is not None
        )
        # Everything that changes the answers: a query log written under other settings is refused.
        self.identity = (
            f"{self.source} input={self.input_name} output={self.output_name} "
            f"layout={layout} scale={scale} outputs={outputs}{stats}"
        )

    # -- set-up ---------------------------------------------------------------------------

    def _stats(self, name: str, values: Sequence[float] | None) -> torch.Tensor | None:
        """Per-channel statistics as a (1, C, 1, 1) float32 tensor (C may be 1: broadcast)."""
        if values is None:
            return None
        vals = [float(v) for v in values]
        channels = self._static_channels()
        if not vals or (len(vals) != 1 and channels is not None and len(vals) != channels):
            raise TeacherError(f"{self.source}: {name} needs 1 or {channels} values, got {len(vals)}")
        return torch.tensor(vals, dtype=torch.float32).view(1, -1, 1, 1)

    def _static_channels(self) -> int | None:
        c = self.input_shape[1] if self.layout == "nchw" else self.input_shape[3]
        return c if isinstance(c, int) else None

    def _static_chw(self) -> tuple[int, int, int] | None:
        """(C, H, W) when the model's input is fully static apart from the batch."""
        dims = self.input_shape[1:] if self.layout == "nchw" else [self.input_shape[3], *self.input_shape[1:3]]
        return tuple(dims) if all(isinstance(d, int) and d > 0 for d in dims) else None  # type: ignore[return-value]

    def _find_num_classes(self, out_shape: list[int | str | None], given: int | None) -> int:
        static = out_shape[-1] if out_shape and isinstance(out_shape[-1], int) and out_shape[-1] > 0 else None
        if given is not None:
            if static is not None and static != given:
                raise TeacherError(f"{self.source}: num_classes={given} but the model outputs {static} classes")
            return int(given)
        if static is not None:
            return static
        chw = self._static_chw()
        if chw is None:
            raise TeacherError(
                f"{self.source}: cannot tell the number of classes from the model; pass the option num_classes=K"
            )
        probe = torch.zeros(1, *chw, dtype=torch.uint8)  # (1, C, H, W)
        return int(self._run(probe).shape[1])

    # -- labelling -----------------------------------------------------------------------

    def _prepare(self, images: torch.Tensor) -> np.ndarray:
        """uint8 (B, C, H, W) -> the model's input array (B, C, H, W) or (B, H, W, C)."""
        x = images.to(torch.float32)
        if self.scale == "unit":
            x = x / 255.0
        if self.mean is not None:
            x = x - self.mean
        if self.std is not None:
            x = x / self.std
        if self.layout == "nhwc":
            x = x.permute(0, 2, 3, 1)  # (B, H, W, C)
        return np.ascontiguousarray(x.numpy(), dtype=self._dtype)

    def _check_shape(self, images: torch.Tensor) -> None:
        chw = self._static_chw()
        got = tuple(images.shape[1:])
        if chw is not None and got != chw:
            raise TeacherError(
                f"{self.source}: the model expects images of shape (C, H, W) = {chw} ({self.layout} input "
                f"{self.input_shape}) but got {got}"
            )
        c = self._static_channels()
        if c is not None and got[0] != c:
            raise TeacherError(f"{self.source}: the model expects {c} channels but the images have {got[0]}")
        if self.mean is not None and self.mean.shape[1] not in (1, got[0]):
            raise TeacherError(
                f"{self.source}: mean has {self.mean.shape[1]} values but the images have {got[0]} channels"
            )
        if self.std is not None and self.std.shape[1] not in (1, got[0]):
            raise TeacherError(
                f"{self.source}: std has {self.std.shape[1]} values but the images have {got[0]} channels"
            )

    def _run(self, images: torch.Tensor) -> torch.Tensor:
        """Raw model outputs (B, K) float32 for uint8 images (B, C, H, W)."""
        x = self._prepare(images)  # (B, ...) in the model's layout and dtype
        b = x.shape[0]
        step = self.fixed_batch or b
        chunks = []
        for start in range(0, b, max(step, 1)):
            part = x[start : start + step]
            real = part.shape[0]
            if self.fixed_batch and real < self.fixed_batch:  # pad the last chunk of a fixed-batch model
                part = np.concatenate([part, np.zeros((self.fixed_batch - real, *part.shape[1:]), dtype=part.dtype)])
            try:
                (out,) = self.session.run([self.output_name], {self.input_name: part})
            except Exception as exc:
                raise TeacherError(
                    f"{self.source}: the model failed on a batch of shape {part.shape} ({_one_line(exc)})"
                ) from exc
            out = np.asarray(out)
            if out.ndim != 2 or out.shape[0] != part.shape[0]:
                raise TeacherError(
                    f"{self.source}: expected an output of shape (B, K), got {out.shape} for a batch of {part.shape[0]}"
                )
            chunks.append(out[:real])
        return torch.from_numpy(np.concatenate(chunks).astype(np.float32))

    def label_batch(self, images: torch.Tensor) -> torch.Tensor:
        """Probabilities (B, K) float32 for uint8 ``images`` (B, C, H, W)."""
        check_images(images, self.source)
        self._check_shape(images)
        if images.shape[0] == 0:
            return torch.empty(0, self.num_classes)
        scores = self._run(images)  # (B, K) logits or probabilities
        if scores.shape[1] != self.num_classes:
            raise TeacherError(
                f"{self.source}: the model gave {scores.shape[1]} scores per image, expected {self.num_classes}"
            )
        if self._resolved is None:  # "auto": decided once, on the first batch
            self._resolved = "probs" if looks_like_probs(scores) else "logits"
        return scores if self._resolved == "probs" else torch.softmax(scores, dim=1)
