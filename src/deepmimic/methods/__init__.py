"""Training methods: each turns a batch into named losses (see :mod:`deepmimic.methods.base`)."""

from deepmimic.methods.base import Method
from deepmimic.methods.registry import METHODS, create_method
from deepmimic.methods.soft_label import SoftLabel, soft_cross_entropy
from deepmimic.methods.supervised import Supervised

__all__ = ["METHODS", "Method", "SoftLabel", "Supervised", "create_method", "soft_cross_entropy"]
