"""Export a trained model to ONNX or TorchScript, with its normalisation inside.

The exported graph (both formats) has the same contract:

* **input** ``images``: float32, shape ``(B, C, H, W)`` (NCHW, ``B`` dynamic, ``C, H, W``
  the model's ``in_shape``), **pixels scaled to [0, 1]**: the uint8 image divided by 255,
  and nothing else (no mean/std). The graph computes ``(images - mean) / std`` per
  channel itself, with the training statistics.
* **outputs**, in this order: ``logits`` float32 ``(B, K)`` and ``probs`` float32
  ``(B, K)`` (the softmax of the logits; rows sum to one).

A consumer therefore only computes ``uint8_images.astype(float32) / 255`` (NCHW); this is
also the default of ``OnnxTeacher`` (``layout=nchw, scale=unit``, no mean/std; its ``auto``
output detection sees logits in the first output). ONNX files also carry
metadata (``deepmimic.*`` keys: input convention, in_shape, num_classes, mean, std,
class names, model name) that ``deepmimic serve model.onnx`` reads.

Every export is verified before it is put in place: the file is written under a
temporary name, read back (onnxruntime for ONNX, ``torch.jit.load`` for TorchScript)
and run on a batch of images and on a batch of another size (the batch axis is
dynamic); the largest absolute difference from PyTorch, for probabilities and logits,
must be below ``atol`` (1e-4) or :class:`ExportError` is raised and nothing is written.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from deepmimic.errors import DeepMimicError
from deepmimic.io_utils import atomic_path

INPUT_NAME = "images"
OUTPUT_NAMES = ("logits", "probs")
INPUT_CONVENTION = "float32 NCHW, pixels scaled to 0-1 (uint8 / 255); mean/std normalisation is inside the graph"
DEFAULT_OPSET = 17
DEFAULT_ATOL = 1e-4


class ExportError(DeepMimicError):
    """An export could not be written or did not reproduce the PyTorch model."""


@dataclass(frozen=True)
class ExportReport:
    """What was written and how closely it reproduces PyTorch."""

    path: Path
    format: str  # "onnx" or "torchscript"
    batch_sizes: tuple[int, ...]  # batch sizes verified
    max_abs_diff_probs: float
    max_abs_diff_logits: float

    @property
    def max_abs_diff(self) -> float:
        return max(self.max_abs_diff_probs, self.max_abs_diff_logits)

    def summary(self) -> str:
        runner = "onnxruntime" if self.format == "onnx" else "torch.jit.load"
        sizes = " and ".join(str(b) for b in self.batch_sizes)
        return (
            f"wrote {self.path} ({self.format}); verified with {runner} on batches of {sizes}: "
            f"max abs diff probs {self.max_abs_diff_probs:.3g}, logits {self.max_abs_diff_logits:.3g}"
        )


class InferenceModule(nn.Module):
    """mean/std normalisation + model + softmax: float 0-1 NCHW -> (logits, probs)."""

    def __init__(self, model: nn.Module, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # Normalizer computes (uint8 / 255 - mean) / std; the consumer has done the / 255.
        x = (images - self.mean) / self.std
        logits = self.model(x).float()
        return logits, torch.softmax(logits, dim=1)


def _inference_module(trained) -> InferenceModule:  # noqa: ANN001 (TrainedModel; avoids an import cycle)
    model = trained.model.cpu().eval()
    return InferenceModule(model, trained.normalizer.mean, trained.normalizer.std).eval()


def _sample_batches(trained, batch_size: int, images: torch.Tensor | None) -> list[torch.Tensor]:  # noqa: ANN001
    """uint8 batches to verify on: ``batch_size`` images and a batch of another size."""
    if batch_size < 1:
        raise ExportError(f"batch size must be at least 1, got {batch_size}")
    other = 1 if batch_size > 1 else 3
    if images is not None:
        if images.dtype != torch.uint8 or images.dim() != 4 or tuple(images.shape[1:]) != tuple(trained.in_shape):
            raise ExportError(
                f"verification images must be uint8 (N, {', '.join(map(str, trained.in_shape))}), "
                f"got {images.dtype} {tuple(images.shape)}"
            )
        reps = -(-(batch_size + other) // images.shape[0])
        pool = images.repeat(reps, 1, 1, 1)
    else:
        gen = torch.Generator().manual_seed(0)
        pool = torch.randint(0, 256, (batch_size + other, *trained.in_shape), generator=gen, dtype=torch.uint8)
    return [pool[:batch_size].contiguous(), pool[batch_size : batch_size + other].contiguous()]


def _compare(
    trained,
    batches: list[torch.Tensor],
    run: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]],
    atol: float,
    what: str,  # noqa: ANN001
) -> tuple[float, float]:
    diff_p = diff_l = 0.0
    for batch in batches:
        ref_logits = trained.logits(batch)
        ref_probs = torch.softmax(ref_logits, dim=1)
        logits, probs = run(batch.float() / 255.0)
        if tuple(logits.shape) != tuple(ref_logits.shape) or tuple(probs.shape) != tuple(ref_probs.shape):
            raise ExportError(
                f"{what}: output shapes {tuple(logits.shape)}/{tuple(probs.shape)} differ from PyTorch's "
                f"{tuple(ref_logits.shape)} for a batch of {batch.shape[0]}"
            )
        diff_l = max(diff_l, float((logits.float() - ref_logits).abs().max()))
        diff_p = max(diff_p, float((probs.float() - ref_probs).abs().max()))
    if not (diff_p < atol and diff_l < atol):  # also catches NaN
        raise ExportError(
            f"{what}: exported model differs from PyTorch (max abs diff probs {diff_p:.3g}, logits {diff_l:.3g}; "
            f"tolerance {atol:g}); nothing written"
        )
    return diff_p, diff_l


def _check_target(out: Path) -> None:
    if out.is_dir():
        raise ExportError(f"{out}: is a folder; give a file name")


def _write_error(out: Path, exc: OSError) -> ExportError:
    return ExportError(f"{out}: cannot write ({exc.strerror or type(exc).__name__})")


def export_onnx(
    trained,  # noqa: ANN001 (deepmimic.models.bundle.TrainedModel)
    out_path: str | Path,
    *,
    batch_size: int = 8,
    opset: int = DEFAULT_OPSET,
    atol: float = DEFAULT_ATOL,
    images: torch.Tensor | None = None,
) -> ExportReport:
    """Export ``trained`` (a :class:`~deepmimic.models.bundle.TrainedModel`) to ONNX at ``out_path``.

    The graph takes ``images``: float32 (B, C, H, W), pixels scaled to 0-1 (uint8 / 255; no
    mean/std: the graph applies them), dynamic B; it returns ``logits``
    and ``probs`` (softmax), both float32 (B, K). Exported with the TorchScript-based
    exporter (``dynamo=False``) at ``opset``, traced on ``batch_size`` images.

    Before the file is moved into place it is checked with ``onnx.checker`` and run with
    onnxruntime on ``batch_size`` images and on a batch of another size (``images``, uint8
    (N, C, H, W), if given, else seeded random pixels); if probabilities or logits differ
    from PyTorch by ``atol`` or more, :class:`ExportError` is raised and nothing is written.
    Returns the :class:`ExportReport` (max abs differences).
    """
    import onnx  # noqa: PLC0415
    import onnxruntime as ort  # noqa: PLC0415

    out = Path(out_path)
    _check_target(out)
    module = _inference_module(trained)
    batches = _sample_batches(trained, batch_size, images)
    axes = {name: {0: "batch"} for name in (INPUT_NAME, *OUTPUT_NAMES)}
    try:
        with atomic_path(out) as tmp:
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.onnx.export(
                    module,
                    (batches[0].float() / 255.0,),
                    str(tmp),
                    input_names=[INPUT_NAME],
                    output_names=list(OUTPUT_NAMES),
                    dynamic_axes=axes,
                    opset_version=opset,
                    do_constant_folding=True,
                    dynamo=False,
                )
            proto = onnx.load(str(tmp))
            metadata = {
                "deepmimic.input": INPUT_CONVENTION,
                "deepmimic.input_range": "0-1",
                "deepmimic.in_shape": json.dumps(list(trained.in_shape)),
                "deepmimic.num_classes": str(trained.num_classes),
                "deepmimic.mean": json.dumps(list(trained.normalizer.mean)),
                "deepmimic.std": json.dumps(list(trained.normalizer.std)),
                "deepmimic.name": trained.name,
                "deepmimic.architecture": getattr(trained, "architecture", ""),
                "deepmimic.class_names": json.dumps(list(getattr(trained, "class_names", ()))),
                "deepmimic.outputs": "logits,probs",
            }
            for key, value in metadata.items():
                entry = proto.metadata_props.add()
                entry.key, entry.value = key, value
            proto.doc_string = (
                f"deepmimic model '{trained.name}': input {INPUT_CONVENTION}; outputs logits, probs (B, K)"
            )
            onnx.checker.check_model(proto)
            onnx.save(proto, str(tmp))
            session = ort.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])

            def run(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
                logits, probs = session.run(list(OUTPUT_NAMES), {INPUT_NAME: x.numpy()})
                return torch.from_numpy(logits), torch.from_numpy(probs)

            diff_p, diff_l = _compare(trained, batches, run, atol, f"{out}")
    except OSError as exc:
        raise _write_error(out, exc) from None
    except DeepMimicError:
        raise
    except Exception as exc:  # exporter or checker failure: one line, not a traceback
        raise ExportError(
            f"{out}: ONNX export failed ({type(exc).__name__}: {' '.join(str(exc).split())[:300]})"
        ) from exc
    return ExportReport(out, "onnx", tuple(b.shape[0] for b in batches), diff_p, diff_l)


def export_torchscript(
    trained,  # noqa: ANN001 (deepmimic.models.bundle.TrainedModel)
    out_path: str | Path,
    *,
    batch_size: int = 8,
    atol: float = DEFAULT_ATOL,
    images: torch.Tensor | None = None,
) -> ExportReport:
    """Export ``trained`` as a traced TorchScript module (``torch.jit.trace``) at ``out_path``.

    Same contract as :func:`export_onnx`: ``module(images)`` with float32 (B, C, H, W)
    pixels scaled to 0-1 (uint8 / 255) returns ``(logits, probs)``; load it with ``torch.jit.load`` (no
    deepmimic needed). Verified from the written file before it is moved into place.
    """
    out = Path(out_path)
    _check_target(out)
    module = _inference_module(trained)
    batches = _sample_batches(trained, batch_size, images)
    try:
        with atomic_path(out) as tmp, torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            traced = torch.jit.trace(module, (batches[0].float() / 255.0,), check_trace=False)
            traced.save(str(tmp))
            loaded = torch.jit.load(str(tmp), map_location="cpu")
            loaded.eval()

            def run(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
                logits, probs = loaded(x)
                return logits, probs

            diff_p, diff_l = _compare(trained, batches, run, atol, f"{out}")
    except OSError as exc:
        raise _write_error(out, exc) from None
    except DeepMimicError:
        raise
    except Exception as exc:
        raise ExportError(
            f"{out}: TorchScript export failed ({type(exc).__name__}: {' '.join(str(exc).split())[:300]})"
        ) from exc
    return ExportReport(out, "torchscript", tuple(b.shape[0] for b in batches), diff_p, diff_l)
