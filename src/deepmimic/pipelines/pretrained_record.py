"""What a resume record says about a pretrained model: its spec, its options and the bytes it was read from.

Pipelines that use a pretrained model (DeepMimic's pretrained mentor, FEED's pretrained
teachers) record it in their stages' inputs, so ``--resume`` refuses a run whose
checkpoint file changed under the same path (:mod:`deepmimic.pipelines.resume_guard`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def file_digest(spec: str) -> str | None:
    """SHA-256 of the file a pretrained spec reads (``ARCH:PATH``, ``.ts``, ``.pt2``), or None for an entry point."""
    path = Path(spec.partition(":")[2] if ":" in spec and not Path(spec).is_file() else spec).expanduser()
    if not path.is_file():
        return None
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def pretrained_record(spec: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """``{"pretrained": spec, "pretrained_options": options, "file": SHA-256 or None}`` for a stage's inputs.

    For an entry point (``module:factory``) the file is its ``weights=`` checkpoint, when given.
    """
    digest = file_digest(spec)
    if digest is None and "weights" in options:
        digest = file_digest(str(options["weights"]))
    return {"pretrained": spec, "pretrained_options": dict(options), "file": digest}
