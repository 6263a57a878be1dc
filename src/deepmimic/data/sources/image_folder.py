"""A class-per-subfolder image directory (optionally with train/ and test/ inside).

    root/<class>/*.png|jpg|jpeg|bmp|gif                     -> stratified test_fraction split
    root/train/<class>/...  and  root/test/<class>/...       -> used as given

Class names are the sorted subfolder names. Hidden files and folders are skipped. At most
:data:`~deepmimic.data.sources._common.MAX_CLASSES` class folders; a ``size`` may not
exceed Pillow's decompression-bomb limit (``PIL.Image.MAX_IMAGE_PIXELS`` pixels), so a
resize target cannot allocate more than one oversized image could.
"""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image

from deepmimic.data.dataset import ImageDataset, TrainTest
from deepmimic.data.sources._common import check_class_count, one_line, require_dir, split_train_test
from deepmimic.data.sources.images import IMAGE_SUFFIXES, stack_images
from deepmimic.errors import DataError

_GREY_MODES = ("1", "L", "LA", "I", "I;16", "F")


def _scan(directory: Path) -> tuple[tuple[str, ...], list[Path], list[int]]:
    """(class names, image paths, labels) of ``directory/<class>/*``."""
    try:
        classes = tuple(sorted(p.name for p in directory.iterdir() if p.is_dir() and not p.name.startswith(".")))
    except OSError as exc:  # permissions, I/O errors
        raise DataError(f"{directory}: cannot list ({one_line(exc)})") from exc
    if not classes:
        raise DataError(f"{directory}: no class subfolders")
    check_class_count(len(classes), str(directory), f"{len(classes)} class subfolders")
    paths: list[Path] = []
    labels: list[int] = []
    for index, name in enumerate(classes):
        try:
            files = sorted(
                p
                for p in (directory / name).iterdir()
                if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".") and p.is_file()
            )
        except OSError as exc:
            raise DataError(f"{directory / name}: cannot list ({one_line(exc)})") from exc
        paths += files
        labels += [index] * len(files)
    if not paths:
        raise DataError(f"{directory}: no images ({', '.join(IMAGE_SUFFIXES)}) in its class subfolders")
    return classes, paths, labels


def _any_colour(paths: list[Path]) -> bool:
    """Whether any image is in a colour mode (reads headers only)."""
    for path in paths:
        try:
            with Image.open(path) as img:
                if img.mode not in _GREY_MODES:
                    return True
        except Exception as exc:  # Pillow raises many types on garbage
            raise DataError(f"{path}: unreadable image ({one_line(exc)})") from exc
    return False


def _build(
    paths: list[Path],
    labels: list[int],
    classes: tuple[str, ...],
    channels: int,
    size: tuple[int, int] | None,
    name: str,
) -> ImageDataset:
    images = stack_images(paths, "RGB" if channels == 3 else "L", size, hint=" (set size= to resize)")  # (N, C, H, W)
    return ImageDataset(torch.from_numpy(images), torch.tensor(labels, dtype=torch.int64), classes, name)


def check_size(size: object) -> tuple[int, int] | None:
    if size is None:
        return None
    if (
        not isinstance(size, (tuple, list))
        or len(size) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in size)
    ):
        raise DataError(f"size must be two positive integers (H, W), got {size!r}")
    limit = Image.MAX_IMAGE_PIXELS  # None when a user has switched Pillow's check off
    if limit is not None and size[0] * size[1] > limit:  # each resized image would be this big
        raise DataError(
            f"size {tuple(size)} is {size[0] * size[1]} pixels per image, "
            f"above Pillow's limit of {int(limit)} (PIL.Image.MAX_IMAGE_PIXELS)"
        )
    return int(size[0]), int(size[1])


def load_image_folder(
    root: str | Path,
    test_fraction: float = 0.2,
    seed: int = 0,
    channels: int | None = None,
    size: tuple[int, int] | list[int] | None = None,
) -> TrainTest:
    """Images under ``root/<class>/`` (or ``root/train/<class>/`` and ``root/test/<class>/``).

    ``channels`` is 1 or 3 (default: 3 if any image is colour, else 1); ``size`` = (H, W)
    resizes every image (bilinear), otherwise all images must share one size.
    """
    base = require_dir(root)
    if channels not in (None, 1, 3):
        raise DataError(f"channels must be 1 or 3, got {channels!r}")
    hw = check_size(size)
    classes, parts = scan_parts(base)
    ch = channels or (3 if _any_colour([path for paths, _ in parts for path in paths]) else 1)
    if len(parts) == 2:
        (train_paths, train_labels), (test_paths, test_labels) = parts
        return TrainTest(
            _build(train_paths, train_labels, classes, ch, hw, f"{base.name}/train"),
            _build(test_paths, test_labels, classes, ch, hw, f"{base.name}/test"),
        )
    ((paths, labels),) = parts
    full = _build(paths, labels, classes, ch, hw, base.name)
    return split_train_test(full, test_fraction, seed, base.name)


def scan_parts(base: Path) -> tuple[tuple[str, ...], list[tuple[list[Path], list[int]]]]:
    """(class names, [(image paths, labels) of each part]): the train and test parts when ``base``
    holds train/ and test/ folders, else one part, everything under ``base/<class>/``.

    Shared with streaming packs (:mod:`deepmimic.data.sources.file_listing`), which list the
    files without reading them.
    """
    if (base / "train").is_dir() and (base / "test").is_dir():
        classes, train_paths, train_labels = _scan(base / "train")
        test_classes, test_paths, test_labels = _scan(base / "test")
        if test_classes != classes:
            raise DataError(
                f"{base}: train/ and test/ have different class folders "
                f"({', '.join(classes)} vs {', '.join(test_classes)})"
            )
        return classes, [(train_paths, train_labels), (test_paths, test_labels)]
    classes, paths, labels = _scan(base)
    return classes, [(paths, labels)]
