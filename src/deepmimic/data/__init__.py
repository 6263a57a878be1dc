"""Datasets held in memory as uint8 tensors, splits and batches."""

from deepmimic.data.dataset import ImageDataset, TrainTest
from deepmimic.data.registry import DATASET_NAMES, load_dataset, read_image_pool
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
