"""Tiny ImageNet from its original folder layout.

    wnids.txt                         one WordNet id per class (defines class order)
    words.txt                         optional: "wnid<TAB>name, synonym, ..."
    train/<wnid>/images/*.JPEG        training images
    val/images/*.JPEG + val/val_annotations.txt   "file<TAB>wnid<TAB>bbox..."

The validation set serves as the test set (the official test labels are not public).
Images are decoded as RGB (a few are greyscale in the original). At most
:data:`~deepmimic.data.sources._common.MAX_CLASSES` wnids; the file names in
val_annotations.txt must be plain names inside val/images/.
"""

from __future__ import annotations

from pathlib import Path

import torch

from deepmimic.data.dataset import ImageDataset, TrainTest
from deepmimic.data.sources._common import check_class_count, one_line, require_dir
from deepmimic.data.sources.images import stack_images
from deepmimic.errors import DataError


def _read_lines(path: Path) -> list[str]:
    """Non-blank stripped lines of a text file; DataError if it is missing."""
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:  # permissions, I/O errors
        raise DataError(f"{path}: cannot read ({one_line(exc)})") from exc
    return [line.strip() for line in text.splitlines() if line.strip()]


def _class_names(root: Path, wnids: list[str]) -> tuple[str, ...]:
    """First comma-part of each wnid's words.txt entry ("goldfish"), else the wnid itself."""
    words: dict[str, str] = {}
    if (root / "words.txt").is_file():
        for line in _read_lines(root / "words.txt"):
            wnid, _, names = line.partition("\t")
            words[wnid] = names.split(",")[0].strip()
    return tuple(words.get(w) or w for w in wnids)


def _dataset(
    paths: list[Path], labels: list[int], classes: tuple[str, ...], wnids: list[str], name: str, where: Path
) -> ImageDataset:
    """Decode ``paths`` as RGB into (N, 3, H, W); every image must have the first one's size."""
    if not paths:
        raise DataError(f"{where}: holds no images")
    images = torch.from_numpy(stack_images(paths, "RGB"))
    return ImageDataset(images, torch.tensor(labels, dtype=torch.int64), classes, name, meta={"wnids": tuple(wnids)})


def load_tiny_imagenet(root: str | Path) -> TrainTest:
    """Train and val parts of a Tiny ImageNet directory (any number of classes)."""
    base = require_dir(root)
    wnids = _read_lines(base / "wnids.txt")
    if not wnids:
        raise DataError(f"{base / 'wnids.txt'}: no wnids")
    check_class_count(len(wnids), str(base / "wnids.txt"), f"{len(wnids)} wnids")
    for wnid in wnids:  # each names a folder train/<wnid>/: no path tricks
        if wnid in (".", "..") or "/" in wnid or "\\" in wnid:
            raise DataError(f"{base / 'wnids.txt'}: {wnid!r} is not a plain wnid")
    if len(set(wnids)) != len(wnids):
        raise DataError(f"{base / 'wnids.txt'}: repeated wnids")
    index = {w: i for i, w in enumerate(wnids)}
    classes = _class_names(base, wnids)

    train_paths: list[Path] = []
    train_labels: list[int] = []
    for wnid in wnids:
        folder = base / "train" / wnid / "images"
        if not folder.is_dir():
            raise DataError(f"{folder}: no such directory (class {wnid} from wnids.txt)")
        try:
            files = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpeg", ".jpg", ".png"))
        except OSError as exc:
            raise DataError(f"{folder}: cannot list ({one_line(exc)})") from exc
        train_paths += files
        train_labels += [index[wnid]] * len(files)

    annotations = base / "val" / "val_annotations.txt"
    val_paths: list[Path] = []
    val_labels: list[int] = []
    for number, line in enumerate(_read_lines(annotations), start=1):
        fields = line.split("\t")
        if len(fields) < 2:
            raise DataError(f"{annotations}:{number}: expected 'file<TAB>wnid'")
        if fields[0] in ("", ".", "..") or "/" in fields[0] or "\\" in fields[0]:  # must name a file in val/images/
            raise DataError(f"{annotations}:{number}: {fields[0]!r} is not a plain file name")
        if fields[1] not in index:
            raise DataError(f"{annotations}:{number}: unknown wnid {fields[1]} (not in wnids.txt)")
        val_paths.append(base / "val" / "images" / fields[0])
        val_labels.append(index[fields[1]])
    return TrainTest(
        _dataset(train_paths, train_labels, classes, wnids, "tiny-imagenet/train", base / "train"),
        _dataset(val_paths, val_labels, classes, wnids, "tiny-imagenet/test", base / "val"),
    )
