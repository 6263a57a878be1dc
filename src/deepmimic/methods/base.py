"""The Method contract: a method turns a batch into named losses.

The engine sums the losses, steps the optimiser and never branches on which method
runs. A method owns the student (``self.student``) and any extra trainable modules as
submodules, so ``method.parameters()`` is exactly what gets optimised and
``method.state_dict()`` is exactly what a checkpoint saves. Teachers are never
submodules: they are frozen and their outputs reach the method as batch targets.

Constructors take keyword hyperparameters, store them under the same names and do no
work, so a YAML block maps 1:1 onto a call and unknown keys fail early.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from deepmimic.data.batches import Batch


class Method(nn.Module):
    """Base class for training methods.

    Class attributes:
        needs: batch target names the method reads (``"labels"``, ``"probs"``, ...);
            checked before training so a mismatch fails early with a clear message.
        uses_labels: True when the method reads ground-truth labels. Student methods of
            DeepMimic never do.
    """

    needs: ClassVar[frozenset[str]] = frozenset()
    uses_labels: ClassVar[bool] = False

    def __init__(self, student: nn.Module) -> None:
        super().__init__()
        self.student = student

    def losses(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Named scalar losses for ``batch``; the engine minimises their sum."""
        raise NotImplementedError

    def hyperparameters(self) -> dict[str, object]:
        """The constructor's keyword arguments, for logs and results files."""
        return {}
