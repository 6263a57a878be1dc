"""Option parsing shared by every ``deepmimic`` command: value types, ``KEY=VALUE`` lists, run flags.

Bad values fail as one ``error: ...`` line (argparse types raise ``ArgumentTypeError``;
:class:`OneLineParser` prints it without the usage dump).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Callable
from typing import Any, NoReturn

import yaml

from deepmimic.errors import ConfigError
from deepmimic.yaml_safe import load_yaml


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got '{text}'") from None


def positive_int(text: str) -> int:
    """An integer of at least 1 (``--subset 0`` is a mistake, not "no subset")."""
    value = _integer(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def non_negative_int(text: str) -> int:
    """An integer of at least 0 (a query budget of 0 is allowed: ask nothing)."""
    value = _integer(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be non-negative, got {value}")
    return value


def eval_every(text: str) -> int | str:
    """``auto`` or an integer of at least 1: epochs between test-set evaluations."""
    if text.strip().lower() == "auto":
        return "auto"
    try:
        return positive_int(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected 'auto' or an integer of at least 1, got '{text}'") from None


EVAL_EVERY_HELP = (
    "evaluate on the test set every N epochs, or 'auto': every ceil(epochs / 10), about 10 points per model; "
    "always after the last epoch"
)
NO_REPORT_HELP = "skip report.md / report.html and the figures (build them later with: deepmimic report DIR)"


def port_number(text: str) -> int:
    """A TCP port, 0..65535 (0: any free port)."""
    value = _integer(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port number 0..65535, got {value}")
    return value


def positive_float(text: str) -> float:
    """A finite number greater than 0 (a learning rate)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got '{text}'") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number above 0, got {text}")
    return value


def fractions(text: str) -> tuple[float, ...]:
    """Comma-separated fractions strictly between 0 and 1, e.g. ``0.1,0.5,0.9`` (a sweep's grid)."""
    values = []
    for part in text.split(","):
        try:
            value = float(part)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got '{part}'") from None
        if not 0 < value < 1:
            raise argparse.ArgumentTypeError(f"every point must be a fraction between 0 and 1, got {part}")
        values.append(value)
    return tuple(values)


def int_between(low: int, high: int) -> Callable[[str], int]:
    """An argparse type for an integer in ``low..high`` (e.g. a batch that must fit in memory)."""

    def parse(text: str) -> int:
        value = _integer(text)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be between {low} and {high:,}, got {value:,}")
        return value

    return parse


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one ``error: ...`` line on stderr and exit 2 (no usage dump)."""

    def error(self, message: str) -> NoReturn:
        print(f"error: {self.prog}: {message} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(2)


def parse_options(pairs: list[str] | None, flag: str = "--option") -> dict[str, str]:
    """``["layout=nhwc", "mean=0.5,0.5,0.5"]`` -> ``{"layout": "nhwc", "mean": "0.5,0.5,0.5"}`` (values stay text)."""
    options: dict[str, str] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"{flag} expects KEY=VALUE, got '{pair}'")
        if key in options:
            raise ConfigError(f"{flag} {key} given twice")
        options[key] = value.strip()
    return options


def parse_yaml_options(pairs: list[str] | None, flag: str) -> dict[str, Any]:
    """Like :func:`parse_options`, each value read as YAML (``beta=500`` is a number, ``paraphraser=true`` a bool)."""
    parsed: dict[str, Any] = {}
    for key, text in parse_options(pairs, flag).items():
        try:
            parsed[key] = load_yaml(text) if text else None
        except yaml.YAMLError as exc:
            raise ConfigError(
                f"{flag} {key}: value is not valid YAML ({getattr(exc, 'problem', None) or exc})"
            ) from None
    return parsed


def add_run_options(parser: argparse.ArgumentParser) -> None:
    """The flags of every command that runs a pipeline from a config: --set, --out, --resume,
    --restart-stage, --eval-every, --no-report, --no-progress."""
    parser.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="override a config key, e.g. --set students.0.train.epochs=3 (repeatable)",
    )
    parser.add_argument("--out", metavar="DIR", help="output directory (same as --set output_dir=DIR)")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue an interrupted run from its checkpoints (refused if a stage's inputs changed)",
    )
    parser.add_argument(
        "--restart-stage",
        action="append",
        metavar="NAME",
        help="with --resume: retrain this stage (and the stages that learn from it) from scratch; "
        "'all' for every stage (repeatable)",
    )
    parser.add_argument(
        "--eval-every",
        type=eval_every,
        default=None,
        metavar="N|auto",
        help=EVAL_EVERY_HELP + "; overrides every model's train.eval_every, a stage's own included "
        "(default: the config's, else auto)",
    )
    parser.add_argument("--no-report", action="store_true", help=NO_REPORT_HELP)
    parser.add_argument("--no-progress", action="store_true", help="plain per-epoch lines instead of progress bars")


def train_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The training settings run flags set on every model (``--eval-every``); empty when none was given."""
    return {"eval_every": args.eval_every} if getattr(args, "eval_every", None) is not None else {}


def command_line(args: argparse.Namespace) -> str:
    """The command that started this process, as recorded in results.json (``deepmimic ...``)."""
    return shlex.join(["deepmimic", *args.argv])
