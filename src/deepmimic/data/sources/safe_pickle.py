"""A restricted unpickler for the CIFAR python-version files.

``pickle.load`` on a user file can execute arbitrary code. The CIFAR pickles contain
only dicts, lists, bytes, strings, ints and numpy arrays, so only the globals needed to
rebuild numpy arrays are allowed; anything else is refused with a DataError.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

from deepmimic.data.sources._common import one_line
from deepmimic.errors import DataError

_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("_codecs", "encode"),  # how protocol-2 pickles store bytes
}
# Plain constructors, under their Python 3 and Python 2 module names (protocols 0-2 name them).
_ALLOWED |= {
    (module, name) for module in ("builtins", "__builtin__") for name in ("dict", "list", "bytes", "str", "int")
}


class _Refused(pickle.UnpicklingError):
    """A global outside the allow-list was requested."""


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise _Refused(f"{module}.{name}")


def safe_unpickle(path: Path) -> Any:
    """Load a data pickle allowing only plain containers and numpy arrays."""
    try:
        with open(path, "rb") as handle:
            return _RestrictedUnpickler(handle, encoding="bytes").load()
    except FileNotFoundError as exc:
        raise DataError(f"{path}: no such file") from exc
    except _Refused as exc:
        raise DataError(f"{path}: refuses to unpickle {exc} (only containers and numpy arrays are allowed)") from exc
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({one_line(exc)})") from exc
    except Exception as exc:  # malformed pickles raise many types (UnpicklingError, EOFError, KeyError, ...)
        raise DataError(f"{path}: not a readable data pickle ({one_line(exc)})") from exc
