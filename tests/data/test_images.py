"""Tiny ImageNet layout and class-per-folder image directories."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from deepmimic.data import load_dataset
from deepmimic.errors import DataError


def save(path: Path, colour: bool = True, size: int = 8, value: int = 100) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    shape = (size, size, 3) if colour else (size, size)
    Image.fromarray(np.full(shape, value, dtype=np.uint8)).save(path)


def write_tiny(root: Path) -> Path:
    wnids = ["n01", "n02"]
    root.mkdir(parents=True)
    (root / "wnids.txt").write_text("\n".join(wnids) + "\n")
    (root / "words.txt").write_text("n01\tgoldfish, Carassius auratus\nn02\tbasketball\n")
    for k, w in enumerate(wnids):
        for i in range(3):
            save(root / "train" / w / "images" / f"{w}_{i}.JPEG", colour=(i != 1), value=50 * (k + 1))
    lines = []
    for i, w in enumerate(["n02", "n01"]):
        save(root / "val" / "images" / f"val_{i}.JPEG")
        lines.append(f"val_{i}.JPEG\t{w}\t0\t0\t7\t7")
    (root / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")
    return root


def test_tiny_imagenet_layout(tmp_path: Path) -> None:
    data = load_dataset("tiny-imagenet", write_tiny(tmp_path / "t"))
    assert data.train.images.shape == (6, 3, 8, 8)  # a greyscale JPEG is converted to RGB
    assert data.train.class_names == ("goldfish", "basketball")
    assert data.test.labels.tolist() == [1, 0]


def test_tiny_imagenet_unknown_val_wnid(tmp_path: Path) -> None:
    root = write_tiny(tmp_path / "t")
    (root / "val" / "val_annotations.txt").write_text("val_0.JPEG\tn99\t0\t0\t1\t1\n")
    with pytest.raises(DataError, match="val_annotations.txt:1: unknown wnid n99"):
        load_dataset("tiny-imagenet", root)


def test_tiny_imagenet_unreadable_image(tmp_path: Path) -> None:
    root = write_tiny(tmp_path / "t")
    (root / "train" / "n02" / "images" / "n02_1.JPEG").write_bytes(b"not a jpeg at all")
    with pytest.raises(DataError, match="n02_1.JPEG: unreadable image"):
        load_dataset("tiny-imagenet", root)


def test_tiny_imagenet_missing_wnids(tmp_path: Path) -> None:
    (tmp_path / "t").mkdir()
    with pytest.raises(DataError, match="wnids.txt: no such file"):
        load_dataset("tiny-imagenet", tmp_path / "t")


def test_image_folder_with_train_and_test(tmp_path: Path) -> None:
    for part, n in (("train", 3), ("test", 2)):
        for cls in ("cat", "dog"):
            for i in range(n):
                save(tmp_path / "f" / part / cls / f"{i}.png", colour=False)
    data = load_dataset("image-folder", tmp_path / "f")
    assert data.train.images.shape == (6, 1, 8, 8) and data.test.images.shape == (4, 1, 8, 8)
    assert data.train.class_names == ("cat", "dog")


def test_image_folder_split_and_resize(tmp_path: Path) -> None:
    for cls in ("a", "b"):
        for i in range(5):
            save(tmp_path / "f" / cls / f"{i}.jpg", size=8 + i)
    with pytest.raises(DataError, match="set size= to resize"):
        load_dataset("image-folder", tmp_path / "f")
    data = load_dataset("image-folder", tmp_path / "f", size=[6, 6], test_fraction=0.4)
    assert data.train.images.shape == (6, 3, 6, 6) and len(data.test) == 4


def test_image_folder_errors(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no class subfolders"):
        load_dataset("image-folder", tmp_path / "empty")
    (tmp_path / "noimg" / "a").mkdir(parents=True)
    with pytest.raises(DataError, match="no images"):
        load_dataset("image-folder", tmp_path / "noimg")


def test_real_tiny_imagenet_sample(shared_data: Path) -> None:
    data = load_dataset("tiny-imagenet", shared_data / "tiny-imagenet-sample")
    assert data.train.images.shape == (200, 3, 64, 64) and data.test.images.shape == (100, 3, 64, 64)
    assert data.train.num_classes == 10
