"""Label an unlabelled set with a teacher's probabilities, in batches."""

from __future__ import annotations

import torch

from deepmimic import distributed
from deepmimic.data.batches import Normalizer, iterate_eval_batches
from deepmimic.teachers.base import Teacher, validate_probs


@torch.no_grad()
def label_images(
    teacher: Teacher, images: torch.Tensor, normalizer: Normalizer, device: torch.device, batch_size: int = 1024
) -> torch.Tensor:
    """Teacher probabilities (N, K) float32 on the CPU for uint8 ``images`` (N, C, H, W).

    Under torchrun each rank labels its own block of rows and the blocks are gathered, so
    every rank returns the same (N, K) tensor after 1/world of the teacher's work.
    """
    start, stop = distributed.shard_range(int(images.shape[0]))
    chunks = []
    for _, x in iterate_eval_batches(images[start:stop], batch_size, normalizer, device):
        chunks.append(teacher.predict(x).probs.float())
    local = torch.cat(chunks) if chunks else torch.empty(0, teacher.num_classes, device=device)
    probs = distributed.all_gather_rows(local, int(images.shape[0])).cpu()
    return validate_probs(probs, teacher.num_classes, source=type(teacher).__name__)
