"""Atomic file writing: outputs appear whole or not at all.

Every file the library writes goes to a temporary name in the same directory and
is renamed into place (``os.replace`` is atomic on POSIX and Windows), so a crash
never leaves a half-written checkpoint, cache or report behind.

Under torchrun only rank 0 writes: on the other ranks :func:`atomic_path` hands out a
scratch file that is deleted afterwards, so no output file is touched twice whatever the
calling code does (:mod:`deepmimic.distributed`).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from deepmimic import distributed
from deepmimic.errors import ConfigError


def _current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], *, every_rank: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` on success.

    The temporary file is removed if the body raises. On a rank other than 0 of a
    distributed run, the body writes to a scratch file that is then discarded, unless
    ``every_rank`` says the file is this rank's own (a shard, a per-rank query log).
    """
    if not every_rank and not distributed.is_main():
        with tempfile.TemporaryDirectory(prefix="deepmimic-rank-") as scratch:
            yield Path(scratch) / Path(path).name
        return
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        if tmp.exists():
            os.chmod(tmp, 0o666 & ~_current_umask())  # mkstemp makes 0600; outputs get the usual mode
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO[Any]]:
    """Open a temporary file for writing and rename it onto ``path`` when closed cleanly."""
    if "b" in mode:
        encoding = None
    with atomic_path(path) as tmp, open(tmp, mode, encoding=encoding) as handle:
        yield handle
        handle.flush()
        os.fsync(handle.fileno())


def write_json(path: str | os.PathLike[str], payload: Any) -> None:
    """Write ``payload`` as indented JSON, atomically."""
    with atomic_open(path) as handle:
        json.dump(payload, handle, indent=2, sort_keys=False)
        handle.write("\n")


def write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` atomically."""
    with atomic_open(path) as handle:
        handle.write(text)


def slugify(name: str) -> str:
    """A file-system-safe lower-case name: ``"sFEED stack 2"`` -> ``"sfeed-stack-2"``."""
    slug = "".join(ch.lower() if ch.isalnum() else "-" for ch in name)
    while "--" in slug:
        slug = slug.replace("--", "-")
    return slug.strip("-") or "model"


def _nearest_existing(path: Path) -> Path:
    """``path`` itself or its closest ancestor that exists."""
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return probe


def check_output_dir(path: str | os.PathLike[str], what: str = "output folder") -> Path:
    """Fail (one line) unless ``path`` is a folder, or could be created, and is writable.

    Called before any work, so a job that cannot write its results fails before it pays
    for training or queries. Nothing is created here.
    """
    target = Path(path).expanduser()
    if target.exists() and not target.is_dir():
        raise ConfigError(f"{what} {target}: exists and is not a folder")
    base = _nearest_existing(target.absolute())
    if not base.is_dir():
        raise ConfigError(f"{what} {target}: cannot be created ({base} is not a folder)")
    try:  # a real probe: os.access says yes to root even on /proc or a read-only mount
        with tempfile.TemporaryFile(dir=base, prefix=".deepmimic-probe-"):
            pass
    except OSError as exc:
        raise ConfigError(
            f"{what} {target}: cannot be written in {base} ({exc.strerror or type(exc).__name__})"
        ) from None
    return target


def check_output_file(path: str | os.PathLike[str], what: str = "output file") -> Path:
    """Fail (one line) unless ``path`` names a file that can be written (an existing file is replaced)."""
    target = Path(path).expanduser()
    if target.is_dir():
        raise ConfigError(f"{what} {target}: is a folder; give a file name")
    if str(path).endswith(("/", os.sep)):
        raise ConfigError(f"{what} {path}: give a file name, not a folder")
    check_output_dir(target.parent, what=f"{what} {target}: its folder")
    if target.exists() and not os.access(target, os.W_OK):
        raise ConfigError(f"{what} {target}: exists and is not writable")
    return target


def make_output_dir(path: str | os.PathLike[str], what: str = "output folder") -> Path:
    """Create the folder ``path`` (and its parents); an OS refusal becomes a one-line error."""
    target = check_output_dir(path, what)
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"{what} {target}: cannot be created ({exc.strerror or type(exc).__name__})") from exc
    return target


def remove_empty_tree(path: str | os.PathLike[str]) -> None:
    """Remove ``path`` if it is a folder holding no files (only empty folders); else leave it."""
    root = Path(path)
    if not root.is_dir() or any(p.is_file() or p.is_symlink() for p in root.rglob("*")):
        return
    try:  # best effort: called while another error propagates, which must stay the one reported
        for folder in sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
            folder.rmdir()
        root.rmdir()
    except OSError:
        pass
