"""Run under torchrun by tests/data/test_rows.py: one epoch of streamed batches, recording the rows read.

Usage: read_shares.py ROWS_FILE N OUT_DIR  (images (N, 1, 4, 4) uint8 in ROWS_FILE)
Writes OUT_DIR/rows-read-rank{R}.npy: the file rows this rank read.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

from deepmimic import distributed
from deepmimic.data.batches import Normalizer, TrainingSet, iterate_batches
from deepmimic.data.rows import FileRows, RowTable


class RecordingRows(FileRows):
    """FileRows that remembers every row it was asked for."""

    def read(self, rows: np.ndarray) -> np.ndarray:
        self.seen.extend(int(r) for r in rows)
        return super().read(rows)


def main() -> None:
    path, n, out = Path(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3])
    with distributed.process_group("cpu"):
        source = RecordingRows(path, n, (1, 4, 4))
        source.seen = []
        table = RowTable.of(source, n)
        norm = Normalizer((0.5,), (0.25,))
        batches = iterate_batches(
            TrainingSet(table),
            16,
            norm,
            torch.Generator().manual_seed(0),
            torch.device("cpu"),
            rank=distributed.rank(),
            world_size=distributed.world_size(),
        )
        for _ in batches:
            pass
        np.save(out / f"rows-read-rank{distributed.rank()}.npy", np.asarray(source.seen, dtype=np.int64))


if __name__ == "__main__":
    main()
