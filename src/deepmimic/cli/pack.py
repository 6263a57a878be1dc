"""``deepmimic pack``: turn a data set into a packed, memory-mapped store (issue 17, first part).

    deepmimic pack SOURCE OUT.dmstore [--size HxW]

SOURCE is any data spec the package reads (``mnist:ROOT``, ``cifar10:ROOT``, ``x.npz``,
``image-folder:DIR``, ...). Train with ``--data store:OUT.dmstore`` or ``data: {name: store,
root: OUT.dmstore}``; see :mod:`deepmimic.data.store`.
"""

from __future__ import annotations

import argparse
import re


def _size(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"(\d+)x(\d+)", text.strip().lower())
    if not match or min(int(match[1]), int(match[2])) < 1:
        raise argparse.ArgumentTypeError(f"expected HxW, e.g. 32x32, got '{text}'")
    return int(match[1]), int(match[2])


def _cmd_pack(args: argparse.Namespace) -> int:
    import time

    from deepmimic.data.convert import to_shape
    from deepmimic.data.registry import load_dataset
    from deepmimic.data.spec import parse_data_spec
    from deepmimic.data.store import describe_progress, pack_dataset

    name, root = parse_data_spec(args.source)
    data = load_dataset(name, root)
    channels = data.train.in_shape[0]
    shape = (channels, *args.size) if args.size else data.train.in_shape
    transform = (lambda chunk: to_shape(chunk, shape)) if tuple(shape) != data.train.in_shape else None
    header = pack_dataset(
        data,
        args.out,
        source=args.source,
        transform=transform,
        shape=shape,
        progress=describe_progress(time.perf_counter()),
    )
    print(
        f"store: {args.out}  ({header['train']:,} training + {header['test']:,} test images, "
        f"{'x'.join(map(str, header['shape']))}, sha256 {header['sha256'][:12]})"
    )
    print(f"use it with: --data store:{args.out}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``pack`` to the ``deepmimic`` parser's subcommands."""
    p = sub.add_parser(
        "pack",
        help="pack a data set into a memory-mapped store (read without loading it into memory)",
        description="Write a data set's training and test images into one memory-mapped uint8 array with its labels "
        "and a header (shape, class names, checksum). Resumable: run it again to finish an interrupted pack.",
    )
    p.add_argument("source", metavar="SOURCE", help="a data spec, e.g. mnist:../shared/data/mnist or images.npz")
    p.add_argument("out", metavar="OUT.dmstore", help="the store folder to write")
    p.add_argument("--size", type=_size, default=None, metavar="HxW", help="resize every image (antialiased)")
    p.set_defaults(func=_cmd_pack)
