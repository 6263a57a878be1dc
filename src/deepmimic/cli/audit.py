"""``deepmimic audit``: how many queries does a copy of your model take, under each answer defence?

    deepmimic audit --teacher SPEC --data SPEC --student MODEL [--budgets 250,500,...]
                    [--defences none,top1,topk:3,round:2] [--query-data in-domain|SPEC] [--seeds N]

See :mod:`deepmimic.audit`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from deepmimic.cli.options import (
    NO_REPORT_HELP,
    command_line,
    non_negative_int,
    parse_options,
    parse_yaml_options,
    positive_float,
    positive_int,
)


def _budgets(text: str) -> tuple[int, ...]:
    """Comma-separated query budgets, e.g. ``250,500,1000``."""
    try:
        values = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated whole numbers, got '{text}'") from None
    return values


def _cmd_audit(args: argparse.Namespace) -> int:
    from deepmimic.audit.options import AuditOptions
    from deepmimic.audit.run import run_audit
    from deepmimic.report.audit import queries_needed_text

    opts = AuditOptions(
        teacher=args.teacher,
        data=args.data,
        student=args.student,
        out=args.out,
        budgets=args.budgets,
        defences=args.defences,
        query_data=args.query_data,
        seeds=args.seeds,
        epochs=args.epochs,
        min_steps=args.min_steps,
        batch_size=args.batch_size,
        optimizer=args.optimizer,
        lr=args.lr,
        teacher_options=parse_options(args.option),
        student_options=parse_yaml_options(args.student_option, "--student-option"),
        query_seed=args.query_seed,
        resume=args.resume,
        report=not args.no_report,
        progress=False if args.no_progress else None,
        command=command_line(args),
    )
    audit = run_audit(opts)
    out = Path(args.out)
    print()
    print(queries_needed_text(audit))
    print(
        f"\nteacher accuracy {100 * audit['teacher']['accuracy']:.2f}%; attack queries in the log "
        f"{audit['queries']['attack']:,} (the largest budget), test queries {audit['queries']['test']:,}"
    )
    print(f"audit: {out / 'audit.json'}  (wall time {audit['wall_time_s']:.1f} s)")
    if args.no_report:
        print(f"report:  skipped (--no-report); build it with: deepmimic report {out}")
    else:
        print(f"report:  {out / 'report.html'}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the ``audit`` command to the ``deepmimic`` parser's subcommands."""
    from deepmimic.audit.options import DEFAULT_BUDGETS, IN_DOMAIN

    p = sub.add_parser(
        "audit",
        help="how many queries a copy of your model takes, with and without answer defences",
        description="Query the teacher once (the largest budget, resumable query log), train a student on the first "
        "N answers for each budget N and each answer defence, and report fidelity (agreement with the teacher on the "
        "test split) and accuracy against queries, with the queries needed for 90/95/99% agreement.",
    )
    p.add_argument(
        "--teacher",
        required=True,
        metavar="SPEC",
        help="trained stage folder, .onnx file, http(s):// URL, or "
        "ARCH:CHECKPOINT / .ts / .pt2 / module:factory pretrained model",
    )
    p.add_argument(
        "--data",
        required=True,
        metavar="SPEC",
        help="NAME or NAME:ROOT; its test split measures fidelity, its train split is the in-domain query set",
    )
    p.add_argument("--student", required=True, metavar="MODEL", help="the copy: a model preset or notation")
    p.add_argument(
        "--budgets",
        type=_budgets,
        default=DEFAULT_BUDGETS,
        metavar="N,N,...",
        help=f"increasing query budgets (default {','.join(map(str, DEFAULT_BUDGETS))})",
    )
    p.add_argument(
        "--defences",
        default="none,top1,round:2",
        metavar="LIST",
        help="answer defences to compare: none, top1, topk:K, round:D (default none,top1,round:2); "
        "deepmimic serve --answer serves the same",
    )
    p.add_argument(
        "--query-data",
        default=IN_DOMAIN,
        metavar="in-domain|SPEC",
        help="the attacker's images: in-domain (the data's train split, default), an .npz image pool or a data "
        "spec; other shapes are converted (grey/colour, resize)",
    )
    p.add_argument("--seeds", type=positive_int, default=1, help="students per point (mean +- std)")
    p.add_argument("--epochs", type=positive_int, default=10, help="epochs per student (default 10)")
    p.add_argument(
        "--min-steps",
        type=non_negative_int,
        default=300,
        help="small budgets train for more epochs so every student takes at least this many steps (default 300)",
    )
    p.add_argument("--batch-size", type=positive_int, default=64)
    p.add_argument("--optimizer", choices=("sgd", "adam"), default="sgd")
    p.add_argument("--lr", type=positive_float, default=0.05)
    p.add_argument("--option", action="append", metavar="KEY=VALUE", help="teacher option (repeatable)")
    p.add_argument("--student-option", action="append", metavar="KEY=VALUE", help="model option (repeatable)")
    p.add_argument("--query-seed", type=int, default=0, help="seed of the query order (default 0)")
    p.add_argument("--out", default="runs/audit", help="output folder")
    p.add_argument("--resume", action="store_true", help="continue an interrupted audit (no query is sent twice)")
    p.add_argument("--no-report", action="store_true", help=NO_REPORT_HELP)
    p.add_argument("--no-progress", action="store_true", help="plain per-epoch lines")
    p.set_defaults(func=_cmd_audit)
