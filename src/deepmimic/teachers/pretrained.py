"""A pretrained PyTorch model you already have, as a teacher.

A checkpoint, TorchScript, ``torch.export``, or your own factory:

==================================  ============================================================
spec                                what is loaded
==================================  ============================================================
``ARCH:CHECKPOINT``                 a zoo preset or architecture notation (``deepmimic models``)
                                    built fresh, then its weights from ``CHECKPOINT`` (a
                                    ``state_dict`` saved with ``torch.save``, or ``.safetensors``)
``model.ts`` / ``.torchscript``     a TorchScript file (``torch.jit.save``)
``model.pt2``                       a ``torch.export`` program (``torch.export.save``)
``package.module:factory``          ``factory()`` from an importable module returns the
                                    ``nn.Module``; option ``weights=PATH`` loads a checkpoint
==================================  ============================================================

Safety: a checkpoint is read with ``torch.load(..., weights_only=True)`` (or safetensors), so a
file that needs arbitrary objects unpickled is refused. A TorchScript or ``.pt2`` file holds
the model's own graph and runs it, and an entry point IMPORTS THE NAMED MODULE, which runs its
top-level code: name only code you trust. A config file is still never executed; it can only
name such a module.

Checkpoint keys: a nested ``state_dict`` / ``model`` entry and a ``module.`` prefix (from
``DataParallel``) are found automatically. Keys are then matched by name; ``rename=OLD=NEW,...``
renames key prefixes first. If the names still differ, a structural match is tried and
verified: the checkpoint's tensors, in order, must have exactly the shapes of the model's, in
order (``num_batches_tracked`` counters may be absent), every tensor used once; otherwise a
one-line error lists what did not fit.

Every pretrained model is a white-box teacher: logits, input gradients and feature maps by
module name (the module is the one ``deepmimic layers`` lists). Its input normalisation is its
own: options ``mean=`` and ``std=`` (per channel, on pixels scaled to [0, 1]; default 0 and 1).
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from deepmimic.data.batches import Normalizer
from deepmimic.errors import TeacherError

CHECKPOINT_SUFFIXES = (".th", ".pt", ".pth", ".ckpt", ".bin", ".safetensors")
TORCHSCRIPT_SUFFIXES = (".ts", ".torchscript", ".jit")
EXPORT_SUFFIXES = (".pt2",)
OPTIONS = ("mean", "std", "num_classes", "in_shape", "rename", "weights")
_ENTRY_POINT = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


@dataclass(frozen=True)
class PretrainedModel:
    """A loaded pretrained classifier.

    ``model`` (CPU, eval mode) maps inputs normalised by ``normalizer`` (``(x / 255 - mean) /
    std``) of shape (B, C, H, W) to logits (B, ``num_classes``).
    """

    model: nn.Module
    normalizer: Normalizer
    num_classes: int
    in_shape: tuple[int, int, int] | None
    source: str


def pretrained_kind(spec: str) -> str | None:
    """``checkpoint``, ``torchscript``, ``export`` or ``entry_point`` for a pretrained model spec, else None."""
    lowered = spec.lower()
    if lowered.startswith(("http://", "https://")):
        return None
    if lowered.endswith(TORCHSCRIPT_SUFFIXES):
        return "torchscript"
    if lowered.endswith(EXPORT_SUFFIXES):
        return "export"
    arch, sep, rest = spec.partition(":")
    if not sep or not arch:
        return None
    if rest.lower().endswith(CHECKPOINT_SUFFIXES) or Path(rest).expanduser().is_file():
        return "checkpoint"
    if _ENTRY_POINT.match(spec) and not Path(spec).exists():
        return "entry_point"
    return None


def _floats(options: Mapping[str, str], key: str) -> tuple[float, ...] | None:
    if key not in options:
        return None
    try:
        return tuple(float(v) for v in options[key].split(","))
    except ValueError:
        raise TeacherError(
            f"pretrained teacher option {key} expects numbers separated by commas, got '{options[key]}'"
        ) from None


def _integer(options: Mapping[str, str], key: str) -> int | None:
    if key not in options:
        return None
    try:
        value = int(options[key])
    except ValueError:
        raise TeacherError(f"pretrained teacher option {key} expects an integer, got '{options[key]}'") from None
    if value < 1:
        raise TeacherError(f"pretrained teacher option {key} must be at least 1, got {value}")
    return value


def _in_shape(options: Mapping[str, str]) -> tuple[int, int, int] | None:
    shape = _floats(options, "in_shape")
    if shape is None:
        return None
    if len(shape) != 3 or any(d < 1 or d != int(d) for d in shape):
        raise TeacherError(
            f"pretrained teacher option in_shape expects C,H,W (e.g. 3,32,32), got '{options['in_shape']}'"
        )
    return int(shape[0]), int(shape[1]), int(shape[2])


def _renames(options: Mapping[str, str]) -> list[tuple[str, str]]:
    pairs = []
    for item in filter(None, (p.strip() for p in options.get("rename", "").split(","))):
        old, sep, new = item.partition("=")
        if not sep or not old:
            raise TeacherError(f"pretrained teacher option rename expects OLD=NEW,... key prefixes, got '{item}'")
        pairs.append((old, new))
    return pairs


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """A checkpoint file's tensors, loaded safely; nested ``state_dict``/``model`` and ``module.`` are unwrapped."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise TeacherError(f"{path}: no such checkpoint file")
    if path.suffix.lower() == ".safetensors":
        from safetensors.torch import load_file  # noqa: PLC0415 (only for .safetensors checkpoints)

        try:
            payload: Any = load_file(str(path))
        except Exception as exc:  # noqa: BLE001 (safetensors raises its own types for a corrupt file)
            raise TeacherError(f"{path}: not a readable safetensors file ({type(exc).__name__})") from None
    else:
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 (the unpickler raises many types)
            # Every failure under weights_only=True mentions weights_only (random bytes too); an object the safe
            # unpickler refuses shows as "Unsupported global: GLOBAL module.Name", deep in a long message.
            reason = " ".join(str(exc).split())
            needed = re.search(r"GLOBAL ([\w.]+)", reason)
            if needed or "Unsupported global" in reason:
                what = f" ({needed.group(1)})" if needed else ""
                raise TeacherError(
                    f"{path}: refused: the file needs arbitrary Python objects{what} unpickled, which can run code; "
                    "save a plain state_dict (torch.save(model.state_dict(), path)) or use safetensors"
                ) from None
            raise TeacherError(f"{path}: not a readable PyTorch checkpoint ({type(exc).__name__})") from None
    for _ in range(3):  # {"state_dict": {...}} / {"model": {...}}, possibly nested once more
        if isinstance(payload, Mapping) and not any(isinstance(v, torch.Tensor) for v in payload.values()):
            inner = next(
                (
                    payload[k]
                    for k in ("state_dict", "model", "model_state_dict")
                    if isinstance(payload.get(k), Mapping)
                ),
                None,
            )
            if inner is None:
                break
            payload = inner
    if not isinstance(payload, Mapping):
        raise TeacherError(
            f"{path}: expected a state_dict (a mapping of names to tensors), got {type(payload).__name__}"
        )
    tensors = {str(k): v for k, v in payload.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise TeacherError(f"{path}: holds no tensors (expected a state_dict)")
    if all(k.startswith("module.") for k in tensors):
        tensors = {k.removeprefix("module."): v for k, v in tensors.items()}
    return tensors


def match_state_dict(
    model: nn.Module, tensors: Mapping[str, torch.Tensor], renames: list[tuple[str, str]], source: str
) -> tuple[dict[str, torch.Tensor], str]:
    """The checkpoint's tensors under the model's key names, and how they were matched (``names`` or ``structure``).

    By name (after prefix ``renames``) when every model key is found with its shape; else by
    structure: the tensors in order must have the shapes of the model's in order, each used once.
    """
    renamed = {}
    for key, value in tensors.items():
        for old, new in renames:
            if key.startswith(old):
                key = new + key[len(old) :]
                break
        renamed[key] = value
    expected = model.state_dict()
    optional = {k for k in expected if k.endswith("num_batches_tracked")}
    required = [k for k in expected if k not in optional or k in renamed]
    if set(renamed) <= set(expected) and set(required) <= set(renamed):
        wrong = [k for k in renamed if tuple(renamed[k].shape) != tuple(expected[k].shape)]
        if not wrong:
            return {k: renamed[k] for k in renamed}, "names"
        if renames:
            shapes = ", ".join(f"{k} {tuple(renamed[k].shape)} vs {tuple(expected[k].shape)}" for k in wrong[:3])
            raise TeacherError(f"{source}: tensors of the wrong shape for the model: {shapes}")
    if renames:
        missing, extra = sorted(set(required) - set(renamed)), sorted(set(renamed) - set(expected))
        raise TeacherError(
            f"{source}: after renaming, the checkpoint does not fit the model: "
            f"missing {', '.join(missing[:4]) or '-'}; unexpected {', '.join(extra[:4]) or '-'}"
        )
    # Structural match: same order, same shapes, every tensor once.
    ours = [k for k in expected if k not in optional]
    theirs = [k for k in tensors if not k.endswith("num_batches_tracked")]
    if len(ours) != len(theirs):
        raise TeacherError(
            f"{source}: the checkpoint's {len(theirs)} tensors do not fit the model's {len(ours)} "
            f"(missing: {', '.join(sorted(set(ours) - set(theirs))[:3]) or '-'}; "
            f"not in the model: {', '.join(sorted(set(theirs) - set(ours))[:3]) or '-'}); "
            "check the architecture, or pass rename=OLD=NEW,..."
        )
    misfits = [(a, b) for a, b in zip(ours, theirs) if tuple(expected[a].shape) != tuple(tensors[b].shape)]
    if misfits:
        a, b = misfits[0]
        raise TeacherError(
            f"{source}: no structural match: tensor {theirs.index(b) + 1} '{b}' {tuple(tensors[b].shape)} "
            f"vs the model's '{a}' {tuple(expected[a].shape)} ({len(misfits)} misfit(s)); "
            "check the architecture, or pass rename=OLD=NEW,..."
        )
    return {a: tensors[b] for a, b in zip(ours, theirs)}, "structure"


def _load_checkpoint_model(spec: str, options: Mapping[str, str]) -> tuple[nn.Module, str]:
    from deepmimic.errors import DeepMimicError  # noqa: PLC0415
    from deepmimic.models import create_model  # noqa: PLC0415 (models only when a checkpoint names one)

    arch, _, path = spec.partition(":")
    tensors = read_state_dict(path)
    num_classes = _integer(options, "num_classes")
    if num_classes is None:  # the last 2-D weight is the classifier's (K, features)
        weights = [v for k, v in tensors.items() if k.endswith("weight") and v.dim() == 2]
        num_classes = int(weights[-1].shape[0]) if weights else None
    try:
        model = create_model(arch, _in_shape(options), num_classes)
    except DeepMimicError as exc:
        raise TeacherError(f"teacher '{spec}': {exc}") from None
    matched, how = match_state_dict(model, tensors, _renames(options), spec)
    model.load_state_dict(matched, strict=False)
    return model, how


def _load_entry_point(spec: str, options: Mapping[str, str]) -> tuple[nn.Module, str]:
    module_name, _, factory_name = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise TeacherError(f"teacher '{spec}': cannot import module '{module_name}' ({exc})") from None
    factory = getattr(module, factory_name, None)
    if not callable(factory):
        raise TeacherError(f"teacher '{spec}': module '{module_name}' has no callable '{factory_name}'")
    try:
        model = factory()
    except Exception as exc:  # noqa: BLE001 (the user's own code: any failure is theirs to see, in one line)
        raise TeacherError(f"teacher '{spec}': {factory_name}() raised {type(exc).__name__}: {exc}") from None
    if not isinstance(model, nn.Module):
        raise TeacherError(f"teacher '{spec}': {factory_name}() returned {type(model).__name__}, not a torch.nn.Module")
    how = "factory"
    if "weights" in options:
        matched, how = match_state_dict(model, read_state_dict(options["weights"]), _renames(options), spec)
        model.load_state_dict(matched, strict=False)
    return model, how


def _load_program(spec: str, kind: str) -> nn.Module:
    path = Path(spec).expanduser()
    if not path.is_file():
        raise TeacherError(f"{spec}: no such file")
    try:
        if kind == "torchscript":
            return torch.jit.load(str(path), map_location="cpu")
        program = torch.export.load(str(path))
        module = program.module()
    except Exception as exc:  # noqa: BLE001 (both loaders raise many types for a bad file)
        what = "TorchScript" if kind == "torchscript" else "torch.export (.pt2)"
        raise TeacherError(f"{spec}: not a readable {what} file ({' '.join(str(exc).split())[:160]})") from None
    # A program exported without dynamic_shapes only accepts its example's batch size (a guard fails otherwise).
    user_inputs = program.graph_signature.user_inputs
    first = next((n for n in program.graph.nodes if n.op == "placeholder" and n.name in user_inputs), None)
    shape = getattr(first.meta.get("val"), "shape", ()) if first is not None else ()
    if len(shape) > 0 and isinstance(shape[0], int):
        raise TeacherError(
            f"{spec}: exported for batches of exactly {shape[0]} images; export with a dynamic batch dimension: "
            "torch.export.export(model, (x,), dynamic_shapes=({0: torch.export.Dim('batch')},))"
        )
    # ExportedProgram.module() makes train()/eval() raise NotImplementedError; its graph's mode was fixed at
    # export, so restore nn.Module's methods (they only set the flag) for callers that put teachers in eval mode.
    for name in ("train", "eval"):
        module.__dict__.pop(name, None)
    return module


def load_pretrained(spec: str, options: Mapping[str, str] | None = None) -> PretrainedModel:
    """Load the pretrained model ``spec`` names (see the module docstring), configured by string ``options``."""
    options = dict(options or {})
    kind = pretrained_kind(spec)
    if kind is None:
        raise TeacherError(
            f"teacher '{spec}': not a pretrained model spec (ARCH:CHECKPOINT, .ts, .pt2, module:factory)"
        )
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise TeacherError(
            f"unknown option(s) {', '.join(unknown)} for pretrained teacher '{spec}'; known: {', '.join(OPTIONS)}"
        )
    if kind == "checkpoint":
        model, how = _load_checkpoint_model(spec, options)
    elif kind == "entry_point":
        model, how = _load_entry_point(spec, options)
    else:
        model, how = _load_program(spec, kind), kind
    model = model.cpu().eval()
    in_shape = _in_shape(options) or getattr(model, "in_shape", None)
    channels = in_shape[0] if in_shape else 3
    mean = _floats(options, "mean") or (0.0,) * channels
    std = _floats(options, "std") or (1.0,) * channels
    if len(mean) != len(std) or (in_shape and len(mean) != in_shape[0]):
        raise TeacherError(
            f"teacher '{spec}': mean and std need one value per input channel ({channels}), "
            f"got {len(mean)} and {len(std)}"
        )
    if any(s <= 0 for s in std):
        raise TeacherError(f"teacher '{spec}': std values must be above 0")
    num_classes = _integer(options, "num_classes") or _probe_classes(model, in_shape, spec)
    source = f"{spec} ({how} match)" if kind in ("checkpoint", "entry_point") and how != "factory" else spec
    return PretrainedModel(
        model,
        Normalizer(tuple(mean), tuple(std)),
        num_classes,
        tuple(int(d) for d in in_shape) if in_shape else None,
        source,
    )


def _probe_classes(model: nn.Module, in_shape: tuple[int, ...] | None, spec: str) -> int:
    """The logits' width, from one zero image (needs ``in_shape``)."""
    num_classes = getattr(model, "num_classes", None)
    if isinstance(num_classes, int):
        return num_classes
    if in_shape is None:
        raise TeacherError(f"teacher '{spec}': pass option in_shape=C,H,W (or num_classes=K) to learn its class count")
    with torch.no_grad():
        logits = model(torch.zeros(1, *in_shape))
    if not isinstance(logits, torch.Tensor) or logits.dim() != 2:
        raise TeacherError(
            f"teacher '{spec}': expected (B, K) logits from the model, got {getattr(logits, 'shape', type(logits))}"
        )
    return int(logits.shape[1])


class Renormalized(nn.Module):
    """A pretrained ``model`` fed inputs normalised for another model: (B, C, H, W) -> (B, K) logits.

    The student's batches are ``(x/255 - m_s) / s_s``; the teacher wants ``(x/255 - m_t) / s_t``:
    ``x_t = (x_s * s_s + m_s - m_t) / s_t``, one affine map per channel, differentiable (so input
    gradients of the teacher are with respect to the student's inputs).
    Feature layers keep their names under ``model.`` (e.g. ``model.layer3``).
    """

    def __init__(self, model: nn.Module, inputs: Normalizer, teacher: Normalizer) -> None:
        super().__init__()
        self.model = model
        s_mean, s_std = torch.tensor(inputs.mean), torch.tensor(inputs.std)
        t_mean, t_std = torch.tensor(teacher.mean), torch.tensor(teacher.std)
        self.register_buffer("scale", (s_std / t_std).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("shift", ((s_mean - t_mean) / t_std).view(1, -1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x * self.scale + self.shift)
