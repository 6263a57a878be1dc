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


def load_yaml(text: str) -> Any:
    """Parse ``text`` as plain data (mappings, lists, strings, numbers, booleans, null)."""
    return yaml.load(text, Loader=PlainDataLoader)  # noqa: S506 (a SafeLoader subclass)
