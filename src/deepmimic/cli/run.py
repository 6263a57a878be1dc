"""``deepmimic run | demo | report``: run any registered pipeline from a YAML config, rebuild a report.

The pipeline is the one the config names (``pipeline:``); this module never branches on it.
"""

from __future__ import annotations

import argparse
from importlib import resources
from pathlib import Path

from deepmimic.cli.options import add_run_options, command_line, train_overrides

BUILTIN_CONFIGS = "deepmimic.builtin_configs"


def builtin_config(name: str) -> Path:
    """The path of a config shipped inside the package (``demo`` -> ``builtin_configs/demo.yaml``)."""
    return Path(str(resources.files(BUILTIN_CONFIGS).joinpath(f"{name}.yaml")))


def _cmd_run(args: argparse.Namespace) -> int:
    from deepmimic import distributed
    from deepmimic.config import load_config
    from deepmimic.pipelines.registry import pipeline_of

    overrides = list(args.set or [])
    if args.out:
        overrides.append(f"output_dir={args.out}")
    config = load_config(args.config, overrides, train_overrides(args))
    pipeline = pipeline_of(config)
    # Under torchrun: join the process group; ranks other than 0 compute but stay quiet and write nothing.
    with distributed.process_group(pipeline.main_train(config).device) as group:
        results = pipeline.run(
            config,
            resume=args.resume,
            restart=list(args.restart_stage or []),
            progress=False if args.no_progress else None,
            command=command_line(args),
        )
        if not distributed.is_main():
            return 0
        report_line = report_or_skip(config.output_dir, args.no_report)
        print()
        print(pipeline.view.text_table(results))
        if group.world_size > 1:
            print(f"\ntrained data-parallel on {group.world_size} processes ({group.backend})")
        print(f"\nresults: {Path(config.output_dir) / 'results.json'}  (wall time {results['wall_time_s']:.1f} s)")
        print(report_line)
    return 0


def report_or_skip(run_dir: str | Path, skip: bool) -> str:
    """Build the run's report (unless ``skip``: ``--no-report``); the ``report: ...`` line to print."""
    if skip:
        return f"report:  skipped (--no-report); build it with: deepmimic report {run_dir}"
    from deepmimic.report.build import build_report

    return f"report:  {build_report(run_dir)['report.html']}"


def _cmd_demo(args: argparse.Namespace) -> int:
    args.config = builtin_config("demo")
    return _cmd_run(args)


def _cmd_report(args: argparse.Namespace) -> int:
    from deepmimic.report.build import build_report

    paths = build_report(args.run_dir)
    for name, path in paths.items():
        print(f"{name}: {path}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``run``, ``demo`` and ``report`` to the ``deepmimic`` parser's subcommands."""
    run = sub.add_parser(
        "run",
        help="run an experiment from a YAML config",
        description="Run the pipeline a YAML config describes (pipeline: deepmimic, feed or mimic).",
    )
    run.add_argument("config", help="YAML experiment file (see configs/)")
    add_run_options(run)
    run.set_defaults(func=_cmd_run, distributed=True)

    demo = sub.add_parser(
        "demo",
        help="mentor + Student-A + Student-B on the built-in 5,000 MNIST digits",
        description="Run the DeepMimic pipeline on the built-in mnist-5k data (offline) and print the table.",
    )
    add_run_options(demo)
    demo.set_defaults(func=_cmd_demo, distributed=True)

    report = sub.add_parser(
        "report",
        help="rebuild report.md / report.html / plots of a finished run or experiment",
        description="Rebuild a run's report from its saved results and metrics files "
        "(or an experiment's from its summary.json), without retraining.",
    )
    report.add_argument(
        "run_dir",
        help="a run's output directory (holds results.json) or a reproduce experiment folder (holds summary.json)",
    )
    report.set_defaults(func=_cmd_report)
