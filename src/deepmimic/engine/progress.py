"""Progress output: a tqdm bar on a terminal, plain lines otherwise (logs, CI)."""

from __future__ import annotations

import sys
from typing import TextIO

from tqdm import tqdm


class EpochProgress:
    """Reports batches within an epoch and a summary line per epoch."""

    def __init__(
        self,
        label: str,
        total_batches: int,
        epoch: int,
        epochs: int,
        enabled: bool | None = None,
        stream: TextIO | None = None,
    ) -> None:
        self.stream = stream or sys.stderr
        self.label = label
        self.epoch = epoch
        self.epochs = epochs
        interactive = self.stream.isatty() if enabled is None else enabled
        self.bar = (
            tqdm(
                total=total_batches, desc=f"{label} {epoch}/{epochs}", file=self.stream, leave=False, dynamic_ncols=True
            )
            if interactive
            else None
        )

    def advance(self, loss: float | None = None) -> None:
        if self.bar is not None:
            self.bar.update(1)
            if loss is not None:
                self.bar.set_postfix(loss=f"{loss:.4f}", refresh=False)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


_EPOCH_LINE_KEYS = ("train_loss", "test_loss", "test_accuracy", "lr", "images_per_s")


def print_epoch_line(
    label: str, epoch: int, epochs: int, record: dict[str, object], stream: TextIO | None = None
) -> None:
    """One summary line per epoch: ``[label] epoch 3/10 train_loss=... test_accuracy=...``."""
    parts = []
    for key in _EPOCH_LINE_KEYS:
        if key in record:
            value = record[key]
            parts.append(f"{key}={value:.4g}" if isinstance(value, float) else f"{key}={value}")
    print(f"[{label}] epoch {epoch}/{epochs} " + " ".join(parts), file=stream or sys.stderr, flush=True)
