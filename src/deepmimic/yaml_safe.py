"""YAML read as plain data: ``yaml.SafeLoader`` (no tags, no code) that also reads ``1e-3`` as a number.

PyYAML follows YAML 1.1, where a float needs a dot (``1.0e-3``); ``lr: 1e-3`` would come
back as the string ``"1e-3"``, which a strict config then refuses. This loader adds the
YAML 1.2 float forms (``1e-3``, ``5E+4``), so configs and ``--set`` values read as a user means.
"""

from __future__ import annotations

import re
from typing import Any

import yaml


class PlainDataLoader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 exponent floats."""


_FLOAT_12 = re.compile(r"^[-+]?(?:[0-9][0-9_]*)?(?:\.[0-9_]*)?[eE][-+]?[0-9]+$")
PlainDataLoader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT_12, list("-+0123456789."))


MAX_DEPTH = 100  # nested lists/mappings; deeper text is refused before the recursive composer sees it


def _too_deep(text: str) -> bool:
    """Whether flow brackets nest deeper than MAX_DEPTH (a cheap over-estimate: quotes are not parsed)."""
    depth = 0
    for ch in text:
        if ch in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                return True
        elif ch in "]}":
            depth = max(0, depth - 1)
    return False


def load_yaml(text: str) -> Any:
    """Parse ``text`` as plain data (mappings, lists, strings, numbers, booleans, null).

    Raises ``yaml.YAMLError`` for malformed text, including nesting deeper than
    :data:`MAX_DEPTH` (PyYAML composes recursively: 20,000 ``[`` would overflow the stack).
    """
    if _too_deep(text):
        raise yaml.YAMLError(f"nested deeper than {MAX_DEPTH} levels")
    try:
        return yaml.load(text, Loader=PlainDataLoader)  # noqa: S506 (a SafeLoader subclass)
    except RecursionError:  # deep block-style nesting
        raise yaml.YAMLError("nested too deeply") from None
