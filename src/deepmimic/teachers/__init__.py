"""Teachers: what a student learns from (see :mod:`deepmimic.teachers.base`)."""

from deepmimic.teachers.base import PROVIDABLE, Teacher, TeacherOutput, validate_probs
from deepmimic.teachers.labeling import label_images
from deepmimic.teachers.module import ModuleTeacher

__all__ = ["PROVIDABLE", "ModuleTeacher", "Teacher", "TeacherOutput", "label_images", "validate_probs"]
