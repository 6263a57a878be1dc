"""Image files listed (not read) for streaming packs: an image folder's files or a tar's members.

A :class:`FileListing` is what ``deepmimic pack`` needs to stream a source without holding its
pixels: one :class:`FileItem` per image (where its bytes lie, its label), the training items
first. Its order is deterministic (sorted), so a pack can resume at an item index.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import NamedTuple

from deepmimic.data.sources._common import require_dir
from deepmimic.data.sources.image_folder import scan_parts  # the folder layout rules, shared with load_dataset

UNLABELLED = -1  # the label of an image whose class is not known (a tar member without .cls)


class FileItem(NamedTuple):
    """One source image: ``size`` bytes at ``offset`` of the file ``path`` (size -1: the whole file)."""

    name: str  # how the store's names.txt and skipped.txt call it
    path: str
    offset: int
    size: int
    label: int  # class index, or UNLABELLED


class FileListing(NamedTuple):
    """The images of a file source: ``items[:n_train]`` are training images, the rest test images."""

    items: list[FileItem]
    n_train: int
    class_names: tuple[str, ...]

    @property
    def labelled(self) -> bool:
        """Whether every image has a class."""
        return all(item.label != UNLABELLED for item in self.items)

    def fingerprint(self) -> str:
        """SHA-256 of the names, labels and train/test division: changes when the source's files do."""
        digest = hashlib.sha256(f"{self.n_train}\n".encode())
        for item in self.items:
            digest.update(f"{item.name}\t{item.label}\n".encode("utf-8", "surrogateescape"))
        return digest.hexdigest()


def list_image_folder(root: str | Path) -> FileListing:
    """The files of ``root/<class>/`` (all training) or ``root/train/<class>/`` and ``root/test/<class>/``.

    The same layout rules as ``image-folder`` data (:mod:`deepmimic.data.sources.image_folder`),
    except that a flat folder is not split: every image is a training image.
    """
    base = require_dir(root)
    classes, parts = scan_parts(base)
    n_train = len(parts[0][0])  # a flat folder's one part is all training images
    items = [
        FileItem(str(path.relative_to(base)), str(path), 0, -1, label)
        for paths, labels in parts
        for path, label in zip(paths, labels)
    ]
    return FileListing(items, n_train, classes)
