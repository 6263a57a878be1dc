"""npz files, the built-in mnist-5k, and the load_dataset entry point."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from deepmimic.data import DATASET_NAMES, load_dataset, read_image_pool
from deepmimic.errors import DataError


def test_npz_hwc_with_own_test_arrays(tmp_path: Path) -> None:
    path = tmp_path / "d.npz"
    np.savez(path, images=np.zeros((4, 5, 6, 3), np.uint8), labels=np.array([0, 1, 0, 1]),
             test_images=np.zeros((2, 5, 6, 3), np.uint8), test_labels=np.array([1, 0]), class_names=np.array(["x", "y"]))
    data = load_dataset("npz", path)
    assert data.train.images.shape == (4, 3, 5, 6) and data.train.class_names == ("x", "y")
    assert data.test.labels.tolist() == [1, 0]


def test_npz_stratified_split_when_no_test_arrays(tmp_path: Path) -> None:
    path = tmp_path / "d.npz"
    np.savez(path, images=np.zeros((20, 4, 4), np.uint8), labels=np.repeat([0, 1], 10))
    data = load_dataset("npz", path, test_fraction=0.3, seed=1)
    assert len(data.test) == 6 and torch.bincount(data.test.labels).tolist() == [3, 3]
    assert data.train.images.shape[1:] == (1, 4, 4)


@pytest.mark.parametrize(
    "arrays,needle",
    [
        ({"images": np.zeros((3, 4, 4), np.uint8), "labels": np.array([0, 1])}, "3 images but 2 labels"),
        ({"images": np.zeros((2, 4, 4), np.uint8)}, "missing array 'labels'"),
        ({"images": np.zeros((2, 4, 4), np.float32), "labels": np.array([0, 1])}, "images must be integers"),
        ({"images": np.full((2, 4, 4), 300), "labels": np.array([0, 1])}, "0..255"),
        ({"images": np.array([None, None], dtype=object), "labels": np.array([0, 1])}, "object arrays"),
    ],
)
def test_npz_malformed(tmp_path: Path, arrays: dict, needle: str) -> None:
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(DataError, match=needle):
        load_dataset("npz", path)


def test_npz_not_a_zip(tmp_path: Path) -> None:
    path = tmp_path / "x.npz"
    path.write_bytes(b"hello")
    with pytest.raises(DataError, match="x.npz: not a readable .npz"):
        load_dataset("npz", path)


def test_image_pool_reads_all_rows(tmp_path: Path) -> None:
    path = tmp_path / "pool.npz"
    np.savez(path, images=np.zeros((7, 8, 8, 3), np.uint8), labels=np.arange(7))
    assert read_image_pool(path).images.shape == (7, 3, 8, 8)


def test_mnist5k_builtin_split() -> None:
    data = load_dataset("mnist-5k")
    assert data.train.images.shape == (4000, 1, 28, 28) and data.test.images.shape == (1000, 1, 28, 28)
    assert data.train.images.dtype == torch.uint8
    assert torch.bincount(data.test.labels, minlength=10).tolist() == [100] * 10
    again = load_dataset("mnist-5k")
    assert torch.equal(data.train.images, again.train.images) and torch.equal(data.test.labels, again.test.labels)
    mean_ink = data.train.images.float().mean().item()
    assert 20 < mean_ink < 60  # real digits: mostly black background with strokes


def test_registry_errors(tmp_path: Path) -> None:
    assert "cifar10" in DATASET_NAMES
    with pytest.raises(DataError, match="unknown dataset 'imagenet'.*known datasets: mnist-5k"):
        load_dataset("imagenet", tmp_path)
    with pytest.raises(DataError, match="needs a root"):
        load_dataset("mnist")
    with pytest.raises(DataError, match="takes no root"):
        load_dataset("mnist-5k", tmp_path)
    with pytest.raises(DataError, match="has no option.*colour"):
        load_dataset("npz", tmp_path / "a.npz", colour=True)


def test_real_ood_pool(shared_data: Path) -> None:
    pool = read_image_pool(shared_data / "ood-tinyimagenet-32.npz")
    assert pool.images.shape == (5000, 3, 32, 32) and pool.num_classes == 50
