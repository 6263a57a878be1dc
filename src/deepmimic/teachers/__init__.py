"""Teachers: what a student learns from (see :mod:`deepmimic.teachers.base`)."""

from deepmimic.teachers.base import PROVIDABLE, Teacher, TeacherOutput, describe_teacher, validate_probs
from deepmimic.teachers.cached import CachedTeacher
from deepmimic.teachers.ensemble import EnsembleTeacher
from deepmimic.teachers.module import ModuleTeacher

__all__ = [
    "PROVIDABLE",
    "CachedTeacher",
    "EnsembleTeacher",
    "ModuleTeacher",
    "Teacher",
    "TeacherOutput",
    "describe_teacher",
    "validate_probs",
]
