"""npz files: layouts, class names, own test arrays or a stratified split, the image pool, malformed files."""

from __future__ import annotations

import io
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import numpy.lib.format as npy_format
import pytest
import torch

from deepmimic.data import load_dataset, read_image_pool
from deepmimic.data.sources import _common
from deepmimic.errors import DataError


def test_hwc_with_own_test_arrays(tmp_path: Path) -> None:
    path = tmp_path / "d.npz"
    images = np.arange(4 * 5 * 6 * 3, dtype=np.int64).reshape(4, 5, 6, 3) % 256
    np.savez(
        path,
        images=images.astype(np.uint8),
        labels=np.array([0, 1, 0, 1]),
        test_images=np.zeros((2, 5, 6, 3), np.uint8),
        test_labels=np.array([1, 0]),
        class_names=np.array(["x", "y"]),
    )
    data = load_dataset("npz", path)
    assert data.train.images.shape == (4, 3, 5, 6) and data.train.class_names == ("x", "y")
    assert data.train.images.is_contiguous() and data.train.images.dtype == torch.uint8
    assert np.array_equal(data.train.images.numpy(), images.transpose(0, 3, 1, 2))
    assert data.test.labels.tolist() == [1, 0] and data.train.name == "d/train" and data.test.name == "d/test"


@pytest.mark.parametrize(
    "shape,expected",
    [
        ((3, 4, 5), (1, 4, 5)),  # (N, H, W) greyscale
        ((3, 4, 5, 1), (1, 4, 5)),  # HWC, one channel
        ((3, 1, 4, 5), (1, 4, 5)),  # CHW, one channel
        ((3, 3, 4, 5), (3, 4, 5)),  # CHW
        ((3, 4, 4, 3), (3, 4, 4)),  # HWC whose height is 4
        ((3, 32, 32, 3), (3, 32, 32)),  # HWC
    ],
)
def test_layout_detection(tmp_path: Path, shape: tuple[int, ...], expected: tuple[int, int, int]) -> None:
    path = tmp_path / "d.npz"
    np.savez(path, images=np.zeros(shape, np.uint8), labels=np.array([0, 1, 2]))
    assert read_image_pool(path).in_shape == expected


def test_stratified_split_when_no_test_arrays(tmp_path: Path) -> None:
    path = tmp_path / "d.npz"
    images = np.repeat(np.arange(20, dtype=np.int32), 16).reshape(20, 4, 4)  # int32 in 0..255 is converted
    np.savez(path, images=images, labels=np.repeat([0, 1], 10))
    data = load_dataset("npz", path, test_fraction=0.3, seed=1)
    assert len(data.test) == 6 and torch.bincount(data.test.labels).tolist() == [3, 3]
    assert data.train.images.shape[1:] == (1, 4, 4) and data.train.class_names == ("0", "1")
    rows = sorted(data.train.images[:, 0, 0, 0].tolist() + data.test.images[:, 0, 0, 0].tolist())
    assert rows == list(range(20))  # every row lands in exactly one part
    assert torch.equal(load_dataset("npz", path, test_fraction=0.3, seed=1).test.images, data.test.images)
    assert len(load_dataset("npz", path).test) == 4  # default test_fraction 0.2


def test_bytes_class_names(tmp_path: Path) -> None:
    path = tmp_path / "d.npz"
    np.savez(
        path, images=np.zeros((2, 4, 4), np.uint8), labels=np.array([0, 2]), class_names=np.array([b"a", b"b", b"c"])
    )
    assert read_image_pool(path).class_names == ("a", "b", "c")


@pytest.mark.parametrize(
    "arrays,needle",
    [
        ({"images": np.zeros((3, 4, 4), np.uint8), "labels": np.array([0, 1])}, "3 images but 2 labels"),
        ({"images": np.zeros((2, 4, 4), np.uint8)}, "missing array 'labels'"),
        ({"images": np.zeros((2, 4, 4), np.float32), "labels": np.array([0, 1])}, "images must be integers"),
        ({"images": np.full((2, 4, 4), 300), "labels": np.array([0, 1])}, "0..255"),
        ({"images": np.zeros((2, 4, 4), np.uint8), "labels": np.array([0.0, 1.0])}, "labels must be integers"),
        ({"images": np.zeros((2, 4, 4), np.uint8), "labels": np.array([0, -1])}, "non-negative"),
        ({"images": np.zeros(2, np.uint8), "labels": np.array([0, 1])}, "3 or 4 dimensions"),
        ({"images": np.array([None, None], dtype=object), "labels": np.array([0, 1])}, "object arrays"),
        (
            {"images": np.zeros((2, 4, 4), np.uint8), "labels": np.array([0, 2]), "class_names": np.array(["a", "b"])},
            "label 2 out of range",
        ),
        (
            {
                "images": np.zeros((2, 4, 4), np.uint8),
                "labels": np.array([0, 1]),
                "test_images": np.zeros((1, 4, 4), np.uint8),
            },
            "missing array 'test_labels'",
        ),
    ],
)
def test_malformed(tmp_path: Path, arrays: dict, needle: str) -> None:
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(DataError, match=needle) as info:
        load_dataset("npz", path)
    assert "bad.npz" in str(info.value)


def test_not_a_zip_damaged_member_and_missing(tmp_path: Path) -> None:
    path = tmp_path / "x.npz"
    path.write_bytes(b"hello")
    with pytest.raises(DataError, match="x.npz: not a readable .npz"):
        load_dataset("npz", path)
    with zipfile.ZipFile(tmp_path / "y.npz", "w") as archive:
        archive.writestr("images.npy", b"\x93NUMPY garbage")
        archive.writestr("labels.npy", b"")
    with pytest.raises(DataError, match="y.npz: not a readable .npz"):
        load_dataset("npz", tmp_path / "y.npz")
    with pytest.raises(DataError, match="absent.npz: no such file"):
        read_image_pool(tmp_path / "absent.npz")


def test_image_pool_reads_all_rows(tmp_path: Path) -> None:
    path = tmp_path / "pool.npz"
    np.savez(path, images=np.zeros((7, 8, 8, 3), np.uint8), labels=np.arange(7), wnids=np.array(["n"] * 7))
    pool = read_image_pool(path)
    assert pool.images.shape == (7, 3, 8, 8) and pool.num_classes == 7 and pool.name == "pool"


def test_real_ood_pool(shared_data: Path) -> None:
    pool = read_image_pool(shared_data / "ood-tinyimagenet-32.npz")
    assert pool.images.shape == (5000, 3, 32, 32) and pool.in_shape == (3, 32, 32)
    assert pool.images.dtype == torch.uint8 and pool.num_classes == 50


# --- hostile inputs (issue 12) ---------------------------------------------------------


def _error(path: Path, needle: str, pool: bool = False) -> str:
    """The one-line DataError of reading ``path`` as a dataset (or, ``pool``, an image pool), matching ``needle``."""
    with pytest.raises(DataError, match=needle) as info:
        read_image_pool(path) if pool else load_dataset("npz", path)
    text = str(info.value)
    assert "\n" not in text and text.startswith(str(path))
    return text


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def test_empty_images_refused(tmp_path: Path) -> None:
    path = tmp_path / "e.npz"
    np.savez(path, images=np.zeros((0, 4, 4), np.uint8), labels=np.zeros(0, np.int64))
    _error(path, r"e.npz:images: holds no images \(shape \(0, 4, 4\)\)")
    _error(path, "holds no images", pool=True)
    np.savez(
        path,
        images=np.zeros((2, 4, 4), np.uint8),
        labels=np.array([0, 1]),
        test_images=np.zeros((0, 4, 4), np.uint8),
        test_labels=np.zeros(0, np.int64),
    )
    _error(path, r"e.npz:test_images: holds no images")


def test_images_without_pixels_refused(tmp_path: Path) -> None:
    path = tmp_path / "z.npz"
    np.savez(path, images=np.zeros((4, 0, 4), np.uint8), labels=np.zeros(4, np.int64))
    _error(path, r"z.npz:images: images have an empty dimension \(shape \(4, 0, 4\)\)")


def test_labels_beyond_the_class_limit_refused(tmp_path: Path) -> None:
    path = tmp_path / "big.npz"
    np.savez(path, images=np.zeros((3, 4, 4), np.uint8), labels=np.array([0, 1, 100_000]))
    _error(path, r"big.npz:labels: label 100000 means 100001 classes, above the limit of 100000")
    np.savez(path, images=np.zeros((3, 4, 4), np.uint8), labels=np.array([0, 1, 10**9]))  # would be 10^9 class names
    _error(path, r"label 1000000000 means 1000000001 classes, above the limit of 100000", pool=True)
    np.savez(
        path, images=np.zeros((2, 4, 4), np.uint8), labels=np.array([0, 2**64 - 1], np.uint64)
    )  # must not wrap to -1
    _error(path, f"label {2**64 - 1} means")


def test_absurdly_many_class_names_refused(tmp_path: Path) -> None:
    path = tmp_path / "names.npz"
    np.savez(path, images=np.zeros((2, 4, 4), np.uint8), labels=np.array([0, 1]), class_names=np.full(100_001, "a"))
    _error(path, r"names.npz: class_names with 100001 entries means 100001 classes, above the limit of 100000")


def test_member_without_numpy_magic(tmp_path: Path) -> None:
    path = tmp_path / "g.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("images.npy", b"garbage bytes")  # np.load hands such a member back as raw bytes
        archive.writestr("labels.npy", _npy(np.zeros(3, np.int64)))
    _error(path, r"g.npz: not a readable .npz file \(array 'images': bad header: no NumPy magic\)")


def test_member_header_lying_about_its_shape_is_refused_before_allocating(tmp_path: Path) -> None:
    path = tmp_path / "lie.npz"
    header = io.BytesIO()
    npy_format.write_array_header_1_0(
        header, {"descr": "|u1", "fortran_order": False, "shape": (1000, 100, 1000)}
    )  # 100 MB, no data
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("images.npy", header.getvalue())
        archive.writestr("labels.npy", _npy(np.zeros(1000, np.int64)))
    tracemalloc.start()
    try:
        _error(
            path,
            r"array 'images': header declares shape \(1000, 100, 1000\) of uint8 "
            r"\(100000000 bytes\) but 0 bytes follow it",
        )
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 10 << 20, f"allocated {peak} bytes for a header-only member"


def test_compressed_members_are_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_common, "MAX_DECOMPRESSED_BYTES", 1 << 20)
    path = tmp_path / "bomb.npz"
    np.savez_compressed(
        path, images=np.zeros((512, 64, 64), np.uint8), labels=np.zeros(512, np.int64)
    )  # 2 MiB of zeros
    assert path.stat().st_size < 100_000
    _error(path, r"bomb.npz: array 'images' inflates past 1048576 bytes, the limit for compressed data")


def test_only_the_named_arrays_are_read(tmp_path: Path) -> None:
    path = tmp_path / "extra.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("images.npy", _npy(np.zeros((2, 4, 4), np.uint8)))
        archive.writestr("labels.npy", _npy(np.array([0, 1])))
        archive.writestr("notes.npy", b"\x93NUMPY garbage that is never read")
    assert len(read_image_pool(path)) == 2
