"""Training methods: each turns a batch into named losses (see :mod:`deepmimic.methods.base`)."""

from deepmimic.methods.base import Method
from deepmimic.methods.factor_transfer import FactorTransfer
from deepmimic.methods.imitation import Imitation
from deepmimic.methods.kd import KnowledgeDistillation
from deepmimic.methods.losses import kd_loss, soft_cross_entropy
from deepmimic.methods.pfeed import ParallelFeed
from deepmimic.methods.registry import METHODS, create_method, method_options
from deepmimic.methods.soft_label import SoftLabel
from deepmimic.methods.supervised import Supervised

__all__ = [
    "METHODS",
    "FactorTransfer",
    "Imitation",
    "KnowledgeDistillation",
    "Method",
    "ParallelFeed",
    "SoftLabel",
    "Supervised",
    "create_method",
    "kd_loss",
    "method_options",
    "soft_cross_entropy",
]
