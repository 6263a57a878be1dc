"""A class-per-subfolder image directory (optionally with train/ and test/ inside)."""

from __future__ import annotations

from pathlib import Path

import torch

from deepmimic.data.dataset import ImageDataset, TrainTest
from deepmimic.data.sources._common import require_dir, split_train_test
from deepmimic.data.sources.images import IMAGE_SUFFIXES, stack_images
from deepmimic.errors import DataError
from PIL import Image


def _scan(directory: Path) -> tuple[tuple[str, ...], list[Path], list[int]]:
    classes = tuple(sorted(p.name for p in directory.iterdir() if p.is_dir() and not p.name.startswith(".")))
    if not classes:
        raise DataError(f"{directory}: no class subfolders")
    paths: list[Path] = []
    labels: list[int] = []
    for index, name in enumerate(classes):
        files = sorted(p for p in (directory / name).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        paths += files
        labels += [index] * len(files)
    if not paths:
        raise DataError(f"{directory}: no images ({', '.join(IMAGE_SUFFIXES)}) in its class subfolders")
    return classes, paths, labels


def _any_colour(paths: list[Path]) -> bool:
    for path in paths:
        try:
            with Image.open(path) as img:
                if img.mode not in ("1", "L", "LA", "I", "I;16", "F"):
                    return True
        except (OSError, ValueError) as exc:
            raise DataError(f"{path}: unreadable image ({type(exc).__name__})") from exc
    return False


def _build(paths: list[Path], labels: list[int], classes: tuple[str, ...], channels: int, size: tuple[int, int] | None, name: str) -> ImageDataset:
    images = stack_images(paths, "RGB" if channels == 3 else "L", size)
    return ImageDataset(torch.from_numpy(images), torch.tensor(labels, dtype=torch.int64), classes, name)


def load_image_folder(
    root: str | Path, test_fraction: float = 0.2, seed: int = 0, channels: int | None = None, size: tuple[int, int] | list[int] | None = None
) -> TrainTest:
    """Images under ``root/<class>/`` (or ``root/train/<class>/`` and ``root/test/<class>/``)."""
    base = require_dir(root)
    if channels not in (None, 1, 3):
        raise DataError(f"channels must be 1 or 3, got {channels}")
    hw = tuple(size) if size is not None else None
    if (base / "train").is_dir() and (base / "test").is_dir():
        classes, train_paths, train_labels = _scan(base / "train")
        test_classes, test_paths, test_labels = _scan(base / "test")
        if test_classes != classes:
            raise DataError(f"{base}: train/ and test/ have different class folders")
        ch = channels or (3 if _any_colour(train_paths + test_paths) else 1)
        return TrainTest(
            _build(train_paths, train_labels, classes, ch, hw, f"{base.name}/train"),  # type: ignore[arg-type]
            _build(test_paths, test_labels, classes, ch, hw, f"{base.name}/test"),  # type: ignore[arg-type]
        )
    classes, paths, labels = _scan(base)
    ch = channels or (3 if _any_colour(paths) else 1)
    full = _build(paths, labels, classes, ch, hw, base.name)  # type: ignore[arg-type]
    return split_train_test(full, test_fraction, seed, base.name)
