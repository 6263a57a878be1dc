"""User-facing errors.

Every problem caused by the user's input (a missing file, a malformed dataset, an
unknown config key, bad model notation, a teacher returning garbage) raises a
:class:`DeepMimicError` subclass whose message is one line naming the problem.
The CLI turns these into ``error: <message>`` on stderr and exit status 2, with no
traceback. Bugs (anything else) keep their traceback.
"""

from __future__ import annotations


class DeepMimicError(Exception):
    """Base class for errors a user can fix; the message is shown as one line."""

    exit_code: int = 2


class DataError(DeepMimicError):
    """A dataset could not be read: missing path, malformed file, count mismatch."""


class ConfigError(DeepMimicError):
    """A configuration file or override is invalid (unknown key, wrong type)."""


class ModelSpecError(DeepMimicError):
    """A model name or architecture notation could not be understood."""


class TrainingError(DeepMimicError):
    """Training cannot go on (non-finite loss, incompatible checkpoint)."""


class TeacherError(DeepMimicError):
    """A teacher cannot serve what a method needs, or returned invalid outputs."""
