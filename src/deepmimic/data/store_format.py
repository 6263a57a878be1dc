"""The packed store's on-disk format: file names, header checks and checksums (shared by writer and reader).

A store is a folder (``NAME.dmstore``)::

    header.json   {"format", "shape": [C, H, W], "train": N_train, "test": N_test, "class_names",
                   "source", "packed": rows written so far, "sha256": of images.u8 once complete}
    images.u8     (N_train + N_test, C, H, W) uint8 in C order: the training rows, then the test rows
    labels.npy    int64 (N_train + N_test,)
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from deepmimic.errors import DataError

FORMAT = "dmstore-1"
HEADER, IMAGES, LABELS = "header.json", "images.u8", "labels.npy"


def read_header(store: Path) -> dict[str, Any]:
    if not store.exists():
        raise DataError(f"{store}: no such directory")
    try:
        header = json.loads((store / HEADER).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{store}: not a deepmimic store (no {HEADER}; make one with deepmimic pack)") from None
    except (OSError, ValueError) as exc:
        raise DataError(f"{store}/{HEADER}: unreadable ({exc})") from exc
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise DataError(f"{store}/{HEADER}: not a {FORMAT} header")
    return header


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()
