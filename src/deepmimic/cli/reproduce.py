"""``deepmimic reproduce``: run one of the papers' experiments (every point, every seed, a summary)."""

from __future__ import annotations

import argparse
from pathlib import Path

from deepmimic.cli.options import EVAL_EVERY_HELP, command_line, eval_every, fractions, positive_float, positive_int


def _cmd_reproduce(args: argparse.Namespace) -> int:
    from deepmimic.experiments import SweepOptions, run_experiment
    from deepmimic.report.sweep import summary_table

    opts = SweepOptions(
        data_dir=args.data_dir,
        models_dir=args.models_dir,
        out=args.out,
        epochs=args.epochs,
        student_epochs=args.student_epochs,
        optimizer=args.optimizer,
        lr=args.lr,
        subset=args.subset,
        test_subset=args.test_subset,
        seeds=args.seeds,
        first_seed=args.first_seed,
        dataset=args.dataset,
        students=args.students,
        one_hot=not args.no_one_hot,
        resume=args.resume,
        eval_every=args.eval_every,
        points=args.points,
        report=not args.no_report,
        command=command_line(args),
    )
    summary = run_experiment(args.experiment, opts, progress=False if args.no_progress else None)
    out = Path(args.out) / args.experiment
    print()
    print(summary_table(summary))
    print(f"\nwall time {summary['wall_time_s']:.1f} s")
    print(f"summary: {out / 'summary.md'}")
    if args.no_report:
        print(f"report:  skipped (--no-report); build it with: deepmimic report {out}")
    else:
        print(f"report:  {out / 'report.html'}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``reproduce`` to the ``deepmimic`` parser's subcommands."""
    from deepmimic.experiments.catalog import EXPERIMENTS
    from deepmimic.experiments.options import LADDERS

    repro = sub.add_parser(
        "reproduce",
        help="run one of the papers' experiments",
        description="Run a paper experiment: every point of a sweep (and every seed) is a full run with its report; "
        "the experiment folder gets summary.md and report.md/report.html with mean +- std over seeds "
        "beside the paper's numbers.",
    )
    repro.add_argument("experiment", choices=EXPERIMENTS)
    repro.add_argument(
        "--data-dir",
        default="../shared/data",
        help="folder holding mnist/, cifar-10-batches-bin/, tiny-imagenet/, ood-tinyimagenet-32.npz",
    )
    repro.add_argument(
        "--models-dir",
        default="../shared/models",
        help="folder holding the pretrained teachers a config names under ../shared/models (feed-tables)",
    )
    repro.add_argument(
        "--dataset",
        default="cifar10",
        choices=sorted(LADDERS),
        help="dataset of the split-ratio / unbalanced / out-of-domain / inference-time / imitation-table runs",
    )
    repro.add_argument(
        "--epochs",
        type=positive_int,
        default=None,
        help="epochs of every model (default: the paper's recipe: CIFAR-10 150, Tiny ImageNet 100; "
        "MNIST 15, our choice; the config's own for imitation-table and feed-tables)",
    )
    repro.add_argument(
        "--student-epochs",
        type=positive_int,
        default=None,
        help="students' epochs (default: the same as the mentor, as in the paper)",
    )
    repro.add_argument(
        "--optimizer",
        choices=("sgd", "adam"),
        default=None,
        help="every model's optimiser (default: the paper's SGD; Nesterov momentum 0.9, our choice)",
    )
    repro.add_argument(
        "--lr",
        type=positive_float,
        default=None,
        help="every model's learning rate (default: the recipe's, 0.05 for SGD; 1e-3 with --optimizer adam)",
    )
    repro.add_argument("--subset", type=positive_int, default=None, help="stratified training subset size")
    repro.add_argument("--test-subset", type=positive_int, default=None, help="stratified test subset size")
    repro.add_argument("--seeds", type=positive_int, default=1, help="runs per point (mean +- std)")
    repro.add_argument(
        "--first-seed",
        type=int,
        default=0,
        metavar="N",
        help="number the seeds from N (folders seed-N ...): run seeds in parallel processes "
        "(--seeds 1 --first-seed 1 beside --seeds 1), then read them all back with --seeds 2 --resume",
    )
    repro.add_argument(
        "--points",
        type=fractions,
        default=None,
        metavar="X,Y,...",
        help="the sweep's x values as fractions, e.g. 0.1,0.5,0.9: labelled share (split-ratio), removal bound "
        "(unbalanced-removal) or out-of-domain share (out-of-domain); default: the paper's grid",
    )
    repro.add_argument(
        "--students",
        default=None,
        metavar="LETTERS",
        help="which students, e.g. ab (default: the whole ladder; a for the sweeps)",
    )
    repro.add_argument(
        "--no-one-hot", action="store_true", help="ladders: skip the students trained on true one-hot labels"
    )
    repro.add_argument("--resume", action="store_true", help="keep finished points, continue interrupted ones")
    repro.add_argument(
        "--eval-every",
        type=eval_every,
        default=None,
        metavar="N|auto",
        help=EVAL_EVERY_HELP + "; every model of every point (default: the recipe's or config's, else auto)",
    )
    repro.add_argument(
        "--no-report",
        action="store_true",
        help="skip each point's report and the experiment's report.md / report.html (summary.json and summary.md "
        "are still written; build a report later with: deepmimic report DIR)",
    )
    repro.add_argument("--out", default="runs/reproduce", help="output folder")
    repro.add_argument("--no-progress", action="store_true", help="plain per-epoch lines")
    repro.set_defaults(func=_cmd_reproduce)
