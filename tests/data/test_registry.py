"""load_dataset dispatch, its errors, and the shared stratified split."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from deepmimic.data import DATASET_NAMES, load_dataset
from deepmimic.data.sources._common import stratified_split
from deepmimic.errors import DataError


def test_names() -> None:
    assert DATASET_NAMES == (
        "mnist-5k",
        "mnist",
        "fashion-mnist",
        "cifar10",
        "cifar100",
        "tiny-imagenet",
        "npz",
        "image-folder",
        "store",
    )


def test_unknown_name_lists_known_ones(tmp_path: Path) -> None:
    with pytest.raises(
        DataError, match="unknown dataset 'imagenet'; known datasets: mnist-5k, mnist, fashion-mnist, cifar10"
    ):
        load_dataset("imagenet", tmp_path)


@pytest.mark.parametrize("name", [n for n in DATASET_NAMES if n != "mnist-5k"])
def test_root_required_and_missing_directory(tmp_path: Path, name: str) -> None:
    with pytest.raises(DataError, match=f"dataset '{name}' needs a root"):
        load_dataset(name)
    with pytest.raises(DataError, match=r"absent: no such (directory|file)$"):
        load_dataset(name, tmp_path / "absent")


def test_builtin_takes_no_root(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="takes no root"):
        load_dataset("mnist-5k", tmp_path)


def test_unknown_option_is_named(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="dataset 'npz' has no option.*colour; it accepts: test_fraction, seed"):
        load_dataset("npz", tmp_path / "a.npz", colour=True)
    with pytest.raises(DataError, match="dataset 'mnist' has no option.*seed; it accepts: none"):
        load_dataset("mnist", tmp_path, seed=1)


def test_bad_split_options(tmp_path: Path) -> None:
    path = tmp_path / "d.npz"
    np.savez(path, images=np.zeros((10, 4, 4), np.uint8), labels=np.arange(10) % 2)
    with pytest.raises(DataError, match="test_fraction must lie in"):
        load_dataset("npz", path, test_fraction=1.5)
    with pytest.raises(DataError, match="seed must be an integer"):
        load_dataset("npz", path, seed="x")


def test_stratified_split() -> None:
    labels = torch.tensor([0] * 10 + [1] * 20 + [2] * 5)[torch.randperm(35, generator=torch.Generator().manual_seed(1))]
    kept, taken = stratified_split(labels, 0.2, seed=0)
    assert kept.dtype == taken.dtype == torch.int64
    assert torch.equal(kept, kept.sort().values) and torch.equal(taken, taken.sort().values)
    assert sorted(kept.tolist() + taken.tolist()) == list(range(35))
    assert torch.bincount(labels[taken], minlength=3).tolist() == [2, 4, 1]
    again = stratified_split(labels, 0.2, seed=0)
    assert torch.equal(again[1], taken)
    assert not torch.equal(stratified_split(labels, 0.2, seed=1)[1], taken)
    empty = stratified_split(torch.zeros(0, dtype=torch.int64), 0.5, seed=0)
    assert empty[0].numel() == empty[1].numel() == 0
