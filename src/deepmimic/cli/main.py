"""The ``deepmimic`` command: a thin layer over the Python API, one module per command group.

Every user mistake (bad path, malformed data, unknown config key) ends with a one-line
``error: ...`` on stderr and exit status 2, never a traceback.

Command groups: :mod:`~deepmimic.cli.run` (run, demo, report), :mod:`~deepmimic.cli.reproduce`,
:mod:`~deepmimic.cli.models` (models, layers), :mod:`~deepmimic.cli.label`,
:mod:`~deepmimic.cli.mimic`, :mod:`~deepmimic.cli.serve` (serve, export); shared option
parsing in :mod:`~deepmimic.cli.options`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from deepmimic import __version__
from deepmimic.cli import audit, label, mimic, models, pack, reproduce, run, serve
from deepmimic.cli.options import OneLineParser
from deepmimic.errors import ConfigError, DeepMimicError

COMMAND_GROUPS = (run, models, reproduce, serve, label, mimic, audit, pack)  # each has register(subparsers)


def build_parser() -> argparse.ArgumentParser:
    """The ``deepmimic`` parser with every command group's subcommands."""
    parser = OneLineParser(
        prog="deepmimic",
        description="Mentor-student training: a smaller student that matches a teacher, trained without labels.",
    )
    parser.add_argument("--version", action="version", version=f"deepmimic {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for group in COMMAND_GROUPS:
        group.register(sub)
    return parser


def distributed_commands(parser: argparse.ArgumentParser) -> list[str]:
    """Commands that join torchrun's process group (registered with ``distributed=True``); the
    others would run once per process."""
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sorted(name for name, p in sub.choices.items() if p.get_default("distributed"))


def _check_launcher(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    from deepmimic import distributed

    if distributed.launched_by_torchrun() and not getattr(args, "distributed", False):
        raise ConfigError(
            f"'deepmimic {args.command}' does not run under torchrun (each process would do the whole job); "
            f"commands that do: {', '.join(distributed_commands(parser))}"
        )


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` (default: ``sys.argv[1:]``), run the command; returns the exit status."""
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # --help / --version (0) or a usage mistake, already printed (2)
        return exit_.code if isinstance(exit_.code, int) else 2
    args.argv = argv  # recorded in results.json as the command that reproduces the run
    if args.command is None:
        parser.print_help()
        return 2
    try:
        _check_launcher(args, parser)
        return int(args.func(args))
    except DeepMimicError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
