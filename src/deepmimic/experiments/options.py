"""What ``deepmimic reproduce`` takes (:class:`SweepOptions`), the datasets' ladders, and the checks on both."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from deepmimic.errors import ConfigError
from deepmimic.experiments.recipes import RECIPES

# dataset name -> (data name, folder under --data-dir, preset prefix, student letters)
LADDERS = {
    "mnist": ("mnist", "mnist", "mnist", "ab"),
    "cifar10": ("cifar10", "cifar-10-batches-bin", "cifar10", "abc"),
    "tinyimagenet": ("tiny-imagenet", "tiny-imagenet", "tinyimagenet", "abc"),
}


@dataclass(frozen=True)
class SweepOptions:
    """What ``deepmimic reproduce`` takes: where the data is, how big, how long, how often."""

    data_dir: str = "../shared/data"
    models_dir: str = "../shared/models"  # replaces the ../shared/models prefix of a config's pretrained teachers
    out: str = "runs/reproduce"
    epochs: int | None = None  # mentor epochs; None: the recipe's (experiments/recipes.py), or a config's own
    student_epochs: int | None = None  # None: the same as the mentor (the paper's recipe)
    optimizer: str | None = None  # None: the recipe's (SGD)
    lr: float | None = None  # None: the recipe's
    subset: int | None = None  # stratified training subset
    test_subset: int | None = None
    seeds: int = 1
    first_seed: int = 0  # run seeds first_seed .. first_seed + seeds - 1 (lanes in parallel, or seeds added later)
    dataset: str = "cifar10"  # for the sweeps (split-ratio, unbalanced-removal, out-of-domain)
    students: str | None = None  # student letters, e.g. "ab"; default: the whole ladder, "a" for sweeps
    one_hot: bool = True  # ladders: also train each student on the true labels of the same 80%
    resume: bool = False  # reuse finished points, continue interrupted ones from their checkpoints
    eval_every: int | str | None = None  # every model's train.eval_every (N or "auto"); None: the config's own
    report: bool = True  # False: no per-point reports and no sweep report (summary.json / summary.md still written)
    command: str | None = None  # the command line, recorded in the summary and reports
    data_name: str | None = None  # override the reader (e.g. "npz" for tests)
    data_root: str | None = None  # override the path (file or folder)
    pool: str | None = None  # override the out-of-domain pool path
    points: tuple[float, ...] | None = None  # the sweep's x values (fractions in (0, 1)); None: the paper's grid
    model_options: dict[str, Any] | None = None  # override every model's widths (tests use tiny models)


def mentor_epochs(opts: SweepOptions, dataset: str) -> int:
    """``--epochs``, else the recipe's (the paper's where it gives them)."""
    return opts.epochs or RECIPES[dataset].epochs


def student_epochs(opts: SweepOptions, dataset: str) -> int:
    """``--student-epochs``, else the mentor's: the paper trains every model for as long."""
    return opts.student_epochs or mentor_epochs(opts, dataset)


def seed_numbers(opts: SweepOptions) -> range:
    """The seeds of every point: ``--first-seed`` onwards, ``--seeds`` of them (run folders ``seed-N``)."""
    return range(opts.first_seed, opts.first_seed + opts.seeds)


def check_options(opts: SweepOptions) -> None:
    """Refuse values the command line's types would have refused (the API takes them unchecked)."""
    if opts.seeds < 1:
        raise ConfigError(f"--seeds must be >= 1, got {opts.seeds}")
    if opts.first_seed < 0:
        raise ConfigError(f"--first-seed must be >= 0, got {opts.first_seed}")
    for flag, value in (("--epochs", opts.epochs), ("--student-epochs", opts.student_epochs)):
        if value is not None and value < 1:
            raise ConfigError(f"{flag} must be >= 1, got {value}")
    if opts.optimizer is not None and opts.optimizer not in ("sgd", "adam"):
        raise ConfigError(f"--optimizer must be sgd or adam, got '{opts.optimizer}'")
    if opts.points is not None:
        if not opts.points:
            raise ConfigError("--points needs at least one value")
        bad = [p for p in opts.points if not 0 < p < 1]
        if bad:
            raise ConfigError(f"--points are fractions between 0 and 1 (exclusive), got {', '.join(map(str, bad))}")
    if opts.lr is not None and not opts.lr > 0:
        raise ConfigError(f"--lr must be > 0, got {opts.lr}")
    if (
        opts.eval_every is not None
        and opts.eval_every != "auto"
        and not (isinstance(opts.eval_every, int) and not isinstance(opts.eval_every, bool) and opts.eval_every >= 1)
    ):
        raise ConfigError(f"--eval-every must be 'auto' or an integer >= 1, got {opts.eval_every!r}")
