"""Load a trained model back from its self-describing weights file.

``load_trained(path)`` accepts:

* a **stage folder** of a finished run, the folder holding ``weights.safetensors``:
  ``<run>/mentor``, ``<run>/students/<slug>`` (DeepMimic and mimic pipelines) or
  ``<run>/<slug>`` (FEED pipeline);
* the ``weights.safetensors`` file of such a folder, moved or copied anywhere;
* a **standalone bundle** written by :func:`save_bundle` (``deepmimic export --bundle``),
  which is the same format: weights plus their description.

Everything needed to rebuild the model (architecture, model options, input shape, classes,
normalisation; :class:`~deepmimic.models.description.ModelDescription`) is read from the
file's safetensors metadata, which the trainer writes. Nothing else is read: not the run's
``config.yaml`` or ``results.json``, not the dataset, and the pipeline kind does not matter.

Weights written before the metadata existed do not load: :class:`ModelSpecError` names the
file and the missing field. Standalone bundles of deepmimic 0.1 (``deepmimic-bundle/1``)
already carried every field and still load.

Only safetensors is read: nothing is unpickled. Every problem a user can cause raises
:class:`ModelSpecError` with a one-line message naming the path.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file
from torch import nn

from deepmimic.data.batches import Normalizer
from deepmimic.engine.checkpoint import save_weights
from deepmimic.errors import ModelSpecError
from deepmimic.models.description import MODEL_FORMAT, ModelDescription

WEIGHTS_FILE = "weights.safetensors"
BUNDLE_FORMAT = MODEL_FORMAT  # a bundle is a weights file: one format for both


@dataclass(frozen=True)
class TrainedModel:
    """A trained classifier ready for inference.

    Attributes:
        model: the network, on the CPU, in eval mode; maps normalised float (B, C, H, W)
            to (B, num_classes) logits.
        normalizer: uint8 images -> the model's normalised inputs.
        num_classes: K, the number of classes.
        in_shape: (C, H, W) of one image.
        name: the stage's name (e.g. ``"Student-A"``) or the bundle's.
        architecture: the registered model name or notation it was built from.
        model_options: the options given to :func:`create_model`.
        class_names: the class names when the run recorded them, else ``()``.
        source: the path it was loaded from.
        method: the method it was trained with, when recorded.
    """

    model: nn.Module
    normalizer: Normalizer
    num_classes: int
    in_shape: tuple[int, int, int]
    name: str
    architecture: str = ""
    model_options: Mapping[str, Any] = field(default_factory=dict)
    class_names: tuple[str, ...] = ()
    source: Path | None = None
    method: str = ""

    @property
    def description(self) -> ModelDescription:
        """What this model is, as written into its weights' metadata."""
        return ModelDescription(
            architecture=self.architecture,
            in_shape=self.in_shape,
            num_classes=self.num_classes,
            model_options=self.model_options,
            class_names=self.class_names,
            name=self.name,
            method=self.method,
            normalizer=self.normalizer,
        )

    @torch.no_grad()
    def logits(self, images_uint8: torch.Tensor) -> torch.Tensor:
        """Logits float32 (B, K) for uint8 images (B, C, H, W)."""
        self._check_images(images_uint8)
        device = next(self.model.parameters(), torch.empty(0)).device
        return self.model(self.normalizer(images_uint8.to(device))).float().cpu()

    @torch.no_grad()
    def probs(self, images_uint8: torch.Tensor) -> torch.Tensor:
        """Softmax probabilities float32 (B, K) for uint8 images (B, C, H, W): normalise, forward, softmax."""
        return torch.softmax(self.logits(images_uint8), dim=1)

    def _check_images(self, images: torch.Tensor) -> None:
        if images.dtype != torch.uint8 or images.dim() != 4 or tuple(images.shape[1:]) != tuple(self.in_shape):
            raise ModelSpecError(
                f"{self.name}: expected uint8 images (B, {', '.join(map(str, self.in_shape))}), "
                f"got {images.dtype} {tuple(images.shape)}"
            )


# --------------------------------------------------------------------------- loading


def load_trained(path: str | Path) -> TrainedModel:
    """Rebuild a trained model from a stage folder, its weights file or a bundle (see module doc).

    Reads only the safetensors file. Raises :class:`ModelSpecError` (one line) when the
    path is missing, holds no weights, the weights carry no model description (an older
    deepmimic wrote them) or do not fit the described architecture.
    """
    p = Path(path)
    if not p.exists():
        raise ModelSpecError(f"{p}: no such file or folder")
    weights = p if p.is_file() else p / WEIGHTS_FILE
    if not weights.is_file():
        raise ModelSpecError(
            f"{p}: no {WEIGHTS_FILE} in this folder{_folder_hint(p)}; pass a trained stage folder such as <run>/mentor"
        )
    description = ModelDescription.from_metadata(_read_metadata(weights), weights)
    assert description.normalizer is not None  # from_metadata requires it
    model = _build(
        description.architecture,
        description.in_shape,
        description.num_classes,
        dict(description.model_options),
        weights,
    )
    default_name = weights.parent.name if weights.name == WEIGHTS_FILE else weights.stem
    return TrainedModel(
        model=model,
        normalizer=description.normalizer,
        num_classes=description.num_classes,
        in_shape=description.in_shape,
        name=description.name or default_name,
        architecture=description.architecture,
        model_options=dict(description.model_options),
        class_names=description.class_names,
        source=p,
        method=description.method,
    )


def save_bundle(trained: TrainedModel, path: str | Path) -> Path:
    """Write ``trained`` as one standalone safetensors file that :func:`load_trained` reads back.

    The same format as a stage's ``weights.safetensors``, written by the same function
    (:func:`deepmimic.engine.checkpoint.save_weights`): the weights with the model's
    description as metadata (:meth:`ModelDescription.to_metadata`), atomically. A bundle
    of a model loaded from a stage is a byte-for-byte copy of the stage's weights file.
    """
    out = Path(path)
    if not trained.architecture:
        raise ModelSpecError(f"{trained.name}: unknown architecture, cannot write a bundle")
    metadata = trained.description.to_metadata()
    if out.is_dir():
        raise ModelSpecError(f"{out}: is a folder; give a file name such as student.safetensors")
    try:
        save_weights(out, trained.model, metadata=metadata)  # exactly as the trainer writes a stage's weights
    except OSError as exc:
        raise ModelSpecError(f"{out}: cannot write bundle ({exc.strerror or exc})") from exc
    return out


# --------------------------------------------------------------------------- helpers


def _folder_hint(folder: Path) -> str:
    """Why a folder holds no weights: an unfinished stage, or a run folder (listing its trained stages)."""
    if (folder / "checkpoint.pt").is_file():
        return " (the stage has not finished training)"
    stages = sorted(
        w.parent.relative_to(folder).as_posix()
        for pattern in (f"*/{WEIGHTS_FILE}", f"*/*/{WEIGHTS_FILE}")
        for w in folder.glob(pattern)
    )
    if stages or (folder / "config.yaml").is_file():
        return f" (this is a run folder; its trained stages: {', '.join(stages) or 'none yet'})"
    return ""


def _read_metadata(path: Path) -> dict[str, str]:
    try:
        with safe_open(str(path), framework="pt") as handle:
            return dict(handle.metadata() or {})
    except Exception as exc:  # not safetensors, truncated, unreadable
        raise ModelSpecError(f"{path}: not a readable safetensors file ({_first_line(exc)})") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _build(
    architecture: str, in_shape: tuple[int, int, int], num_classes: int, options: dict[str, Any], weights: Path
) -> nn.Module:
    """create_model + load the safetensors weights; the model comes back on the CPU in eval mode."""
    from deepmimic.models.registry import create_model  # noqa: PLC0415 (models/__init__ imports this module's package)

    try:
        model = create_model(architecture, tuple(in_shape), num_classes, **options)
    except ModelSpecError as exc:  # an architecture or option this deepmimic does not know
        raise ModelSpecError(f"{weights}: cannot build the described model ({exc})") from None
    try:
        tensors = load_file(str(weights))
    except Exception as exc:
        raise ModelSpecError(f"{weights}: not a readable safetensors file ({_first_line(exc)})") from None
    try:
        model.load_state_dict(tensors)
    except RuntimeError as exc:
        detail = " ".join(str(exc).split())
        if len(detail) > 300:
            detail = detail[:300] + "..."
        raise ModelSpecError(
            f"{weights}: weights do not match architecture '{architecture}' "
            f"(in_shape {tuple(in_shape)}, {num_classes} classes): {detail}"
        ) from None
    return model.eval()
