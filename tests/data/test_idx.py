"""idx readers (MNIST, Fashion-MNIST): good files, gzip or not, and every malformed case."""

from __future__ import annotations

import gzip
import struct
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import torch

from deepmimic.data import load_dataset
from deepmimic.data.sources import _common
from deepmimic.errors import DataError


def idx_bytes(array: np.ndarray, magic: int) -> bytes:
    return struct.pack(">I", magic) + struct.pack(f">{array.ndim}I", *array.shape) + array.astype(np.uint8).tobytes()


def write_idx_dir(root: Path, n_train: int = 6, n_test: int = 4, gz: bool = True, **overrides: bytes) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    parts = {
        "train-images-idx3-ubyte": idx_bytes(rng.integers(0, 256, (n_train, 28, 28)), 2051),
        "train-labels-idx1-ubyte": idx_bytes(np.arange(n_train) % 10, 2049),
        "t10k-images-idx3-ubyte": idx_bytes(rng.integers(0, 256, (n_test, 28, 28)), 2051),
        "t10k-labels-idx1-ubyte": idx_bytes(np.arange(n_test) % 10, 2049),
    }
    parts.update(overrides)
    for name, payload in parts.items():
        if gz:
            (root / f"{name}.gz").write_bytes(gzip.compress(payload))
        else:
            (root / name).write_bytes(payload)
    return root


@pytest.mark.parametrize("gz", [True, False])
def test_reads_idx_files(tmp_path: Path, gz: bool) -> None:
    data = load_dataset("mnist", write_idx_dir(tmp_path / "m", gz=gz))
    assert data.train.images.shape == (6, 1, 28, 28) and data.test.images.shape == (4, 1, 28, 28)
    assert data.train.labels.tolist() == [0, 1, 2, 3, 4, 5]
    assert data.train.class_names == tuple("0123456789")


def test_fashion_mnist_has_its_class_names(tmp_path: Path) -> None:
    data = load_dataset("fashion-mnist", write_idx_dir(tmp_path / "f"))
    assert data.train.class_names[0] == "T-shirt/top" and data.train.class_names[9] == "Ankle boot"


def test_gzip_detected_by_content_not_name(tmp_path: Path) -> None:
    root = write_idx_dir(tmp_path / "m", gz=False)
    plain = root / "train-labels-idx1-ubyte"
    plain.write_bytes(gzip.compress(plain.read_bytes()))  # gzipped bytes under a plain name
    named_gz = root / "t10k-labels-idx1-ubyte"
    named_gz.rename(root / "t10k-labels-idx1-ubyte.gz")  # plain bytes under a .gz name
    data = load_dataset("mnist", root)
    assert data.train.labels.tolist() == [0, 1, 2, 3, 4, 5] and data.test.labels.tolist() == [0, 1, 2, 3]


def test_wrong_magic(tmp_path: Path) -> None:
    bad = idx_bytes(np.zeros((6, 28, 28)), 2049)
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte.gz: wrong idx magic number 2049 \(expected 2051\)"):
        load_dataset("mnist", write_idx_dir(tmp_path / "m", **{"train-images-idx3-ubyte": bad}))


def test_values_survive(tmp_path: Path) -> None:
    root = write_idx_dir(tmp_path / "m", gz=False)
    images = np.arange(6 * 28 * 28).reshape(6, 28, 28) % 256
    (root / "train-images-idx3-ubyte").write_bytes(idx_bytes(images, 2051))
    data = load_dataset("mnist", root)
    assert data.train.images.dtype == torch.uint8 and data.train.images.is_contiguous()
    assert np.array_equal(data.train.images[:, 0].numpy(), images.astype(np.uint8))
    assert data.train.name == "mnist/train" and data.test.name == "mnist/test"


@pytest.mark.parametrize("gz", [True, False])
def test_truncated_file_names_expected_and_actual_bytes(tmp_path: Path, gz: bool) -> None:
    full = idx_bytes(np.zeros((6, 28, 28)), 2051)  # 16 + 6*784 = 4720 bytes
    root = write_idx_dir(tmp_path / "m", gz=gz, **{"train-images-idx3-ubyte": full[:-100]})
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte(\.gz)?: truncated .*4620 bytes, header says 4720"):
        load_dataset("mnist", root)


def test_truncated_header(tmp_path: Path) -> None:
    root = write_idx_dir(tmp_path / "m", gz=False, **{"t10k-labels-idx1-ubyte": b"\x00\x00"})
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte: truncated idx file"):
        load_dataset("mnist", root)


def test_label_out_of_range(tmp_path: Path) -> None:
    labels = idx_bytes(np.array([0, 1, 2, 3, 4, 11]), 2049)
    with pytest.raises(DataError, match="label 11 out of range"):
        load_dataset("fashion-mnist", write_idx_dir(tmp_path / "f", **{"train-labels-idx1-ubyte": labels}))


def test_count_mismatch(tmp_path: Path) -> None:
    labels = idx_bytes(np.arange(5) % 10, 2049)
    with pytest.raises(DataError, match="6 images but .* 5 labels"):
        load_dataset("mnist", write_idx_dir(tmp_path / "m", **{"train-labels-idx1-ubyte": labels}))


def test_corrupt_gzip(tmp_path: Path) -> None:
    root = write_idx_dir(tmp_path / "m")
    path = root / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:30])
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte.gz: cannot read"):
        load_dataset("mnist", root)


def test_missing_file_and_directory(tmp_path: Path) -> None:
    root = write_idx_dir(tmp_path / "m")
    (root / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match="no t10k labels file"):
        load_dataset("mnist", root)
    with pytest.raises(DataError, match="no such directory"):
        load_dataset("mnist", tmp_path / "absent")


def test_real_mnist(shared_data: Path) -> None:
    data = load_dataset("mnist", shared_data / "mnist")
    assert len(data.train) == 60000 and len(data.test) == 10000
    assert data.train.labels[0].item() == 5


# --- hostile inputs (issue 12) ---------------------------------------------------------


def _one_line_error(info: pytest.ExceptionInfo[DataError], path_part: str) -> str:
    text = str(info.value)
    assert "\n" not in text and path_part in text
    return text


@pytest.mark.parametrize("gz", [True, False])
def test_zero_images_refused(tmp_path: Path, gz: bool) -> None:
    empty = {
        "train-images-idx3-ubyte": idx_bytes(np.zeros((0, 28, 28)), 2051),
        "train-labels-idx1-ubyte": idx_bytes(np.zeros(0), 2049),
    }
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte(\.gz)?: holds no images \(header says N=0\)") as info:
        load_dataset("mnist", write_idx_dir(tmp_path / "m", gz=gz, **empty))
    _one_line_error(info, "train-images-idx3-ubyte")


def test_zero_labels_refused(tmp_path: Path) -> None:
    root = write_idx_dir(tmp_path / "m", **{"t10k-labels-idx1-ubyte": idx_bytes(np.zeros(0), 2049)})
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte.gz: holds no labels"):
        load_dataset("mnist", root)


def test_empty_image_size_refused(tmp_path: Path) -> None:
    header = struct.pack(">4I", 2051, 6, 0, 0)  # six images of 0x0 pixels: no payload at all
    overrides = {"train-images-idx3-ubyte": header, "t10k-images-idx3-ubyte": struct.pack(">4I", 2051, 4, 0, 0)}
    root = write_idx_dir(tmp_path / "m", gz=False, **overrides)
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte: header declares an empty image size \(0, 0\)"):
        load_dataset("mnist", root)


@pytest.mark.parametrize("gz", [True, False])
def test_dims_past_2_to_the_63_are_refused_without_allocating(tmp_path: Path, gz: bool) -> None:
    # 2^31 * 2^31 * 4 = 2^64: np.prod wraps this to 0, which a 16-byte file would "match".
    header = struct.pack(">4I", 2051, 2**31, 2**31, 4)
    root = write_idx_dir(tmp_path / "m", gz=gz, **{"train-images-idx3-ubyte": header})
    expected = 16 + 2**64  # computed with Python ints: no wrap-around
    if gz:  # nothing is inflated: the declared size alone is over the hard limit
        needle = f"header declares {expected} bytes, above the {4 << 30}-byte limit for gzip files"
    else:  # compared with the file's size before anything is read
        needle = f"truncated idx file \\(16 bytes, header says {expected}\\)"
    with pytest.raises(DataError, match=needle) as info:
        load_dataset("mnist", root)
    _one_line_error(info, "train-images-idx3-ubyte")


def test_gzip_inflating_past_its_header_stops_early(tmp_path: Path) -> None:
    """Header says 2 images of 28x28 (1,584 bytes) but the stream inflates to 8 MiB: read stops just past 1,584."""
    bomb = idx_bytes(np.zeros((2, 28, 28)), 2051) + bytes(8 << 20)
    root = write_idx_dir(tmp_path / "m", **{"train-images-idx3-ubyte": bomb})
    assert (root / "train-images-idx3-ubyte.gz").stat().st_size < 20_000  # a small file on disk
    tracemalloc.start()
    try:
        with pytest.raises(
            DataError,
            match=r"train-images-idx3-ubyte.gz: oversized idx file \(header says 1584 bytes, it inflates past that\)",
        ) as info:
            load_dataset("mnist", root)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    _one_line_error(info, "train-images-idx3-ubyte.gz")
    assert peak < 1 << 20, f"inflated {peak} bytes: the whole 8 MiB stream was read"


def test_gzip_header_above_the_hard_limit_is_refused_before_reading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_common, "MAX_DECOMPRESSED_BYTES", 1000)  # a valid 1,584-byte payload is now too big
    root = write_idx_dir(tmp_path / "m", **{"train-images-idx3-ubyte": idx_bytes(np.zeros((2, 28, 28)), 2051)})
    with pytest.raises(
        DataError,
        match=r"train-images-idx3-ubyte.gz: header declares 1584 bytes, above the 1000-byte limit for gzip files",
    ):
        load_dataset("mnist", root)
