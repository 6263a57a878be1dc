"""``deepmimic label``: label an unlabelled image set with a black-box teacher.

    deepmimic label --teacher SPEC --data SPEC [--split train|test] --out probs.npy
                    [--option KEY=VALUE ...] [--batch-size N] [--budget N] [--log PATH] [--no-progress]

The teacher is a ``.onnx`` file, an ``http(s)://`` endpoint (docs/wire-format.md), a
``.npy``/``.csv`` of precomputed probabilities or a trained model directory
(:func:`deepmimic.teachers.spec.open_teacher`); the data a ``NAME`` or ``NAME:ROOT``
(:func:`deepmimic.data.spec.open_unlabeled`). Answers go to a query log first, so an
interrupted run resumes where it stopped when started again with the same arguments.
"""

from __future__ import annotations

import argparse
import sys

from deepmimic.cli.options import non_negative_int, parse_options, positive_int
from deepmimic.labelling.black_box_job import DEFAULT_BATCH_SIZE


def _cmd_label(args: argparse.Namespace) -> int:
    from deepmimic import distributed

    with distributed.process_group("cpu"):  # under torchrun: each rank labels a block of rows
        return _label(args)


def _label(args: argparse.Namespace) -> int:
    from deepmimic import distributed
    from deepmimic.data.spec import open_unlabeled
    from deepmimic.io_utils import check_output_file
    from deepmimic.labelling.black_box_job import label_dataset_sharded
    from deepmimic.teachers.blackbox import BudgetExhaustedError
    from deepmimic.teachers.spec import open_teacher

    options = parse_options(args.option)
    check_output_file(args.out, "--out")  # before any query: a run that cannot write its answers must not pay for them
    if args.log is not None:
        check_output_file(args.log, "--log")
    data = open_unlabeled(args.data, args.split)
    teacher = open_teacher(args.teacher, options, images=data.images)
    try:
        summary = label_dataset_sharded(
            teacher,
            data.images,
            args.out,
            log_path=args.log,
            batch_size=args.batch_size,
            progress=False if args.no_progress else None,
            budget=args.budget,
        )
    finally:
        close = getattr(teacher, "close", None)
        if callable(close):
            close()
    if not distributed.is_main():
        return 0
    print(
        f"{summary['labeled']}/{summary['rows']} images of {data.name} labelled by {summary['source']} "
        f"({summary['from_log']} from the query log, {summary['queried']} queried, {summary['seconds']:.1f} s)"
    )
    if not summary["complete"]:
        raise BudgetExhaustedError(
            f"query budget of {summary['budget']} samples reached: "
            f"{summary['labeled']} of {summary['rows']} images labelled"
            + (f" (kept in {summary['log']})" if summary["labeled"] else "")
            + f"; {args.out} is written once every image is labelled: run again with a larger --budget",
            labeled=summary["labeled"],
            total=summary["rows"],
            budget=summary["budget"] or 0,
        )
    print(f"probabilities: {summary['out']}  ({summary['rows']} x {summary['num_classes']}, float32)")
    sys.stdout.flush()
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the ``label`` command to the ``deepmimic`` parser's subcommands."""
    label = sub.add_parser(
        "label",
        help="label an unlabelled image set with a black-box teacher (ONNX, HTTP, predictions file, trained model)",
        description=(
            "Ask a black-box teacher for class probabilities of every image of a data set and save them as an (N, K) "
            "float32 .npy. Answers are logged as they arrive: an interrupted run resumes without re-sending any image."
        ),
    )
    label.add_argument(
        "--teacher",
        required=True,
        metavar="SPEC",
        help="model.onnx, http(s)://host/v1/predict, probs.npy/.csv, or a trained model directory",
    )
    label.add_argument(
        "--data",
        required=True,
        metavar="SPEC",
        help="NAME or NAME:ROOT, e.g. mnist-5k, mnist:../shared/data/mnist, npz:images.npz",
    )
    label.add_argument(
        "--split",
        default="train",
        choices=("train", "test"),
        help="which part of the data set to label (default train)",
    )
    label.add_argument("--out", required=True, metavar="PATH", help="where to write the probabilities (.npy)")
    label.add_argument(
        "--option",
        action="append",
        metavar="KEY=VALUE",
        help="teacher option, repeatable: layout=nhwc, scale=byte, mean=..., std=..., outputs=logits (ONNX); "
        "timeout=, retries=, concurrency=, token_env=, num_classes= (HTTP); label_only=true (any)",
    )
    label.add_argument(
        "--batch-size",
        type=positive_int,
        default=DEFAULT_BATCH_SIZE,
        metavar="N",
        help=f"images per teacher call (default {DEFAULT_BATCH_SIZE})",
    )
    label.add_argument(
        "--budget",
        type=non_negative_int,
        default=None,
        metavar="N",
        help="most images to send to the teacher, counting earlier runs in the query log",
    )
    label.add_argument("--log", default=None, metavar="PATH", help="query log (default: OUT.querylog)")
    label.add_argument("--no-progress", action="store_true", help="plain progress lines instead of a progress bar")
    label.set_defaults(func=_cmd_label, distributed=True)
