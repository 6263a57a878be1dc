"""``deepmimic pack``: turn a data set into a packed, memory-mapped store (issue 17).

    deepmimic pack SOURCE OUT.dmstore [--size HxW] [--channels 1|3] [--workers N]

SOURCE is any data spec the package reads (``mnist:ROOT``, ``cifar10:ROOT``, ``x.npz``, ...),
packed from memory, or a file source, streamed: ``image-folder:DIR`` or tar shards
(``tar:PATH``, or a bare ``x.tar``, ``shards/*.tar`` or folder of ``*.tar``), decoded in
``--workers`` processes and never held whole (:mod:`deepmimic.data.pack_files`). Train with
``--data store:OUT.dmstore`` or ``data: {name: store, root: OUT.dmstore}``; see
:mod:`deepmimic.data.store`.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from typing import Any


def _size(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"(\d+)x(\d+)", text.strip().lower())
    if not match or min(int(match[1]), int(match[2])) < 1:
        raise argparse.ArgumentTypeError(f"expected HxW, e.g. 32x32, got '{text}'")
    return int(match[1]), int(match[2])


def _workers(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive number of processes, got '{text}'")
    return int(text)


def _pack_in_memory(args: argparse.Namespace, progress: Callable[[int, int], None]) -> dict[str, Any]:
    """Load the whole data set, then pack it (optionally converted to --channels and --size)."""
    from deepmimic.data.convert import to_shape
    from deepmimic.data.registry import load_dataset
    from deepmimic.data.spec import parse_data_spec
    from deepmimic.data.store import pack_dataset

    name, root = parse_data_spec(args.source)
    data = load_dataset(name, root)
    channels, *hw = data.train.in_shape
    shape = (args.channels or channels, *(args.size or hw))
    transform = (lambda chunk: to_shape(chunk, shape)) if tuple(shape) != data.train.in_shape else None
    return pack_dataset(data, args.out, source=args.source, transform=transform, shape=shape, progress=progress)


def _cmd_pack(args: argparse.Namespace) -> int:
    import time

    from deepmimic.data.pack_files import default_workers, file_source, pack_files
    from deepmimic.data.store import describe_progress

    progress = describe_progress(time.perf_counter())
    listing = file_source(args.source)
    if listing is None:
        header = _pack_in_memory(args, progress)
    else:
        header = pack_files(
            listing,
            args.out,
            source=args.source,
            size=args.size,
            channels=args.channels,
            workers=args.workers or default_workers(),
            progress=progress,
        )
    notes = ""
    if "skipped" in header:
        notes = f", {header['skipped']:,} unreadable image{'' if header['skipped'] == 1 else 's'} skipped"
        notes += f" (listed in {args.out}/{header['skipped_report']})" if header["skipped"] else ""
    if header.get("labelled") is False:
        notes += ", some images unlabelled (label -1)"
    print(
        f"store: {args.out}  ({header['train']:,} training + {header['test']:,} test images, "
        f"{'x'.join(map(str, header['shape']))}, sha256 {header['sha256'][:12]}{notes})"
    )
    print(f"use it with: --data store:{args.out}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``pack`` to the ``deepmimic`` parser's subcommands."""
    p = sub.add_parser(
        "pack",
        help="pack a data set into a memory-mapped store (read without loading it into memory)",
        description="Write a data set's training and test images into one memory-mapped uint8 array with its labels "
        "and a header (shape, class names, checksum). Image folders (image-folder:DIR) and tar shards (x.tar, "
        "shards/*.tar, a folder of *.tar, or tar:PATH; members NAME.jpg|png|... with an optional NAME.cls class "
        "index) are streamed: decoded in worker processes, never held whole; unreadable images are skipped and "
        "listed in OUT/skipped.txt. Resumable: run it again to finish an interrupted pack.",
    )
    p.add_argument(
        "source",
        metavar="SOURCE",
        help="a data spec, e.g. mnist:../shared/data/mnist, images.npz, image-folder:DIR or shards/*.tar",
    )
    p.add_argument("out", metavar="OUT.dmstore", help="the store folder to write")
    p.add_argument(
        "--size",
        type=_size,
        default=None,
        metavar="HxW",
        help="resize every image (data sets: antialiased, no crop; image files: to cover HxW, then centre-cropped); "
        "needed for image files of mixed sizes",
    )
    p.add_argument(
        "--channels",
        type=int,
        choices=(1, 3),
        default=None,
        help="1 (grey) or 3 (RGB); default: the data set's, or for image files 3 if any is colour, else 1",
    )
    p.add_argument(
        "--workers",
        type=_workers,
        default=None,
        metavar="N",
        help="processes decoding image files (default: min(4, CPUs)); the store is the same for any N",
    )
    p.set_defaults(func=_cmd_pack)
