"""What a trained model is, written into its own weights file.

A :class:`ModelDescription` records everything needed to rebuild a trained classifier
from its ``weights.safetensors`` alone: the architecture (a preset name or notation
string) and the options given to :func:`~deepmimic.models.registry.create_model`, the
input shape, the class count and names, the normalisation statistics, the training
method, the stage's name and the deepmimic version that wrote it.

It travels as the safetensors metadata (string -> string) of the weights file:

====================  ===========================================================
key                   value
====================  ===========================================================
``format``            :data:`MODEL_FORMAT` (``"deepmimic-model/1"``)
``architecture``      preset name or notation, e.g. ``"c-mp-fc-s"``
``model_options``     JSON object: keyword options of ``create_model``
``in_shape``          JSON list ``[C, H, W]``
``num_classes``       decimal integer K
``class_names``       JSON list of K strings, or ``[]`` when unknown
``normalizer``        JSON ``{"mean": [...], "std": [...]}`` (one value per channel)
``method``            the training method, e.g. ``"soft_label"``
``name``              the stage's name, e.g. ``"Student-A"`` (may be empty)
``deepmimic_version`` the ``deepmimic.__version__`` that wrote the file
====================  ===========================================================

The pipeline that builds a model knows its architecture, options and classes and passes
a description (without normaliser) to :func:`deepmimic.engine.trainer.fit`; the trainer
adds the normaliser and method it trained with (:func:`weights_metadata`) and writes the
weights. :func:`deepmimic.models.bundle.load_trained` reads it back with
:meth:`ModelDescription.from_metadata`, and a standalone bundle is the same format.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from deepmimic import __version__
from deepmimic.data.batches import Normalizer
from deepmimic.errors import ModelSpecError

MODEL_FORMAT = "deepmimic-model/1"
LEGACY_BUNDLE_FORMAT = "deepmimic-bundle/1"  # standalone bundles of deepmimic 0.1 (same fields, "model" key)

# The fields a loader cannot do without, in the order a missing one is reported.
REQUIRED_KEYS = ("architecture", "in_shape", "num_classes", "normalizer", "format")


class _Labelled(Protocol):
    """What :meth:`ModelDescription.for_data` reads from a dataset (an ImageDataset)."""

    @property
    def in_shape(self) -> tuple[int, int, int]: ...

    @property
    def num_classes(self) -> int: ...

    @property
    def class_names(self) -> Any: ...


@dataclass(frozen=True)
class ModelDescription:
    """How to rebuild a trained classifier, written into its weights file (see module doc).

    Attributes:
        architecture: the registered model name or notation string given to ``create_model``.
        in_shape: (C, H, W) of one input image.
        num_classes: K, the number of logits.
        model_options: the keyword options given to ``create_model`` (JSON values).
        class_names: K names, or ``()`` when unknown.
        name: the stage's display name (``"Student-A"``), may be empty.
        method: the method it was trained with (``"soft_label"``), may be empty.
        normalizer: the input normalisation; the trainer fills it in, a loaded one has it.
        version: the deepmimic version that wrote (or writes) the metadata.
    """

    architecture: str
    in_shape: tuple[int, int, int]
    num_classes: int
    model_options: Mapping[str, Any] = field(default_factory=dict)
    class_names: tuple[str, ...] = ()
    name: str = ""
    method: str = ""
    normalizer: Normalizer | None = None
    version: str = __version__

    def __post_init__(self) -> None:
        where = self.name or self.architecture or "model description"
        if not isinstance(self.architecture, str) or not self.architecture:
            raise ModelSpecError(f"{where}: a model description needs an architecture (preset name or notation)")
        shape = tuple(int(v) for v in self.in_shape)
        if len(shape) != 3 or min(shape) <= 0:
            raise ModelSpecError(
                f"{where}: in_shape must be three positive sizes (C, H, W), got {tuple(self.in_shape)}"
            )
        if int(self.num_classes) < 1:
            raise ModelSpecError(f"{where}: num_classes must be at least 1, got {self.num_classes}")
        names = tuple(str(n) for n in self.class_names)
        if names and len(names) != int(self.num_classes):
            raise ModelSpecError(f"{where}: {len(names)} class names for {self.num_classes} classes")
        if not isinstance(self.model_options, Mapping):
            raise ModelSpecError(f"{where}: model_options must be a mapping, got {type(self.model_options).__name__}")
        if self.normalizer is not None and len(self.normalizer.mean) != shape[0]:
            raise ModelSpecError(
                f"{where}: the normaliser has {len(self.normalizer.mean)} channels but the input has {shape[0]}"
            )
        object.__setattr__(self, "in_shape", shape)
        object.__setattr__(self, "num_classes", int(self.num_classes))
        object.__setattr__(self, "class_names", names)
        object.__setattr__(self, "model_options", dict(self.model_options))

    @classmethod
    def for_data(
        cls,
        architecture: str,
        data: _Labelled,
        model_options: Mapping[str, Any] | None = None,
        *,
        name: str = "",
        method: str = "",
        num_classes: int | None = None,
    ) -> ModelDescription:
        """A description for a model built with ``create_model(architecture, data.in_shape, K, **model_options)``.

        ``K`` is ``num_classes`` or ``data.num_classes``; the data's class names are kept
        when there are K of them.
        """
        k = int(data.num_classes if num_classes is None else num_classes)
        names = tuple(str(n) for n in (data.class_names or ()))
        return cls(
            architecture=architecture,
            in_shape=tuple(data.in_shape),
            num_classes=k,  # type: ignore[arg-type]
            model_options=dict(model_options or {}),
            class_names=names if len(names) == k else (),
            name=name,
            method=method,
        )

    def with_training(self, normalizer: Normalizer, method: str) -> ModelDescription:
        """This description with the normaliser and (unless already named) the method it was trained with."""
        return replace(self, normalizer=normalizer, method=self.method or method, version=__version__)

    def to_metadata(self) -> dict[str, str]:
        """The safetensors metadata (string -> string); needs the normaliser."""
        where = self.name or self.architecture
        if self.normalizer is None:
            raise ModelSpecError(f"{where}: a model description needs its normaliser before it is written")
        try:
            options = json.dumps(dict(self.model_options), sort_keys=True)
        except (TypeError, ValueError) as exc:
            raise ModelSpecError(f"{where}: model_options are not JSON values ({exc})") from None
        return {
            "format": MODEL_FORMAT,
            "architecture": self.architecture,
            "model_options": options,
            "in_shape": json.dumps(list(self.in_shape)),
            "num_classes": str(self.num_classes),
            "class_names": json.dumps(list(self.class_names)),
            "normalizer": json.dumps(self.normalizer.to_dict()),
            "method": self.method,
            "name": self.name,
            "deepmimic_version": self.version,
        }

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, str], where: str | Path) -> ModelDescription:
        """Read a description back; a missing or malformed field is a one-line
        :class:`ModelSpecError` naming ``where``."""
        meta = dict(metadata)
        if meta.get("format") == LEGACY_BUNDLE_FORMAT:  # a 0.1 standalone bundle: same fields, older names
            meta = {**meta, "format": MODEL_FORMAT, "architecture": meta.get("architecture", meta.get("model", ""))}
        for key in REQUIRED_KEYS:
            if not meta.get(key):
                raise ModelSpecError(
                    f"{where}: no '{key}' in its metadata (written by an older deepmimic, or trained without a "
                    "model description); run the run's config again with --resume (finished stages keep their "
                    "checkpoint and are not retrained, only their weights are rewritten with it), or retrain the stage"
                )
        if meta["format"] != MODEL_FORMAT:
            raise ModelSpecError(
                f"{where}: unknown model format '{meta['format']}' (this deepmimic {__version__} reads "
                f"'{MODEL_FORMAT}'); upgrade deepmimic"
            )
        try:
            in_shape = tuple(int(v) for v in json.loads(meta["in_shape"]))
            num_classes = int(meta["num_classes"])
            options = json.loads(meta.get("model_options") or "{}")
            class_names = tuple(str(n) for n in json.loads(meta.get("class_names") or "[]"))
            norm = json.loads(meta["normalizer"])
            normalizer = Normalizer(tuple(float(v) for v in norm["mean"]), tuple(float(v) for v in norm["std"]))
        except (KeyError, ValueError, TypeError) as exc:
            raise ModelSpecError(
                f"{where}: malformed model metadata ({type(exc).__name__}: {_first_line(exc)})"
            ) from None
        if not isinstance(options, dict):
            raise ModelSpecError(f"{where}: malformed model metadata (model_options is not a JSON object)")
        try:
            return cls(
                architecture=meta["architecture"],
                in_shape=in_shape,
                num_classes=num_classes,  # type: ignore[arg-type]
                model_options=options,
                class_names=class_names if len(class_names) == num_classes else (),
                name=meta.get("name", ""),
                method=meta.get("method", ""),
                normalizer=normalizer,
                version=meta.get("deepmimic_version", ""),
            )
        except ModelSpecError as exc:
            raise ModelSpecError(f"{where}: malformed model metadata ({exc})") from None


def weights_metadata(description: ModelDescription | None, normalizer: Normalizer, method: str) -> dict[str, str]:
    """The metadata the trainer writes into ``weights.safetensors``.

    With a ``description``: all of it (see the module doc). Without one (a bare
    :func:`~deepmimic.engine.trainer.fit` call) only what the trainer knows itself, the
    normaliser, method and version; such a file holds weights but does not load with
    :func:`~deepmimic.models.bundle.load_trained`.
    """
    if description is not None:
        return description.with_training(normalizer, method).to_metadata()
    return {"normalizer": json.dumps(normalizer.to_dict()), "method": method, "deepmimic_version": __version__}


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
