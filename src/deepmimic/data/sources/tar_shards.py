"""WebDataset-style tar shards, listed (not read) for streaming packs.

    shard-000.tar:  0001.jpg  0001.cls  0002.png  0002.cls  ...

SOURCE is one ``.tar`` file, a folder (its ``*.tar`` files; not recursive) or a glob
(``*``, ``?``, ``[...]``; no braces). A member's key is its path up to the first dot of its
base name. Every member whose suffix is an image suffix (``.png``, ``.jpg``, ...) is one
image, labelled by the ``KEY.cls`` member of the same shard (the class index as decimal
text) or, without one, unlabelled (:data:`~deepmimic.data.sources.file_listing.UNLABELLED`).
Class names are the lines of a ``classes.txt`` beside the shards (line i names class i), or
else ``class_<i>`` for 0 up to the largest label. Shards must be uncompressed tars: members
are read in place by their offset, never extracted. Shards and their members are taken in
sorted order, so a listing is deterministic.
"""

from __future__ import annotations

import glob
import os
import tarfile
from pathlib import Path

from deepmimic.data.sources._common import check_class_count, one_line
from deepmimic.data.sources.file_listing import UNLABELLED, FileItem, FileListing
from deepmimic.data.sources.images import IMAGE_SUFFIXES
from deepmimic.errors import DataError

CLASSES_FILE = "classes.txt"
_GLOB_CHARS = "*?["
_MAX_CLS_BYTES = 64  # a class id is a short decimal number; a larger .cls member is malformed


def is_tar_source(spec: str) -> bool:
    """Whether a bare ``spec`` names tar shards: a ``.tar`` path or glob, or a folder holding ``*.tar``."""
    if spec.lower().endswith(".tar"):
        return True
    path = Path(spec).expanduser()
    return not any(c in spec for c in _GLOB_CHARS) and path.is_dir() and any(path.glob("*.tar"))


def find_shards(spec: str) -> list[Path]:
    """The sorted shard files ``spec`` names (a file, a folder's ``*.tar`` or a glob); else a DataError."""
    if any(c in spec for c in _GLOB_CHARS):
        shards = sorted(Path(p) for p in glob.glob(os.path.expanduser(spec)) if os.path.isfile(p))
        if not shards:
            raise DataError(f"{spec}: no files match")
        return shards
    path = Path(spec).expanduser()
    if path.is_dir():
        shards = sorted(p for p in path.glob("*.tar") if p.is_file())
        if not shards:
            raise DataError(f"{path}: no *.tar shards in this folder")
        return shards
    if not path.is_file():
        raise DataError(f"{path}: no such file or folder")
    return [path]


def list_tar_shards(spec: str) -> FileListing:
    """Every image member of the shards ``spec`` names, all as training images (see the module doc)."""
    shards = find_shards(spec)
    base = Path(os.path.commonpath([str(s.absolute().parent) for s in shards]))
    items: list[FileItem] = []
    for shard in shards:
        items += _scan_shard(shard, os.path.relpath(shard.absolute(), base))
    if not items:
        raise DataError(f"{spec}: no images ({', '.join(IMAGE_SUFFIXES)}) in the tar shards")
    return FileListing(items, len(items), _class_names(base, items))


def _scan_shard(shard: Path, label: str) -> list[FileItem]:
    """The image members of one shard (sorted by name), each with its ``.cls`` label; names ``LABEL:MEMBER``."""
    images: list[tuple[str, str, int, int]] = []  # (member name, key, data offset, size)
    classes: dict[str, int] = {}
    try:
        with tarfile.open(shard, mode="r:") as tar:  # "r:": uncompressed only (offsets index the file)
            for member in tar:  # reads the headers; data blocks are skipped, not read
                base = member.name.rsplit("/", 1)[-1]
                if not member.isreg() or base.startswith("."):
                    continue
                key = member.name[: len(member.name) - len(base)] + base.split(".", 1)[0]
                if os.path.splitext(base)[1].lower() in IMAGE_SUFFIXES:
                    images.append((member.name, key, member.offset_data, member.size))
                elif base.split(".", 1)[-1] == "cls":
                    classes[key] = _read_cls(tar, member, f"{shard}:{member.name}")
    except tarfile.TarError as exc:
        raise DataError(f"{shard}: not an uncompressed tar file ({one_line(exc)})") from exc
    except OSError as exc:
        raise DataError(f"{shard}: cannot read ({one_line(exc)})") from exc
    return [
        FileItem(f"{label}:{name}", str(shard), offset, size, classes.get(key, UNLABELLED))
        for name, key, offset, size in sorted(images)
    ]


def _read_cls(tar: tarfile.TarFile, member: tarfile.TarInfo, where: str) -> int:
    """The class index a ``.cls`` member holds (decimal text)."""
    handle = tar.extractfile(member)
    text = handle.read(_MAX_CLS_BYTES + 1).decode("utf-8", "replace").strip() if handle else ""
    if not (text.isascii() and text.isdigit()) or len(text) > _MAX_CLS_BYTES:  # int() takes other digits too
        raise DataError(f"{where}: expected a class index (a non-negative integer), got {text[:20]!r}")
    check_class_count(int(text) + 1, where, f"class {int(text)}")
    return int(text)


def _class_names(base: Path, items: list[FileItem]) -> tuple[str, ...]:
    """Names from ``base/classes.txt`` (checked against the labels), else ``class_<i>``."""
    largest = max((item.label for item in items), default=UNLABELLED)
    path = base / CLASSES_FILE
    if not path.is_file():
        return tuple(f"class_{i}" for i in range(largest + 1))
    try:
        names = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read ({one_line(exc)})") from exc
    while names and not names[-1]:  # trailing blank lines name no class
        names.pop()
    if largest >= len(names):
        raise DataError(f"{path}: names {len(names)} classes, but a .cls member holds class {largest}")
    return tuple(names)
