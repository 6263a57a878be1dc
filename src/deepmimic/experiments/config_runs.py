"""Experiments that are one shipped config run per seed: the imitation game's and FEED's tables.

* ``imitation-table``: the imitation game, Table 1 (Rec, Rec+Der, Adv, All) beside KD and
  DeepMimic soft labels, from ``imitation-resnet20.yaml`` (the published CIFAR-10 ResNet-20
  as the teacher; ``--dataset mnist``: ``imitation-mnist.yaml``).
* ``feed-tables``: FEED Tables 1, 2, 4 (scratch, ensemble, KD, pFEED with k = 2 and 3, sFEED
  without and with the paraphraser) and KD from a pretrained ResNet-32, from ``feed-cifar10.yaml``.

``deepmimic reproduce`` options adjust the shipped config: ``--data-dir`` replaces its
``../shared/data`` prefix, ``--models-dir`` the ``../shared/models`` prefix of a pretrained
teacher's file (FEED's ``pretrained_students``, a pretrained ``mentor``), ``--subset`` /
``--test-subset`` the data sizes, ``--epochs`` the schedule (every model ``N``;
``--student-epochs`` the students' own), ``--optimizer`` and ``--lr`` every model's
optimiser, and each seed ``s`` shifts every seed of the config by ``s``. Each seed is a
full run with its report; the summary gives mean +- std over seeds.
"""

from __future__ import annotations

import time
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from deepmimic.environment import describe_environment
from deepmimic.errors import ConfigError
from deepmimic.experiments.options import SweepOptions, seed_numbers
from deepmimic.experiments.points import finished_earlier, run_point, summarise, write_summary
from deepmimic.pipelines.registry import DEFAULT_PIPELINE, get_pipeline
from deepmimic.pipelines.variation import Variation
from deepmimic.yaml_safe import load_yaml

SHARED_DATA = "../shared/data"
SHARED_MODELS = "../shared/models"
BUILTIN = "deepmimic.builtin_configs"
# experiment -> dataset -> shipped config name
CONFIGS: dict[str, dict[str, str]] = {
    "imitation-table": {"cifar10": "imitation-resnet20", "mnist": "imitation-mnist"},
    "feed-tables": {"cifar10": "feed-cifar10"},
}
TITLES = {
    "imitation-table": "Imitation game, Table 1: Rec, Rec+Der, Adv, All, beside KD and soft labels",
    "feed-tables": "FEED, Tables 1, 2, 4: scratch, ensemble, KD, pFEED, sFEED (with and without the paraphraser)",
}


def builtin_config_path(experiment: str, dataset: str) -> Path:
    """The shipped YAML of ``experiment`` on ``dataset``."""
    by_dataset = CONFIGS[experiment]
    if dataset not in by_dataset:
        raise ConfigError(f"{experiment} is defined for --dataset {', '.join(by_dataset)}, not '{dataset}'")
    return Path(str(resources.files(BUILTIN).joinpath(f"{by_dataset[dataset]}.yaml")))


def _adjusted(raw: dict[str, Any], opts: SweepOptions, seed: int, run_dir: Path) -> dict[str, Any]:
    """The shipped config with the command line's data, size, schedule and seed applied."""
    raw = dict(raw)
    raw["output_dir"] = str(run_dir)
    raw["name"] = f"{raw.get('name', 'run')} seed {seed}"
    data = dict(raw.get("data") or {})
    root = str(data.get("root") or "")
    if opts.data_root:
        data["root"] = opts.data_root
    elif root.startswith(SHARED_DATA):
        data["root"] = str(Path(opts.data_dir) / root[len(SHARED_DATA) :].lstrip("/"))
    if opts.data_name:
        data["name"] = opts.data_name
    for key, value in (("train_subset", opts.subset), ("test_subset", opts.test_subset)):
        if value is not None:
            data[key] = value
    raw["data"] = data
    if raw.get("pretrained_students"):
        raw["pretrained_students"] = [
            {**student, "pretrained": _moved_models(str(student.get("pretrained", "")), opts.models_dir)}
            for student in raw["pretrained_students"]
        ]
    mentor = raw.get("mentor")
    if isinstance(mentor, dict) and mentor.get("pretrained"):  # a DeepMimic-pipeline mentor used as it is
        raw["mentor"] = {**mentor, "pretrained": _moved_models(str(mentor["pretrained"]), opts.models_dir)}
    train = dict(raw.get("train") or {})
    train["seed"] = int(train.get("seed", 0)) + seed
    if opts.optimizer is not None:
        train["optimizer"] = opts.optimizer
    if opts.lr is not None:
        train["lr"] = opts.lr
    raw["train"] = train
    variation = Variation(
        seed=seed, epochs=opts.epochs, student_epochs=opts.student_epochs, model_options=opts.model_options
    )
    return get_pipeline(raw.get("pipeline", DEFAULT_PIPELINE), raw["name"]).vary(raw, variation)


def _moved_models(spec: str, models_dir: str) -> str:
    """A pretrained spec (``ARCH:PATH`` or ``PATH``) with the ``../shared/models`` prefix of its file replaced."""
    arch, sep, path = spec.partition(":")
    if sep and path.startswith(SHARED_MODELS):
        return f"{arch}:{Path(models_dir) / path[len(SHARED_MODELS) :].lstrip('/')}"
    if spec.startswith(SHARED_MODELS):
        return str(Path(models_dir) / spec[len(SHARED_MODELS) :].lstrip("/"))
    return spec


def run_config_experiment(experiment: str, opts: SweepOptions, progress: bool | None = None) -> dict[str, Any]:
    """Run the shipped config of ``experiment`` once per seed; write the summary and its report."""
    started = time.perf_counter()
    path = builtin_config_path(experiment, opts.dataset)
    shipped = load_yaml(path.read_text(encoding="utf-8"))
    out = Path(opts.out) / experiment
    runs: list[tuple[Path, dict[str, Any]]] = []
    read_back = 0  # runs finished by an earlier invocation (--resume)
    for seed in seed_numbers(opts):
        run_dir = out / f"seed-{seed}"
        read_back += finished_earlier(run_dir, opts)
        raw = _adjusted(yaml.safe_load(yaml.safe_dump(shipped)), opts, seed, run_dir)  # a deep copy per seed
        runs.append((run_dir, run_point(raw, run_dir, None, opts, progress, f"seed {seed}")))
    paper = shipped.get("paper") or {}
    row = summarise(shipped.get("name", experiment), None, runs, out, paper.get("accuracy") or None)
    shipped_data = shipped.get("data") or {}
    summary = {
        "experiment": experiment,
        "title": TITLES[experiment],
        "dataset": opts.dataset,
        "x_label": None,
        "seeds": opts.seeds,
        "first_seed": opts.first_seed,
        "epochs": opts.epochs,
        "subset": opts.subset or shipped_data.get("train_subset"),
        "test_subset": opts.test_subset or shipped_data.get("test_subset"),
        "students": list(row["accuracy"]),
        "config": path.name,
        "command": opts.command,
        "wall_time_s": time.perf_counter() - started,
        "runs_wall_time_s": sum(row["run_wall_time_s"]),
        "read_back_runs": read_back,
        "environment": describe_environment(),
        "paper_source": paper.get("source"),
        "notes": [f"Shipped config `{path.name}` (see `configs/`), adjusted by the command's options."],
        "rows": [row],
    }
    return write_summary(out, summary, report=opts.report)
