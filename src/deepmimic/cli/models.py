"""``deepmimic models | layers``: the model presets, and a model's modules with their output shapes."""

from __future__ import annotations

import argparse

from deepmimic.cli.options import positive_int


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


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``models`` and ``layers`` to the ``deepmimic`` parser's subcommands."""
    models = sub.add_parser(
        "models",
        help="list model presets with parameter and MAC counts",
        description="List the model presets (the paper's Mentor and Student-A/B/C).",
    )
    models.set_defaults(func=_cmd_models)

    layers = sub.add_parser(
        "layers",
        help="list a model's module names with output shapes (for feature hooks)",
        description="List every module of a model with its output shape and parameters; "
        "the names are what feature-level methods hook (e.g. student_layer).",
    )
    layers.add_argument("model", help="preset name (e.g. resnet20) or architecture notation")
    layers.add_argument("--in-shape", metavar="C,H,W", help="input shape (required for notation)")
    layers.add_argument("--classes", type=positive_int, default=None, help="number of classes (required for notation)")
    layers.set_defaults(func=_cmd_layers)
