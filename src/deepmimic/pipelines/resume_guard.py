"""What each stage's result depends on, recorded beside it and compared on ``--resume``.

A resumed run reuses a stage's checkpoint (or its finished weights) only when everything
that determined that stage's result is unchanged. Each stage folder holds ``inputs.json``:

* the data: dataset name, resolved root, reader options, subsets, and a SHA-256 content
  fingerprint of exactly the images (and labels) the stage learns from;
* the split: labelled fraction and seed; for students also removal and out-of-domain settings;
* the model and its options, the method and its options, where the targets come from;
* the training settings, except those that may change without changing the result
  (device, evaluation cadence, speed switches: :data:`deepmimic.engine.trainer.RESUMABLE_CHANGES`);
  a changed ``epochs`` extends or refuses in the engine (docs/reliability.md);
* for a stage that learns from another (a student from its mentor), that teacher's inputs,
  epochs included: a retrained or extended mentor makes its students' soft labels stale.

:func:`check_resume` runs before the run writes anything. It refuses, with one line naming
the stage and what changed, a resume whose stage inputs differ, unless the user asked to
retrain that stage with ``--restart-stage NAME`` (which also retrains every stage that
learns from it). :func:`clear_stages` then removes the restarted stages' files and
:func:`record_inputs` writes a stage's ``inputs.json`` just before it trains.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from deepmimic import distributed
from deepmimic.engine.checkpoint import load_checkpoint
from deepmimic.engine.trainer import CHECKPOINT_NAME, RESUMABLE_CHANGES
from deepmimic.errors import ConfigError, TrainingError
from deepmimic.io_utils import write_json
from deepmimic.yaml_safe import load_yaml

INPUTS_NAME = "inputs.json"
# Files of a trained stage: any of them means the stage has (partly) run.
_STAGE_FILES = ("checkpoint.pt", "weights.safetensors", "metrics.jsonl", INPUTS_NAME)
RESTART_ALL = "all"


@dataclass(frozen=True)
class Stage:
    """One trainable stage of a pipeline: its name (as ``--restart-stage`` takes it), folder and inputs."""

    name: str
    run_dir: Path
    inputs: dict[str, Any]  # JSON-able: everything that determines the stage's result
    depends_on: tuple[str, ...] = ()  # names of the stages it learns from
    epochs: int | None = None  # the epochs asked for now: a checkpoint already past them is refused


# Store options that change how rows are read, not which: a run may resume with others.
HOW_A_STORE_IS_READ = frozenset({"stream", "verify"})


def data_record(data: Any, content: str) -> dict[str, Any]:
    """What every stage records of its data: a :class:`deepmimic.config.DataConfig` (name,
    resolved root, reader options, subsets) and the SHA-256 ``content`` of the images and labels."""
    root = str(Path(data.root).expanduser().resolve()) if data.root else None
    options = {k: v for k, v in data.options.items() if not (data.name == "store" and k in HOW_A_STORE_IS_READ)}
    return {
        "name": data.name,
        "root": root,
        "options": options,
        "train_subset": data.train_subset,
        "test_subset": data.test_subset,
        "fingerprint": content,
    }


def train_record(settings: Any) -> dict[str, Any]:
    """The training settings that change what a stage computes (:class:`TrainSettings` without
    :data:`RESUMABLE_CHANGES`)."""
    return {k: v for k, v in settings.model_dump(mode="json").items() if k not in RESUMABLE_CHANGES}


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``; lists stay values (compared whole)."""
    if isinstance(value, dict) and value:
        flat: dict[str, Any] = {}
        for key, inner in value.items():
            flat.update(_flatten(inner, f"{prefix}.{key}" if prefix else str(key)))
        return flat
    return {prefix: value}


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True) if not isinstance(value, str) else value
    if len(text) == 64 and all(c in "0123456789abcdef" for c in text):  # a sha256 fingerprint
        return text[:12]
    return text if len(text) <= 40 else text[:37] + "..."


_MISSING = object()


def differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Human-readable changes between two inputs records: ``["split.seed 0 -> 7", ...]``."""
    a, b = _flatten(json.loads(json.dumps(old))), _flatten(json.loads(json.dumps(new)))
    changes = []
    for key in list(dict.fromkeys([*a, *b])):
        before, after = a.get(key, _MISSING), b.get(key, _MISSING)
        if before == after:
            continue
        if before is _MISSING:
            changes.append(f"{key} added ({_short(after)})")
        elif after is _MISSING:
            changes.append(f"{key} removed (was {_short(before)})")
        else:
            changes.append(f"{key} {_short(before)} -> {_short(after)}")
    return changes


def has_run(run_dir: Path) -> bool:
    """Whether a stage folder holds anything a resume would reuse."""
    return any((run_dir / name).exists() for name in _STAGE_FILES)


def _read_inputs(path: Path) -> dict[str, Any] | None:
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise TrainingError(
            f"{path}: unreadable record of the stage's inputs ({type(exc).__name__}); "
            "move the folder aside or pass --restart-stage"
        ) from exc
    return record if isinstance(record, dict) else None


def restart_set(stages: Sequence[Stage], restart: Iterable[str]) -> set[str]:
    """The stages to retrain: those named (``all`` = every stage) and every stage that learns from them."""
    names = [s.name for s in stages]
    wanted = set()
    for name in restart:
        if name == RESTART_ALL:
            wanted.update(names)
        elif name not in names:
            raise ConfigError(f"--restart-stage {name}: no such stage; stages: {', '.join(names)} (or {RESTART_ALL})")
        else:
            wanted.add(name)
    grew = True
    while grew:  # dependents of a restarted stage learn from a new teacher: restart them too
        grew = False
        for stage in stages:
            if stage.name not in wanted and wanted.intersection(stage.depends_on):
                wanted.add(stage.name)
                grew = True
    return wanted


def check_resume(
    stages: Sequence[Stage], *, resume: bool, restart: Iterable[str] = (), where: str = "run", advice: str | None = None
) -> set[str]:
    """Refuse a resume whose stage inputs changed; return the names of the stages to retrain.

    Nothing is written. A stage with files but a different (or no) ``inputs.json``, or a
    checkpoint already past the epochs asked for, fails with one line naming the stage and
    the first changes, unless it is to be restarted. ``advice`` replaces the default hint
    (``--restart-stage``) for callers that do not take that flag. Without ``resume`` every
    stage with files is returned: a fresh run starts each from nothing.
    """
    restart = list(restart)
    restarted = restart_set(stages, restart)
    if not resume and not restart:
        # A fresh run in a used folder starts every stage from nothing: a checkpoint left from
        # before would otherwise pass a later --resume as if this run had written it.
        return {stage.name for stage in stages if has_run(stage.run_dir)}
    for stage in stages:
        if stage.name in restarted or not has_run(stage.run_dir):
            continue
        saved = _read_inputs(stage.run_dir / INPUTS_NAME)
        if saved is None:
            raise ConfigError(
                f"cannot resume {where}: stage '{stage.name}' ({stage.run_dir}) "
                "has no record of what it was trained on (written by an older deepmimic?); "
                f"{advice or f'pass --restart-stage {stage.name} or use a new output folder'}"
            )
        _check_epochs(stage, where, advice)
        changes = differences(saved, stage.inputs)
        if changes:
            shown = ", ".join(changes[:3]) + (f" and {len(changes) - 3} more" if len(changes) > 3 else "")
            hint = advice or (
                f"pass --restart-stage {stage.name} to retrain it (and the stages that learn from it), "
                "or use a new output folder"
            )
            raise ConfigError(
                f"cannot resume {where}: stage '{stage.name}' was trained with other inputs ({shown}); {hint}"
            )
    return restarted


def _check_epochs(stage: Stage, where: str, advice: str | None) -> None:
    """Refuse, before anything is written, a checkpoint that has trained more epochs than asked for now."""
    path = stage.run_dir / CHECKPOINT_NAME
    if stage.epochs is None or not path.exists():
        return
    done = int(load_checkpoint(path).get("epoch", 0))
    if done > stage.epochs:
        hint = advice or f"ask for at least {done}, pass --restart-stage {stage.name}, or use a new output folder"
        raise ConfigError(
            f"cannot resume {where}: stage '{stage.name}' has trained {done} epochs, "
            f"more than the {stage.epochs} asked for; {hint}"
        )


def clear_stages(stages: Sequence[Stage], names: set[str]) -> None:
    """Remove the files of the stages to retrain (their folders' training state and weights)."""
    if distributed.is_main():  # under torchrun rank 0 removes; the others wait for it
        for stage in stages:
            if stage.name in names and stage.run_dir.exists():
                print(f"[resume] retraining stage '{stage.name}': removing {stage.run_dir}", flush=True)
                shutil.rmtree(stage.run_dir)
    distributed.barrier()


def record_inputs(stage: Stage) -> None:
    """Write ``inputs.json`` into the stage folder (before its first checkpoint)."""
    write_json(stage.run_dir / INPUTS_NAME, stage.inputs)


def check_finished_run(run_dir: Path, config_dump: dict[str, Any], where: str) -> None:
    """Refuse to reuse a finished run (a sweep point) whose ``config.yaml`` differs from ``config_dump``.

    Compared: every key except the paper's reference numbers and the training settings that
    do not change results (device, evaluation cadence, speed switches).
    """
    path = run_dir / "config.yaml"
    try:
        saved = load_yaml(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, yaml.YAMLError) as exc:
        raise ConfigError(
            f"cannot resume {where}: {path} is unreadable ({type(exc).__name__}); remove {run_dir} to rerun it"
        ) from exc
    if not isinstance(saved, dict):
        raise ConfigError(f"cannot resume {where}: {path} is not a config mapping; remove {run_dir} to rerun it")
    changes = differences(
        _comparable(_located(saved), RESUMABLE_CHANGES), _comparable(_located(config_dump), RESUMABLE_CHANGES)
    )
    if changes:
        shown = ", ".join(changes[:3]) + (f" and {len(changes) - 3} more" if len(changes) > 3 else "")
        raise ConfigError(
            f"cannot resume {where}: {run_dir} finished with other settings ({shown}); "
            f"use a new --out, or remove {run_dir} to rerun it"
        )


def _located(dump: dict[str, Any]) -> dict[str, Any]:
    """A config dump without where its outputs go (a point may move) and with input paths resolved
    (``runs/x`` and ``/abs/runs/x`` are the same data)."""
    dump = {k: v for k, v in dump.items() if k not in ("output_dir", "cache_dir", "name")}
    data = dict(dump.get("data") or {})
    if data.get("root"):
        data["root"] = str(Path(str(data["root"])).expanduser().resolve())
    dump["data"] = data
    split = dict(dump.get("split") or {})
    pool = split.get("out_of_domain")
    if isinstance(pool, dict) and pool.get("pool"):
        split["out_of_domain"] = {**pool, "pool": str(Path(str(pool["pool"])).expanduser().resolve())}
    dump["split"] = split
    return dump


def _comparable(node: Any, free: set[str], key: str = "") -> Any:
    """``node`` without the paper's numbers and the ``train:`` keys that may change freely (``epochs`` stays)."""
    if isinstance(node, dict):
        return {
            k: _comparable(v, free, k)
            for k, v in node.items()
            if k != "paper" and not (key == "train" and k in free and k != "epochs")
        }
    if isinstance(node, list):
        return [_comparable(v, free) for v in node]
    return node
