"""Configuration of the FEED experiments (FEED paper, Tables 1-5), validated strictly."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, PositiveInt

from deepmimic.config import DataConfig, PaperReference
from deepmimic.engine.settings import StrictModel, TrainSettings


class SequentialFeedConfig(StrictModel):
    """sFEED: generation n learns from generation n-1 by factor transfer (Tables 1-3)."""

    stacks: int = Field(3, ge=1, le=5)  # generations in all; generation 1 is the scratch model of the first seed
    beta: float = 500.0
    paraphraser: bool = True  # "the first FT stage is the same as the original work"
    paraphraser_epochs: int = Field(5, ge=0)


class ParallelFeedConfig(StrictModel):
    """pFEED: one student learns from the k scratch models at once (Tables 4-5)."""

    enabled: bool = True
    beta: float = 500.0


class KdConfig(StrictModel):
    """The baseline of Table 4: KD from the ensemble's averaged softened outputs."""

    enabled: bool = True
    temperature: float = 4.0
    alpha: float = 1.0  # weight of the hard-label cross-entropy beside T^2 * KL


class FeedConfig(StrictModel):
    """Scratch models (several seeds; their ensemble), KD from the ensemble, pFEED, sFEED."""

    pipeline: Literal["feed"] = "feed"
    name: str = "feed"
    output_dir: str = "runs/feed"
    data: DataConfig
    model: str = "resnet20"
    model_options: dict[str, Any] = Field(default_factory=dict)
    train: TrainSettings = Field(default_factory=TrainSettings)
    scratch_seeds: list[int] = Field(default_factory=lambda: [0, 1, 2], min_length=1)
    student_seed: PositiveInt = 100  # initial weights of the KD and pFEED students and sFEED generations 2..
    sfeed: SequentialFeedConfig = Field(default_factory=SequentialFeedConfig)
    pfeed: ParallelFeedConfig = Field(default_factory=ParallelFeedConfig)
    kd: KdConfig = Field(default_factory=KdConfig)
    paper: PaperReference | None = None
