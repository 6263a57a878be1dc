"""Load a trained model back from a finished run (or from a standalone bundle file).

``load_trained(path)`` accepts:

* a **stage folder** of a finished run, the folder holding ``weights.safetensors``:
  ``<run>/mentor``, ``<run>/students/<slug>`` (DeepMimic pipeline) or ``<run>/<slug>``
  (FEED pipeline), where ``<slug>`` is :func:`deepmimic.io_utils.slugify` of the stage's
  name. The run's ``config.yaml`` (and ``results.json``) are found in the parent folders;
  the stage's architecture and options come from the config, the normalisation statistics
  from the weights' metadata (written by the trainer) or from ``results.json``;
* the ``weights.safetensors`` file of such a folder (same as its folder);
* a **standalone bundle** written by :func:`save_bundle`: one safetensors file whose
  metadata records the architecture, options, input shape, classes and normalisation,
  so it loads without the run around it.

Only safe formats are read (safetensors, YAML with ``safe_load``, JSON): nothing is
unpickled. Every problem a user can cause raises :class:`ModelSpecError` with a one-line
message naming the path.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from deepmimic.data.batches import Normalizer
from deepmimic.errors import DeepMimicError, ModelSpecError
from deepmimic.io_utils import atomic_path, slugify

WEIGHTS_FILE = "weights.safetensors"
BUNDLE_FORMAT = "deepmimic-bundle/1"

# Datasets whose image shape and class count never vary (so no data is read to know them).
_FIXED_DATASETS: dict[str, tuple[tuple[int, int, int], int]] = {
    "mnist-5k": ((1, 28, 28), 10),
    "mnist": ((1, 28, 28), 10),
    "fashion-mnist": ((1, 28, 28), 10),
    "cifar10": ((3, 32, 32), 10),
    "cifar100": ((3, 32, 32), 100),
}
# Fixed image shape, variable class count (a Tiny ImageNet folder may hold a class subset).
_FIXED_SHAPES: dict[str, tuple[int, int, int]] = {"tiny-imagenet": (3, 64, 64)}


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
    """Rebuild a trained model from a run's stage folder or a standalone bundle (see module doc).

    Raises :class:`ModelSpecError` (one line) when the path is missing, holds no weights,
    has no run config above it, names no stage of that run, or when the weights do not
    fit the architecture.
    """
    p = Path(path)
    if not p.exists():
        raise ModelSpecError(f"{p}: no such file or folder")
    if p.is_file():
        metadata = _read_metadata(p)
        if metadata.get("format") == BUNDLE_FORMAT:
            return _load_bundle(p, metadata)
        if p.name != WEIGHTS_FILE:
            raise ModelSpecError(
                f"{p}: not a deepmimic bundle (no '{BUNDLE_FORMAT}' metadata) nor a stage's {WEIGHTS_FILE}"
            )
        p = p.parent
    weights = p / WEIGHTS_FILE
    if not weights.is_file():
        if (p / "checkpoint.pt").is_file():
            hint = " (the stage has not finished training)"
        elif (p / "config.yaml").is_file():
            stages = sorted(w.parent.relative_to(p).as_posix() for w in p.glob(f"**/{WEIGHTS_FILE}"))
            hint = f" (this is a run folder; its trained stages: {', '.join(stages) or 'none yet'})"
        else:
            hint = ""
        raise ModelSpecError(f"{p}: no {WEIGHTS_FILE} in this folder{hint}; pass a trained stage folder such as <run>/mentor")
    run_dir, stage_key = _find_run(p)
    config = _read_yaml(run_dir / "config.yaml")
    results = _read_results(run_dir / "results.json")
    name, architecture, options = _find_stage(config, results, stage_key, p)
    metadata = _read_metadata(weights)
    normalizer = _normalizer(metadata, results, weights)
    in_shape, num_classes = _data_shape(config, results, metadata, weights, run_dir)
    class_names = tuple(str(n) for n in ((results or {}).get("data") or {}).get("class_names") or ())
    model = _build(architecture, in_shape, num_classes, options, weights)
    if len(normalizer.mean) != in_shape[0]:
        raise ModelSpecError(f"{weights}: normaliser has {len(normalizer.mean)} channels but the input has {in_shape[0]}")
    return TrainedModel(
        model=model, normalizer=normalizer, num_classes=num_classes, in_shape=in_shape, name=name,
        architecture=architecture, model_options=dict(options),
        class_names=class_names if len(class_names) == num_classes else (), source=p,
    )


def save_bundle(trained: TrainedModel, path: str | Path) -> Path:
    """Write ``trained`` as one standalone safetensors file that :func:`load_trained` reads back.

    The metadata records the architecture, model options, input shape, class count (and
    names), normalisation and name. Written atomically.
    """
    out = Path(path)
    if not trained.architecture:
        raise ModelSpecError(f"{trained.name}: unknown architecture, cannot write a bundle")
    metadata = {
        "format": BUNDLE_FORMAT,
        "name": trained.name,
        "model": trained.architecture,
        "model_options": json.dumps(dict(trained.model_options)),
        "in_shape": json.dumps(list(trained.in_shape)),
        "num_classes": str(trained.num_classes),
        "class_names": json.dumps(list(trained.class_names)),
        "normalizer": json.dumps(trained.normalizer.to_dict()),
    }
    tensors = {k: v.detach().cpu().contiguous() for k, v in trained.model.state_dict().items()}
    if out.is_dir():
        raise ModelSpecError(f"{out}: is a folder; give a file name such as student.safetensors")
    try:
        with atomic_path(out) as tmp:
            save_file(tensors, str(tmp), metadata=metadata)
    except OSError as exc:
        raise ModelSpecError(f"{out}: cannot write bundle ({exc.strerror or exc})") from exc
    return out


def _load_bundle(path: Path, metadata: dict[str, str]) -> TrainedModel:
    try:
        architecture = metadata["model"]
        options = json.loads(metadata.get("model_options", "{}"))
        in_shape = tuple(int(v) for v in json.loads(metadata["in_shape"]))
        num_classes = int(metadata["num_classes"])
        class_names = tuple(str(n) for n in json.loads(metadata.get("class_names", "[]")))
        norm = json.loads(metadata["normalizer"])
        normalizer = Normalizer(tuple(float(v) for v in norm["mean"]), tuple(float(v) for v in norm["std"]))
    except (KeyError, ValueError, TypeError) as exc:
        raise ModelSpecError(f"{path}: malformed bundle metadata ({type(exc).__name__}: {exc})") from None
    if len(in_shape) != 3 or not isinstance(options, dict):
        raise ModelSpecError(f"{path}: malformed bundle metadata (in_shape {in_shape}, model_options {options!r})")
    model = _build(architecture, in_shape, num_classes, options, path)  # type: ignore[arg-type]
    return TrainedModel(
        model=model, normalizer=normalizer, num_classes=num_classes, in_shape=in_shape,  # type: ignore[arg-type]
        name=metadata.get("name") or path.stem, architecture=architecture, model_options=options,
        class_names=class_names if len(class_names) == num_classes else (), source=path,
    )


# --------------------------------------------------------------------------- helpers


def _read_metadata(path: Path) -> dict[str, str]:
    try:
        with safe_open(str(path), framework="pt") as handle:
            return dict(handle.metadata() or {})
    except Exception as exc:  # not safetensors, truncated, unreadable
        raise ModelSpecError(f"{path}: not a readable safetensors file ({_first_line(exc)})") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _find_run(stage_dir: Path) -> tuple[Path, str]:
    """The run folder above ``stage_dir`` (holding config.yaml) and the stage's path below it."""
    stage_dir = stage_dir.resolve()
    for run_dir in list(stage_dir.parents)[:3]:
        if (run_dir / "config.yaml").is_file():
            return run_dir, stage_dir.relative_to(run_dir).as_posix()
    raise ModelSpecError(
        f"{stage_dir}: no run config (config.yaml) in the folders above; "
        "pass a stage folder of a finished run (<run>/mentor, <run>/students/<name>) or a bundle file"
    )


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ModelSpecError(f"{path}: cannot read the run config ({' '.join(str(exc).split())})") from None
    if not isinstance(raw, dict):
        raise ModelSpecError(f"{path}: the run config is not a mapping")
    return raw


def _read_results(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelSpecError(f"{path}: not valid JSON ({exc})") from None
    return payload if isinstance(payload, dict) else None


def _stage_fields(stage: Any, where: str) -> tuple[str, str, dict[str, Any]]:
    if not isinstance(stage, dict) or not isinstance(stage.get("model"), str):
        raise ModelSpecError(f"{where}: stage has no 'model' in the run config")
    options = stage.get("model_options") or {}
    if not isinstance(options, dict):
        raise ModelSpecError(f"{where}: model_options is not a mapping")
    return str(stage.get("name", "")), stage["model"], options


def _find_stage(
    config: dict[str, Any], results: dict[str, Any] | None, key: str, stage_dir: Path
) -> tuple[str, str, dict[str, Any]]:
    """(stage name, architecture, model options) of the stage at ``key`` below the run folder."""
    if config.get("pipeline", "deepmimic") == "feed":
        if "/" not in key:
            names = [str(r.get("name")) for r in (results or {}).get("rows") or [] if isinstance(r, dict)]
            name = next((n for n in names if slugify(n) == key), key)
            options = config.get("model_options") or {}
            if isinstance(config.get("model"), str) and isinstance(options, dict):
                return name, config["model"], options
        raise ModelSpecError(f"{stage_dir}: not a stage of this FEED run (stages are <run>/<slug of the model name>)")
    if key == "mentor":
        name, arch, options = _stage_fields(config.get("mentor"), f"{stage_dir}")
        return name or "Mentor", arch, options
    students = config.get("students") or []
    if key.startswith("students/") and key.count("/") == 1:
        slug = key.split("/", 1)[1]
        for stage in students:
            if isinstance(stage, dict) and slugify(str(stage.get("name", ""))) == slug:
                return _stage_fields(stage, f"{stage_dir}")
    known = ["mentor"] + [f"students/{slugify(str(s.get('name', '')))}" for s in students if isinstance(s, dict)]
    raise ModelSpecError(f"{stage_dir}: stage '{key}' not found in the run config (stages: {', '.join(known)})")


def _normalizer(metadata: dict[str, str], results: dict[str, Any] | None, where: Path) -> Normalizer:
    raw: Any = None
    if "normalizer" in metadata:
        try:
            raw = json.loads(metadata["normalizer"])
        except json.JSONDecodeError:
            raw = None
    if raw is None:
        raw = ((results or {}).get("data") or {}).get("normalizer")
    try:
        return Normalizer(tuple(float(v) for v in raw["mean"]), tuple(float(v) for v in raw["std"]))
    except (TypeError, KeyError, ValueError):
        raise ModelSpecError(
            f"{where}: no normalisation statistics (neither in the weights' metadata nor in results.json)"
        ) from None


def _data_shape(
    config: dict[str, Any], results: dict[str, Any] | None, metadata: dict[str, str], weights: Path, run_dir: Path
) -> tuple[tuple[int, int, int], int]:
    """(in_shape, num_classes): recorded values first, then known datasets, then the data itself."""
    data_results = (results or {}).get("data") or {}
    data_config = config.get("data") or {}
    dataset = str(data_config.get("name", ""))
    in_shape: tuple[int, ...] | None = None
    num_classes: int | None = None
    for source in (data_results.get("in_shape"), metadata.get("in_shape")):
        if in_shape is None and source is not None:
            try:
                in_shape = tuple(int(v) for v in (json.loads(source) if isinstance(source, str) else source))
            except (TypeError, ValueError):
                in_shape = None
    if isinstance(data_results.get("class_names"), list):
        num_classes = len(data_results["class_names"])
    elif isinstance(((results or {}).get("mentor") or {}).get("confusion"), list):
        num_classes = len(results["mentor"]["confusion"])  # type: ignore[index]
    if dataset in _FIXED_DATASETS:
        fixed_shape, fixed_classes = _FIXED_DATASETS[dataset]
        in_shape = in_shape or fixed_shape
        num_classes = num_classes or fixed_classes
    if dataset in _FIXED_SHAPES:
        in_shape = in_shape or _FIXED_SHAPES[dataset]
    if in_shape is None or num_classes is None:
        in_shape, num_classes = _shape_from_data(data_config, run_dir, in_shape, num_classes)
    if len(in_shape) != 3 or min(in_shape) <= 0:
        raise ModelSpecError(f"{weights}: invalid input shape {in_shape}")
    return in_shape, num_classes  # type: ignore[return-value]


def _shape_from_data(
    data_config: dict[str, Any], run_dir: Path, in_shape: tuple[int, ...] | None, num_classes: int | None
) -> tuple[tuple[int, ...], int]:
    """Read the run's dataset (as its config names it) to learn the image shape and classes."""
    from deepmimic.data import load_dataset  # noqa: PLC0415 (only needed for npz / image folders)

    name = data_config.get("name")
    root = data_config.get("root")
    options = data_config.get("options") or {}
    candidates = [root]
    if root is not None and not Path(root).is_absolute():
        candidates.append(str(run_dir / root))  # a path relative to the run folder
    last: Exception | None = None
    for candidate in candidates:
        try:
            data = load_dataset(str(name), candidate, **options)
        except DeepMimicError as exc:
            last = exc
            continue
        return in_shape or data.test.in_shape, num_classes or data.test.num_classes
    raise ModelSpecError(
        f"{run_dir}: cannot tell the model's input shape and classes: results.json does not record them "
        f"and the run's dataset '{name}' cannot be read ({last})"
    )


def _build(
    architecture: str, in_shape: tuple[int, int, int], num_classes: int, options: dict[str, Any], weights: Path
) -> nn.Module:
    """create_model + load the safetensors weights; the model comes back on the CPU in eval mode."""
    from deepmimic.models.registry import create_model  # noqa: PLC0415 (models/__init__ imports this module's package)

    model = create_model(architecture, tuple(in_shape), num_classes, **options)
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
