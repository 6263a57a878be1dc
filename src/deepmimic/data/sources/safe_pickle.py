"""A restricted unpickler for the CIFAR python-version files.

``pickle.load`` on a user file can execute arbitrary code. The CIFAR pickles contain
only dicts, lists, bytes, strings, ints and numpy arrays, so only the globals needed to
rebuild numpy arrays are allowed; anything else is refused with a DataError.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

from deepmimic.errors import DataError

_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("_codecs", "encode"),  # how Python 2 pickles of str bytes are read with encoding="bytes"
}


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refuses to unpickle {module}.{name}")


def safe_unpickle(path: Path) -> Any:
    """Load a data pickle allowing only plain containers and numpy arrays."""
    try:
        with open(path, "rb") as handle:
            return _RestrictedUnpickler(handle, encoding="bytes").load()
    except FileNotFoundError as exc:
        raise DataError(f"{path}: no such file") from exc
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, ImportError) as exc:
        raise DataError(f"{path}: not a readable data pickle ({exc})") from exc
