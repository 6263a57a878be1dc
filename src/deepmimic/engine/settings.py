"""Training hyperparameters, validated strictly (unknown keys and wrong types fail)."""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, field_validator


class StrictModel(BaseModel):
    """A pydantic model that rejects unknown keys and silent type coercion.

    Strict: ``epochs: '2'``, ``epochs: 2.0`` and ``seed: true`` are refused, not coerced
    (an int where a float is expected is fine). ``--set`` values are parsed as YAML first,
    so ``--set train.epochs=2`` gives the integer 2.
    """

    model_config = ConfigDict(extra="forbid", strict=True, validate_assignment=True)


class TrainSettings(StrictModel):
    """How one model is trained: optimiser, schedule, epochs, batches, seed, device.

    Defaults follow the DeepMimic paper's recipe (SGD with momentum, section 3.2).
    """

    epochs: PositiveInt = 10
    batch_size: PositiveInt = 128
    optimizer: Literal["sgd", "adam"] = "sgd"
    lr: float = Field(0.05, gt=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    nesterov: bool = False
    weight_decay: float = Field(5e-4, ge=0)
    schedule: Literal["constant", "step", "multistep", "cosine"] = "cosine"
    step_size: PositiveInt = 30  # epochs between decays for schedule=step
    # schedule=multistep: lr x gamma at each milestone, given as fractions of the run
    # (FEED's 160 epochs with drops at 80 and 120 are [0.5, 0.75]).
    milestones: list[float] = Field(default_factory=lambda: [0.5, 0.75])
    gamma: float = Field(0.1, gt=0, le=1)
    warmup_epochs: int = Field(0, ge=0)  # linear warm-up from lr / (warmup_epochs + 1), before the schedule
    augment: Literal["none", "crop-flip"] = "none"
    seed: int = 0
    device: str = "auto"  # "auto" (CUDA when present), "cpu", "cuda", "cuda:1", ...
    eval_batch_size: PositiveInt = 1024
    # Test-set evaluation cadence (curve points): every N epochs, or "auto" = every ceil(epochs / 10)
    # (about 10 points); always after the last epoch, on the full test set.
    eval_every: PositiveInt | Literal["auto"] = "auto"
    eval_subset: PositiveInt | None = None  # curve points before the last on a fixed stratified subset of this size
    # checkpoint.pt after an epoch when checkpoint_every divides it, or when checkpoint_seconds
    # have passed since the last write (0: every epoch); always after the last epoch.
    checkpoint_every: PositiveInt | None = None
    checkpoint_seconds: float = Field(60.0, ge=0)
    # Speed switches (docs/scaling.md). "auto": bf16 and GPU-resident data on CUDA only;
    # channels_last on CUDA and for conv nets on the CPU (measured faster there too).
    precision: Literal["auto", "fp32", "bf16"] = "auto"  # bf16 autocast of the forward pass
    channels_last: bool | Literal["auto"] = "auto"  # NHWC memory layout for conv nets
    data_on_device: bool | Literal["auto"] = "auto"  # keep uint8 images and targets on the GPU
    # A thread gathers the next batch of a streamed store while this one trains. "auto": on CUDA,
    # or when a CPU core is left over beside the compute threads (on 2 cores it measured slower).
    read_ahead: bool | Literal["auto"] = "auto"
    # Denormal floats read as zero on the CPU while training: a saturated softmax's gradients
    # (~1e-40) made conv backward passes 7x slower (measured: docs/scaling.md). "auto": on the CPU.
    flush_denormal: bool | Literal["auto"] = "auto"
    compile: bool = False  # torch.compile the student (nn.Module.compile: weights keep their names)
    compile_teacher: bool = False  # torch.compile a white-box teacher too (online methods)

    @field_validator("milestones")
    @classmethod
    def _fractions(cls, milestones: list[float]) -> list[float]:
        if any(not 0 < m < 1 for m in milestones) or milestones != sorted(set(milestones)):
            raise ValueError(f"milestones must be increasing fractions of the run between 0 and 1, got {milestones}")
        return milestones

    def eval_interval(self) -> int:
        """Epochs between test-set evaluations: ``eval_every``, or for "auto" ``ceil(epochs / 10)``."""
        return math.ceil(self.epochs / 10) if self.eval_every == "auto" else self.eval_every

    def evaluates_at(self, epoch: int) -> bool:
        """Whether the test set is evaluated after ``epoch`` (every :meth:`eval_interval` epochs and the last)."""
        return epoch % self.eval_interval() == 0 or epoch == self.epochs

    def milestone_epochs(self) -> list[int]:
        """The epochs after which a multistep schedule multiplies the lr by gamma (at least epoch 1)."""
        return sorted({max(1, round(m * self.epochs)) for m in self.milestones})
