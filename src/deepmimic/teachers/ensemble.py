"""An ensemble teacher: the average of its members' probabilities."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from deepmimic.errors import TeacherError
from deepmimic.teachers.base import Teacher, TeacherOutput


class EnsembleTeacher:
    """p(x) = mean_m p_m(x). Provides what every member provides.

    Its ``logits`` are log p(x) (valid scores for the averaged distribution), available
    when every member gives logits; ``input_grad`` when every member is differentiable;
    ``features`` as every member's maps, keyed ``"<member index>.<layer>"`` (parallel FEED).
    """

    def __init__(self, members: Sequence[Teacher]) -> None:
        if not members:
            raise TeacherError("an ensemble needs at least one member")
        classes = {m.num_classes for m in members}
        if len(classes) != 1:
            raise TeacherError(f"ensemble members disagree on the number of classes: {sorted(classes)}")
        self.members = list(members)
        self.num_classes = classes.pop()
        self.provides = frozenset.intersection(*(frozenset(m.provides) for m in members))

    def predict(self, x: torch.Tensor, index: torch.Tensor | None = None) -> TeacherOutput:
        answers = [m.predict(x, index) for m in self.members]
        probs = torch.stack([a.probs for a in answers]).mean(dim=0)  # (B, K)
        logits = torch.log(probs.clamp_min(1e-12)) if "logits" in self.provides else None
        features = None
        if "features" in self.provides:  # member i's map "layer3" is "i.layer3"
            features = {f"{i}.{name}": t for i, a in enumerate(answers) for name, t in (a.features or {}).items()}
        return TeacherOutput(probs=probs, logits=logits, features=features)

    def to(self, device: torch.device) -> EnsembleTeacher:
        for member in self.members:
            member.to(device)
        return self

    def compile(self) -> None:
        """Compile every member that can be compiled (white-box modules)."""
        for member in self.members:
            compile_member = getattr(member, "compile", None)
            if callable(compile_member):
                compile_member()
