"""``deepmimic mimic``: copy a teacher you can only query into a student, in one command.

    deepmimic mimic --teacher SPEC --data SPEC --student MODEL [--out DIR] [--label-only]
                    [--budget N [--budget-order file|random]] [--subset N] [--epochs N]
                    [--eval-every N|auto] [--method NAME] [--method-option KEY=VALUE ...] [--no-report]

The flags build a :class:`deepmimic.pipelines.mimic_config.MimicConfig` (the same keys run
from YAML with ``deepmimic run``, ``pipeline: mimic``); see :mod:`deepmimic.pipelines.mimic`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from deepmimic.cli.options import (
    EVAL_EVERY_HELP,
    NO_REPORT_HELP,
    command_line,
    eval_every,
    parse_options,
    parse_yaml_options,
    positive_float,
    positive_int,
)


def _cmd_mimic(args: argparse.Namespace) -> int:
    from deepmimic import distributed
    from deepmimic.cli.run import report_or_skip
    from deepmimic.config import validate_config
    from deepmimic.pipelines.mimic_config import MimicConfig
    from deepmimic.pipelines.registry import pipeline_of

    raw = {
        "output_dir": args.out,
        "teacher": args.teacher,
        "teacher_options": parse_options(args.option),
        "data": args.data,
        "student": args.student,
        "student_options": parse_yaml_options(args.student_option, "--student-option"),
        "method": args.method,
        "method_options": parse_yaml_options(args.method_option, "--method-option"),
        "label_only": args.label_only,
        "compare_label_only": args.compare_label_only,
        "budget": args.budget,
        "budget_order": args.budget_order,
        "subset": args.subset,
        "evaluate_test": not args.no_test,
        "train": {
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "optimizer": args.optimizer,
            "lr": args.lr,
            "momentum": args.momentum,
            "weight_decay": args.weight_decay,
            "schedule": args.schedule,
            "augment": args.augment,
            "eval_every": args.eval_every,
            "seed": args.seed,
        },
    }
    config = validate_config(MimicConfig, raw, source="deepmimic mimic")
    pipeline = pipeline_of(config)
    with distributed.process_group(config.train.device):  # torchrun: shard labelling, train data-parallel
        results = pipeline.run(
            config, resume=args.resume, progress=False if args.no_progress else None, command=command_line(args)
        )
        if not distributed.is_main():
            return 0
    report_line = report_or_skip(args.out, args.no_report)
    queries = results["queries"]
    print()
    print(pipeline.view.text_table(results))
    print(
        f"\nqueries sent to the teacher: {queries['total_sent']} "
        f"({queries['unlabelled']['labeled']} unlabelled images labelled"
        + (f", {queries['test']['labeled']} test images" if queries["test"] else "")
        + ")"
    )
    print(f"results: {Path(args.out) / 'results.json'}  (wall time {results['wall_time_s']:.1f} s)")
    print(report_line)
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the ``mimic`` command to the ``deepmimic`` parser's subcommands."""
    p = sub.add_parser(
        "mimic",
        help="copy a teacher you can only query (run folder, ONNX, URL, predictions file) into a student",
        description="Label the unlabelled images through the teacher (resumable query log), train the student on the "
        "answers, measure the teacher's and student's accuracy and agreement on the test split, write a report.",
    )
    p.add_argument(
        "--teacher",
        required=True,
        metavar="SPEC",
        help="trained stage folder, .onnx file, http(s):// URL or .npy/.csv predictions",
    )
    p.add_argument(
        "--data",
        required=True,
        metavar="SPEC",
        help="NAME or NAME:ROOT, e.g. mnist:../shared/data/mnist; its train split is the unlabelled set",
    )
    p.add_argument(
        "--student", required=True, metavar="MODEL", help="model preset (deepmimic models) or architecture notation"
    )
    p.add_argument("--out", default="runs/mimic", help="output folder")
    p.add_argument(
        "--option",
        action="append",
        metavar="KEY=VALUE",
        help="teacher option, e.g. layout=nhwc (repeatable; see deepmimic label)",
    )
    p.add_argument(
        "--student-option",
        action="append",
        metavar="KEY=VALUE",
        help="model option, e.g. conv_channels=16 (repeatable)",
    )
    p.add_argument(
        "--method",
        default="soft_label",
        metavar="NAME",
        help="how the student learns from the answers (default soft_label; "
        "any method that needs only the teacher's probabilities, e.g. kd)",
    )
    p.add_argument(
        "--method-option",
        action="append",
        metavar="KEY=VALUE",
        help="method option, e.g. temperature=4 (repeatable; checked against the method)",
    )
    p.add_argument(
        "--label-only", action="store_true", help="use only the teacher's top-1 class (the defended setting)"
    )
    p.add_argument(
        "--compare-label-only",
        action="store_true",
        help="also train a student on the top-1 class of the same answers (no extra queries): the report shows the gap",
    )
    p.add_argument(
        "--budget",
        type=positive_int,
        default=None,
        metavar="N",
        help="most unlabelled images to send to the teacher (rows already in the query log count); the student "
        "trains on the answered rows. Which rows: see --budget-order",
    )
    p.add_argument(
        "--budget-order",
        default="file",
        choices=("file", "random"),
        help="with --budget, which rows are asked: 'file' (default) the first N in the data's order; 'random' a "
        "random sample of N drawn with --seed (the same seed gives the same rows, also when a killed run resumes "
        "from its query log)",
    )
    p.add_argument("--subset", type=positive_int, default=None, help="a random subset of the unlabelled images")
    p.add_argument("--no-test", action="store_true", help="do not query the teacher on the test split")
    p.add_argument("--epochs", type=positive_int, default=10)
    p.add_argument("--batch-size", type=positive_int, default=64)
    p.add_argument("--optimizer", default="sgd", choices=("sgd", "adam"))
    p.add_argument("--lr", type=positive_float, default=0.05)
    p.add_argument("--momentum", type=float, default=0.9, help="SGD momentum (default 0.9)")
    p.add_argument("--weight-decay", type=float, default=5e-4, help="weight decay (default 5e-4)")
    p.add_argument(
        "--schedule",
        default="cosine",
        choices=("constant", "step", "multistep", "cosine"),
        help="learning-rate schedule (default cosine)",
    )
    p.add_argument(
        "--augment",
        default="none",
        choices=("none", "crop-flip"),
        help="random crops and flips of the student's images; each view keeps the soft label the teacher gave the "
        "original image (the teacher is asked once per image), which assumes its answer barely changes under a small "
        "shift or a mirror",
    )
    p.add_argument(
        "--eval-every", type=eval_every, default="auto", metavar="N|auto", help=EVAL_EVERY_HELP + " (default auto)"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the students' training from their checkpoints (labelling always resumes from the query log)",
    )
    p.add_argument("--no-report", action="store_true", help=NO_REPORT_HELP)
    p.add_argument("--no-progress", action="store_true", help="plain per-epoch lines")
    p.set_defaults(func=_cmd_mimic, distributed=True)
