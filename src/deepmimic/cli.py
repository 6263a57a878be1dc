"""The ``deepmimic`` command: a thin layer over the Python API.

Every user mistake (bad path, malformed data, unknown config key) ends with a one-line
``error: ...`` on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from importlib import resources
from pathlib import Path
from typing import NoReturn, Sequence

from deepmimic import __version__
from deepmimic.cli_types import positive_float, positive_int
from deepmimic.errors import DeepMimicError

BUILTIN_CONFIGS = "deepmimic.builtin_configs"


def _builtin_config(name: str) -> Path:
    return Path(str(resources.files(BUILTIN_CONFIGS).joinpath(f"{name}.yaml")))


def _cmd_run(args: argparse.Namespace) -> int:
    from deepmimic import distributed
    from deepmimic.config import load_config
    from deepmimic.pipelines.deepmimic import run_pipeline
    from deepmimic.pipelines.results_table import results_table

    overrides = list(args.set or [])
    if args.out:
        overrides.append(f"output_dir={args.out}")
    config = load_config(args.config, overrides)
    progress = False if args.no_progress else None
    restart = list(args.restart_stage or [])
    command = shlex.join(["deepmimic", *args.argv])
    # Under torchrun: join the process group; ranks other than 0 compute but stay quiet and write nothing.
    train_settings = config.train if config.pipeline == "feed" else config.mentor.train
    with distributed.process_group(train_settings.device) as group:
        if config.pipeline == "feed":
            from deepmimic.pipelines.feed import feed_table, run_feed

            results = run_feed(config, resume=args.resume, restart=restart, progress=progress, command=command)
            table = feed_table(results)
        else:
            results = run_pipeline(config, resume=args.resume, restart=restart, progress=progress, command=command)
            table = results_table(results)
        if not distributed.is_main():
            return 0
        from deepmimic.report import build_report

        report = build_report(config.output_dir)
        print()
        print(table)
        if group.world_size > 1:
            print(f"\ntrained data-parallel on {group.world_size} processes ({group.backend})")
        print(f"\nresults: {Path(config.output_dir) / 'results.json'}  (wall time {results['wall_time_s']:.1f} s)")
        print(f"report:  {report['report.html']}")
    return 0


def _cmd_reproduce(args: argparse.Namespace) -> int:
    from deepmimic.experiments import SweepOptions, run_experiment
    from deepmimic.report.sweep import summary_table

    opts = SweepOptions(
        data_dir=args.data_dir, out=args.out, epochs=args.epochs, student_epochs=args.student_epochs, optimizer=args.optimizer,
        lr=args.lr, subset=args.subset, test_subset=args.test_subset,
        seeds=args.seeds, dataset=args.dataset, students=args.students, one_hot=not args.no_one_hot, resume=args.resume,
        command=shlex.join(["deepmimic", *args.argv]),
    )
    summary = run_experiment(args.experiment, opts, progress=False if args.no_progress else None)
    out = Path(args.out) / args.experiment
    print()
    print(summary_table(summary))
    print(f"\nwall time {summary['wall_time_s']:.1f} s")
    print(f"summary: {out / 'summary.md'}")
    print(f"report:  {out / 'report.html'}")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from deepmimic.report import build_report

    paths = build_report(args.run_dir)
    for name, path in paths.items():
        print(f"{name}: {path}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    args.config = _builtin_config("demo")
    return _cmd_run(args)


def _cmd_models(args: argparse.Namespace) -> int:
    from deepmimic.models import list_presets

    rows = list_presets()
    header = ("name", "in_shape", "classes", "params", "MACs", "architecture")
    table = [header] + [
        (
            r["name"],
            "x".join(str(d) for d in r["in_shape"]),
            str(r["num_classes"]),
            f"{r['params']:,}",
            f"{r['macs']:,}",
            str(r["notation"]),
        )
        for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        print("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip())
    return 0


def _cmd_layers(args: argparse.Namespace) -> int:
    from deepmimic.errors import ModelSpecError
    from deepmimic.models import create_model
    from deepmimic.models.features import format_layer_table, layer_shapes

    in_shape = None
    if args.in_shape:
        try:
            in_shape = tuple(int(v) for v in args.in_shape.split(","))
        except ValueError as exc:
            raise ModelSpecError(f"--in-shape expects C,H,W (e.g. 3,32,32), got '{args.in_shape}'") from exc
        if len(in_shape) != 3:
            raise ModelSpecError(f"--in-shape expects C,H,W (e.g. 3,32,32), got '{args.in_shape}'")
    model = create_model(args.model, in_shape, args.classes)
    shape = in_shape or getattr(model, "in_shape", None)
    if shape is None:
        raise ModelSpecError(f"model '{args.model}' has no default input shape: pass --in-shape C,H,W")
    print(format_layer_table(layer_shapes(model, shape)))
    return 0


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one ``error: ...`` line on stderr and exit 2 (no usage dump)."""

    def error(self, message: str) -> NoReturn:
        print(f"error: {self.prog}: {message} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="deepmimic",
        description="Mentor-student training: a smaller student that matches a teacher, trained without labels.",
    )
    parser.add_argument("--version", action="version", version=f"deepmimic {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def add_run_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config key, e.g. --set students.0.train.epochs=3 (repeatable)")
        p.add_argument("--out", metavar="DIR", help="output directory (same as --set output_dir=DIR)")
        p.add_argument("--resume", action="store_true", help="continue an interrupted run from its checkpoints (refused if a stage's inputs changed)")
        p.add_argument("--restart-stage", action="append", metavar="NAME", help="with --resume: retrain this stage (and the stages that learn from it) from scratch; 'all' for every stage (repeatable)")
        p.add_argument("--no-progress", action="store_true", help="plain per-epoch lines instead of progress bars")

    run = sub.add_parser("run", help="run an experiment from a YAML config", description="Run the DeepMimic pipeline described by a YAML config.")
    run.add_argument("config", help="YAML experiment file (see configs/)")
    add_run_options(run)
    run.set_defaults(func=_cmd_run)

    demo = sub.add_parser("demo", help="mentor + Student-A + Student-B on the built-in 5,000 MNIST digits", description="Run the DeepMimic pipeline on the built-in mnist-5k data (offline) and print the table.")
    add_run_options(demo)
    demo.set_defaults(func=_cmd_demo)

    models = sub.add_parser("models", help="list model presets with parameter and MAC counts", description="List the model presets (the paper's Mentor and Student-A/B/C).")
    models.set_defaults(func=_cmd_models)

    from deepmimic.experiments.sweeps import EXPERIMENTS, LADDERS

    repro = sub.add_parser("reproduce", help="run one of the papers' experiments", description="Run a paper experiment: every point of a sweep (and every seed) is a full run with its report; the experiment folder gets summary.md and report.md/report.html with mean +- std over seeds beside the paper's numbers.")
    repro.add_argument("experiment", choices=EXPERIMENTS)
    repro.add_argument("--data-dir", default="../shared/data", help="folder holding mnist/, cifar-10-batches-bin/, tiny-imagenet/, ood-tinyimagenet-32.npz")
    repro.add_argument("--dataset", default="cifar10", choices=sorted(LADDERS), help="dataset of the split-ratio / unbalanced / out-of-domain / inference-time / imitation-table runs")
    repro.add_argument("--epochs", type=positive_int, default=None, help="epochs of every model (default: the paper's recipe: CIFAR-10 150, Tiny ImageNet 100; MNIST 15, our choice; the config's own for imitation-table and feed-tables)")
    repro.add_argument("--student-epochs", type=positive_int, default=None, help="students' epochs (default: the same as the mentor, as in the paper)")
    repro.add_argument("--optimizer", choices=("sgd", "adam"), default=None, help="every model's optimiser (default: the paper's SGD; Nesterov momentum 0.9, our choice)")
    repro.add_argument("--lr", type=positive_float, default=None, help="every model's learning rate (default: the recipe's, 0.05 for SGD; 1e-3 with --optimizer adam)")
    repro.add_argument("--subset", type=positive_int, default=None, help="stratified training subset size")
    repro.add_argument("--test-subset", type=positive_int, default=None, help="stratified test subset size")
    repro.add_argument("--seeds", type=positive_int, default=1, help="runs per point (mean +- std)")
    repro.add_argument("--students", default=None, metavar="LETTERS", help="which students, e.g. ab (default: the whole ladder; a for the sweeps)")
    repro.add_argument("--no-one-hot", action="store_true", help="ladders: skip the students trained on true one-hot labels")
    repro.add_argument("--resume", action="store_true", help="keep finished points, continue interrupted ones")
    repro.add_argument("--out", default="runs/reproduce", help="output folder")
    repro.add_argument("--no-progress", action="store_true", help="plain per-epoch lines")
    repro.set_defaults(func=_cmd_reproduce)

    report = sub.add_parser("report", help="rebuild report.md / report.html / plots of a finished run or experiment", description="Rebuild a run's report from its saved results and metrics files (or an experiment's from its summary.json), without retraining.")
    report.add_argument("run_dir", help="a run's output directory (holds results.json) or a reproduce experiment folder (holds summary.json)")
    report.set_defaults(func=_cmd_report)

    layers = sub.add_parser("layers", help="list a model's module names with output shapes (for feature hooks)", description="List every module of a model with its output shape and parameters; the names are what feature-level methods hook (e.g. student_layer).")
    layers.add_argument("model", help="preset name (e.g. resnet20) or architecture notation")
    layers.add_argument("--in-shape", metavar="C,H,W", help="input shape (required for notation)")
    layers.add_argument("--classes", type=positive_int, default=None, help="number of classes (required for notation)")
    layers.set_defaults(func=_cmd_layers)
    from deepmimic.cli_serve import register as register_serve; register_serve(sub)  # noqa: E702 (serve, export)
    from deepmimic.cli_label import register as register_label; register_label(sub)  # noqa: E702 (label)
    from deepmimic.cli_mimic import register as register_mimic; register_mimic(sub)  # noqa: E702 (mimic)
    return parser


# Commands that join torchrun's process group; the others would run once per process.
DISTRIBUTED_COMMANDS = frozenset({"run", "demo", "label", "mimic"})


def _check_launcher(command: str) -> None:
    from deepmimic import distributed
    from deepmimic.errors import ConfigError

    if distributed.launched_by_torchrun() and command not in DISTRIBUTED_COMMANDS:
        raise ConfigError(
            f"'deepmimic {command}' does not run under torchrun (each process would do the whole job); "
            f"commands that do: {', '.join(sorted(DISTRIBUTED_COMMANDS))}"
        )


def main(argv: Sequence[str] | None = None) -> int:
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
        _check_launcher(args.command)
        return int(args.func(args))
    except DeepMimicError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
