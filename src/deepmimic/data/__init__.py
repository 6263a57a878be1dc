"""Datasets held in memory as uint8 tensors, splits and batches."""

from deepmimic.data.dataset import ImageDataset, TrainTest
# registry import added once the readers land
from deepmimic.data.splits import (
    MentorStudentSplit,
    UnlabeledImages,
    add_out_of_domain,
    remove_unbalanced,
    split_labeled_unlabeled,
)

__all__ = [
    "DATASET_NAMES",
    "ImageDataset",
    "MentorStudentSplit",
    "TrainTest",
    "UnlabeledImages",
    "add_out_of_domain",
    "load_dataset",
    "read_image_pool",
    "remove_unbalanced",
    "split_labeled_unlabeled",
]
