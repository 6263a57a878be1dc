"""``open_teacher(spec, options)``: a black-box teacher from a command-line spec.

=========================  =======================================================
spec                       teacher
=========================  =======================================================
``model.onnx``             :class:`~deepmimic.teachers.onnx_teacher.OnnxTeacher`
``http(s)://host/path``    :class:`~deepmimic.teachers.http_teacher.HttpTeacher`
``probs.npy``/``.csv``     :class:`~deepmimic.teachers.predictions_teacher.PredictionsTeacher`
a directory                a trained deepmimic model (``deepmimic.models.bundle.load_trained``)
``ARCH:CHECKPOINT``,       a pretrained PyTorch model you already have
``.ts``, ``.pt2``,         (:mod:`deepmimic.teachers.pretrained`; options ``mean``, ``std``,
``module:factory``         ``num_classes``, ``in_shape``, ``rename``, ``weights``)
=========================  =======================================================

Options are strings (``--option KEY=VALUE`` on the command line); each kind accepts its
own keys (see ``OPTIONS``) plus ``label_only=true``, which makes any teacher answer with
one-hot top-1 targets. An unknown key is a TeacherError listing the known ones.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from deepmimic.data.rows import Images
from deepmimic.errors import TeacherError
from deepmimic.teachers.blackbox import ImageLabeler, check_images
from deepmimic.teachers.label_only import LabelOnlyTeacher
from deepmimic.teachers.pretrained import OPTIONS as PRETRAINED_OPTIONS
from deepmimic.teachers.pretrained import load_pretrained, pretrained_kind

COMMON_OPTIONS = ("label_only",)
OPTIONS: dict[str, tuple[str, ...]] = {
    "onnx": ("input", "output", "layout", "scale", "mean", "std", "outputs", "num_classes", "threads"),
    "http": (
        "num_classes",
        "timeout",
        "retries",
        "backoff",
        "max_backoff",
        "concurrency",
        "token_env",
        "budget",
        "seed",
    ),
    "predictions": ("atol",),
    "model": (),
    "pretrained": PRETRAINED_OPTIONS,
}
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def teacher_kind(spec: str) -> str:
    """``onnx``, ``http``, ``predictions``, ``model`` or ``pretrained`` for a spec; TeacherError if none fits."""
    lowered = spec.lower()
    if lowered.startswith(("http://", "https://")):
        return "http"
    if pretrained_kind(spec) is not None:
        return "pretrained"
    path = Path(spec).expanduser()
    if path.is_dir():
        return "model"
    if lowered.endswith(".onnx"):
        return "onnx"
    if lowered.endswith((".npy", ".csv")):
        return "predictions"
    if not path.exists():
        raise TeacherError(
            f"teacher '{spec}': no such file or directory (expected a .onnx file, an http(s):// URL, "
            "a .npy/.csv predictions file, a trained model directory or ARCH:CHECKPOINT, .ts, .pt2, module:factory)"
        )
    raise TeacherError(
        f"teacher '{spec}': cannot tell what kind of teacher this is (expected a .onnx file, an http(s):// URL, "
        "a .npy/.csv predictions file, a trained model directory, "
        "or a pretrained model: ARCH:CHECKPOINT, .ts, .pt2, module:factory)"
    )


class _Options:
    """Typed reads of string options, with messages naming the key."""

    def __init__(self, kind: str, options: Mapping[str, str]) -> None:
        self.kind = kind
        self.values = {str(k): str(v) for k, v in options.items()}

    def has(self, key: str) -> bool:
        return key in self.values

    def text(self, key: str, default: str | None = None) -> str | None:
        return self.values.get(key, default)

    def _parse(self, key: str, convert: Callable[[str], Any], what: str, default: Any) -> Any:
        if key not in self.values:
            return default
        try:
            return convert(self.values[key])
        except ValueError as exc:
            raise TeacherError(f"{self.kind} teacher option {key} expects {what}, got '{self.values[key]}'") from exc

    def integer(self, key: str, default: int | None = None, minimum: int | None = None) -> int | None:
        value = self._parse(key, int, "an integer", default)
        if key in self.values and minimum is not None and value < minimum:
            raise TeacherError(f"{self.kind} teacher option {key} must be at least {minimum}, got {value}")
        return value

    def number(
        self, key: str, default: float | None = None, minimum: float | None = None, above: float | None = None
    ) -> float | None:
        value = self._parse(key, float, "a number", default)
        if key not in self.values:
            return value
        if not math.isfinite(value):
            raise TeacherError(f"{self.kind} teacher option {key} must be a finite number, got '{self.values[key]}'")
        if minimum is not None and value < minimum:
            raise TeacherError(f"{self.kind} teacher option {key} must be at least {minimum:g}, got {value:g}")
        if above is not None and not value > above:
            raise TeacherError(f"{self.kind} teacher option {key} must be above {above:g}, got {value:g}")
        return value

    def numbers(self, key: str) -> list[float] | None:
        return self._parse(
            key, lambda v: [float(x) for x in v.split(",")], "numbers separated by commas (e.g. 0.5,0.5,0.5)", None
        )

    def flag(self, key: str) -> bool:
        def convert(value: str) -> bool:
            if value.lower() in _TRUE:
                return True
            if value.lower() in _FALSE:
                return False
            raise ValueError(value)

        return bool(self._parse(key, convert, "true or false", False))


class TrainedModelLabeler:
    """A trained deepmimic model (from a run directory) or a pretrained model as an :class:`ImageLabeler`.

    uint8 images (B, C, H, W) -> the model's normaliser -> logits (B, K) -> softmax.
    """

    def __init__(self, bundle: Any, path: str) -> None:
        self.model = bundle.model.eval()
        self.normalizer = getattr(bundle, "normalizer", None)
        self.num_classes = int(bundle.num_classes)
        in_shape = getattr(bundle, "in_shape", None)
        self.in_shape = tuple(int(d) for d in in_shape) if in_shape is not None else None
        self.source = str(getattr(bundle, "name", None) or getattr(bundle, "source", None) or Path(path).name)
        self.device = next((p.device for p in self.model.parameters()), torch.device("cpu"))

    @torch.no_grad()
    def label_batch(self, images: torch.Tensor) -> torch.Tensor:
        """Probabilities (B, K) float32 for uint8 ``images`` (B, C, H, W)."""
        check_images(images, self.source)
        if self.in_shape is not None and tuple(images.shape[1:]) != self.in_shape:
            raise TeacherError(
                f"{self.source}: the model expects images of shape (C, H, W) = {self.in_shape}, "
                f"got {tuple(images.shape[1:])}"
            )
        images = images.to(self.device)
        x = self.normalizer(images) if self.normalizer is not None else images.float() / 255.0  # (B, C, H, W) float32
        self.model.eval()
        logits = self.model(x)  # (B, K)
        return torch.softmax(logits.float(), dim=1).cpu()


def _open_model_dir(spec: str) -> ImageLabeler:
    try:
        from deepmimic.models.bundle import load_trained
    except ImportError as exc:
        raise TeacherError(
            f"teacher '{spec}': reading trained model directories needs deepmimic.models.bundle, "
            f"which is not available ({exc})"
        ) from exc
    return TrainedModelLabeler(load_trained(spec), spec)


def _open(
    kind: str, spec: str, opts: _Options, images: Images | None, rows: torch.Tensor | None, total_rows: int | None
) -> ImageLabeler:
    if kind == "onnx":
        from deepmimic.teachers.onnx_teacher import OnnxTeacher

        return OnnxTeacher(
            spec,
            input_name=opts.text("input"),
            output_name=opts.text("output"),
            layout=opts.text("layout", "nchw") or "nchw",
            scale=opts.text("scale", "unit") or "unit",
            mean=opts.numbers("mean"),
            std=opts.numbers("std"),
            outputs=opts.text("outputs", "auto") or "auto",
            num_classes=opts.integer("num_classes", minimum=1),
            threads=opts.integer("threads", minimum=0),
        )
    if kind == "http":
        from deepmimic.teachers.http_teacher import DEFAULT_TOKEN_ENV, HttpTeacher

        return HttpTeacher(
            spec,
            num_classes=opts.integer("num_classes", minimum=1),
            timeout=opts.number("timeout", 30.0, above=0),  # type: ignore[arg-type]
            retries=opts.integer("retries", 5, minimum=0),  # type: ignore[arg-type]
            backoff=opts.number("backoff", 0.5, minimum=0),  # type: ignore[arg-type]
            max_backoff=opts.number("max_backoff", 30.0, minimum=0),  # type: ignore[arg-type]
            concurrency=opts.integer("concurrency", 4, minimum=1),  # type: ignore[arg-type]
            token_env=opts.text("token_env", DEFAULT_TOKEN_ENV),
            budget=opts.integer("budget", minimum=0),
            seed=opts.integer("seed"),
        )
    if kind == "predictions":
        from deepmimic.teachers.predictions_teacher import PredictionsTeacher

        if rows is not None:  # a subset: the file answers for the whole set, we keep the chosen rows
            return PredictionsTeacher(
                spec, images=images, num_rows=total_rows, rows=rows, atol=opts.number("atol", 1e-3, above=0)
            )  # type: ignore[arg-type]
        return PredictionsTeacher(spec, images=images, atol=opts.number("atol", 1e-3, above=0))  # type: ignore[arg-type]
    if kind == "pretrained":
        own = {k: v for k, v in opts.values.items() if k not in COMMON_OPTIONS}
        return TrainedModelLabeler(load_pretrained(spec, own), spec)
    return _open_model_dir(spec)


def open_teacher(
    spec: str,
    options: Mapping[str, str] | None = None,
    *,
    images: Images | None = None,
    rows: torch.Tensor | None = None,
    total_rows: int | None = None,
) -> ImageLabeler:
    """The black-box teacher named by ``spec`` (see the module docstring), configured by ``options``.

    ``images``: the uint8 unlabelled set (N, C, H, W) (a tensor or a streamed RowTable), if
    known; a predictions file is then checked to have N rows and can look images up by
    content. ``rows`` (int64 (N,)) says that ``images`` are those rows of a set of
    ``total_rows`` images (a subset): a predictions file must then have ``total_rows`` rows
    and answers with the chosen ones.
    """
    options = dict(options or {})
    kind = teacher_kind(spec)
    known = COMMON_OPTIONS + OPTIONS[kind]
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise TeacherError(
            f"unknown option(s) {', '.join(unknown)} for {kind} teacher '{spec}'; "
            f"known options: {', '.join(sorted(known))}"
        )
    opts = _Options(kind, options)
    label_only = opts.flag("label_only")
    teacher = _open(kind, spec, opts, images, rows, total_rows)
    return LabelOnlyTeacher(teacher) if label_only else teacher
