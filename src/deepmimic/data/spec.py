"""``open_unlabeled(spec)``: an image set from a command-line spec ``NAME`` or ``NAME:ROOT``.

Examples: ``mnist-5k`` (built in), ``mnist:../shared/data/mnist``,
``cifar10:../shared/data/cifar-10-batches-bin``, ``npz:blobs.npz``. A bare path ending in
``.npz`` is read as ``npz:PATH``, one ending in ``.dmstore`` as ``store:PATH``.
"""

from __future__ import annotations

from deepmimic.data.dataset import ImageDataset
from deepmimic.data.registry import DATASET_NAMES, load_dataset
from deepmimic.errors import DataError

SPLITS = ("train", "test")


def parse_data_spec(spec: str) -> tuple[str, str | None]:
    """``"NAME:ROOT"`` -> (NAME, ROOT); ``"NAME"`` -> (NAME, None); ``"x.npz"`` -> ("npz", "x.npz")."""
    spec = spec.strip()
    name, sep, root = spec.partition(":")
    if sep and name in DATASET_NAMES:
        if not root:
            raise DataError(f"data spec '{spec}': empty root after '{name}:'")
        return name, root
    if spec in DATASET_NAMES:
        return spec, None
    if spec.lower().endswith(".npz"):
        return "npz", spec
    if spec.rstrip("/").lower().endswith(".dmstore"):
        return "store", spec
    raise DataError(f"data spec '{spec}': expected NAME or NAME:ROOT with NAME one of {', '.join(DATASET_NAMES)}")


def open_unlabeled(spec: str, split: str = "train") -> ImageDataset:
    """The ``split`` part (``train`` or ``test``) of the dataset named by ``spec``.

    Its ``images`` (uint8 (N, C, H, W)) are what a black-box teacher labels; the labels it
    carries are not sent to the teacher.
    """
    if split not in SPLITS:
        raise DataError(f"split must be one of {', '.join(SPLITS)}, got '{split}'")
    name, root = parse_data_spec(spec)
    if name == "store" and root is not None:  # a store packed without labels can still be labelled
        from deepmimic.data.store_read import read_store_images

        return read_store_images(root, split)
    parts = load_dataset(name, root)
    return parts.train if split == "train" else parts.test
