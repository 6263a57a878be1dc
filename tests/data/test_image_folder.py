"""Class-per-subfolder image directories: train/test folders or a split, channels, resizing, errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

from deepmimic.data import load_dataset
from deepmimic.data.sources import _common
from deepmimic.errors import DataError


def test_train_and_test_folders(tmp_path: Path, write_image) -> None:
    for part, n in (("train", 3), ("test", 2)):
        for k, cls in enumerate(("cat", "dog")):
            for i in range(n):
                write_image(tmp_path / "f" / part / cls / f"{i}.png", colour=False, value=10 + 100 * k)
    data = load_dataset("image-folder", tmp_path / "f")
    assert data.train.images.shape == (6, 1, 8, 8) and data.test.images.shape == (4, 1, 8, 8)
    assert data.train.class_names == ("cat", "dog") and data.test.labels.tolist() == [0, 0, 1, 1]
    assert data.train.images[data.train.labels == 1].unique().tolist() == [110]  # PNG is lossless
    assert data.train.name == "f/train"


def test_split_resize_and_suffixes(tmp_path: Path, write_image) -> None:
    suffixes = [".png", ".JPG", ".jpeg", ".BMP", ".gif"]
    for cls in ("a", "b"):
        for i, suffix in enumerate(suffixes):
            write_image(tmp_path / "f" / cls / f"{i}{suffix}", size=8 + i)
        (tmp_path / "f" / cls / "notes.txt").write_text("ignored")
        (tmp_path / "f" / cls / "._0.png").write_bytes(b"macOS metadata, skipped")
    with pytest.raises(DataError, match="set size= to resize"):
        load_dataset("image-folder", tmp_path / "f")
    data = load_dataset("image-folder", tmp_path / "f", size=[6, 7], test_fraction=0.4, seed=3)
    assert data.train.images.shape == (6, 3, 6, 7) and len(data.test) == 4
    assert torch.bincount(data.test.labels).tolist() == [2, 2]
    again = load_dataset("image-folder", tmp_path / "f", size=(6, 7), test_fraction=0.4, seed=3)
    assert torch.equal(data.test.images, again.test.images)


def test_channels_default_and_option(tmp_path: Path, write_image) -> None:
    for cls in ("a", "b"):
        for i in range(3):
            write_image(tmp_path / "f" / cls / f"{i}.png", colour=(cls == "b" and i == 0))
    assert load_dataset("image-folder", tmp_path / "f").train.in_shape == (3, 8, 8)  # one colour image -> RGB
    assert load_dataset("image-folder", tmp_path / "f", channels=1).train.in_shape == (1, 8, 8)
    with pytest.raises(DataError, match="channels must be 1 or 3"):
        load_dataset("image-folder", tmp_path / "f", channels=2)
    with pytest.raises(DataError, match="size must be two positive integers"):
        load_dataset("image-folder", tmp_path / "f", size=[0, 4])


def test_errors(tmp_path: Path, write_image) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="empty: no class subfolders"):
        load_dataset("image-folder", tmp_path / "empty")
    (tmp_path / "noimg" / "a").mkdir(parents=True)
    with pytest.raises(DataError, match="noimg: no images"):
        load_dataset("image-folder", tmp_path / "noimg")
    with pytest.raises(DataError, match="absent: no such directory"):
        load_dataset("image-folder", tmp_path / "absent")
    write_image(tmp_path / "bad" / "a" / "0.png")
    (tmp_path / "bad" / "a" / "1.jpg").write_bytes(b"\xff\xd8garbage")
    with pytest.raises(DataError, match="1.jpg: unreadable image"):
        load_dataset("image-folder", tmp_path / "bad")


def test_train_test_class_mismatch(tmp_path: Path, write_image) -> None:
    write_image(tmp_path / "f" / "train" / "a" / "0.png")
    write_image(tmp_path / "f" / "test" / "b" / "0.png")
    with pytest.raises(DataError, match="train/ and test/ have different class folders"):
        load_dataset("image-folder", tmp_path / "f")


# --- hostile inputs (issue 12) ---------------------------------------------------------


def test_resize_target_above_pillows_limit_refused(
    tmp_path: Path, write_image, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_image(tmp_path / "f" / "a" / "0.png", colour=False)
    monkeypatch.setattr(
        Image, "MAX_IMAGE_PIXELS", 1000
    )  # stands for the default 89 M (a 100000x100000 target is 10^10)
    with pytest.raises(DataError, match=r"size \(40, 40\) is 1600 pixels per image, above Pillow's limit of 1000"):
        load_dataset("image-folder", tmp_path / "f", size=(40, 40))
    assert len(load_dataset("image-folder", tmp_path / "f", size=(20, 50)).train) == 1  # 1,000 pixels: allowed


def test_too_many_class_folders_refused(tmp_path: Path, write_image, monkeypatch: pytest.MonkeyPatch) -> None:
    for cls in ("a", "b", "c"):
        write_image(tmp_path / "f" / cls / "0.png")
    monkeypatch.setattr(_common, "MAX_CLASSES", 2)
    with pytest.raises(DataError, match=r"f: 3 class subfolders means 3 classes, above the limit of 2"):
        load_dataset("image-folder", tmp_path / "f")


def test_unlistable_class_folder(tmp_path: Path, write_image, monkeypatch: pytest.MonkeyPatch) -> None:
    write_image(tmp_path / "f" / "a" / "0.png")
    real = Path.iterdir

    def refuse(self: Path):
        if self.name == "a":
            raise PermissionError(13, "Permission denied")
        return real(self)

    monkeypatch.setattr(Path, "iterdir", refuse)
    with pytest.raises(
        DataError, match=r"f/a: cannot list \(PermissionError: \[Errno 13\] Permission denied\)"
    ) as info:
        load_dataset("image-folder", tmp_path / "f")
    assert "\n" not in str(info.value)
