"""Tiny ImageNet folder layout: class names, greyscale JPEGs, val annotations, malformed variants."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from deepmimic.data import load_dataset
from deepmimic.errors import DataError


@pytest.fixture
def tiny(tmp_path: Path, write_image) -> Path:
    """Two classes x 3 train JPEGs (one greyscale), 2 val JPEGs, words.txt."""
    root = tmp_path / "tiny"
    wnids = ["n01443537", "n02802426"]
    root.mkdir()
    (root / "wnids.txt").write_text("\n".join(wnids) + "\n")
    (root / "words.txt").write_text("n01443537\tgoldfish, Carassius auratus\nn02802426\tbasketball\nn09999999\tother\n")
    for k, wnid in enumerate(wnids):
        for i in range(3):
            write_image(root / "train" / wnid / "images" / f"{wnid}_{i}.JPEG", colour=(i != 1), value=50 * (k + 1))
    lines = []
    for i, wnid in enumerate(["n02802426", "n01443537"]):
        write_image(root / "val" / "images" / f"val_{i}.JPEG")
        lines.append(f"val_{i}.JPEG\t{wnid}\t0\t0\t7\t7")
    (root / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")
    return root


def test_layout(tiny: Path) -> None:
    data = load_dataset("tiny-imagenet", tiny)
    assert data.train.images.shape == (6, 3, 8, 8) and data.test.images.shape == (2, 3, 8, 8)
    assert data.train.images.dtype == torch.uint8 and data.train.images.is_contiguous()
    assert data.train.class_names == ("goldfish", "basketball")
    assert data.train.labels.tolist() == [0, 0, 0, 1, 1, 1] and data.test.labels.tolist() == [1, 0]
    assert data.train.name == "tiny-imagenet/train" and data.test.name == "tiny-imagenet/test"
    grey = data.train.images[1].int()  # the greyscale JPEG, converted to RGB: equal channels
    assert torch.equal(grey[0], grey[1]) and torch.equal(grey[1], grey[2])
    assert abs(int(grey[0, 4, 4]) - 50) <= 3


def test_without_words_txt_names_are_wnids(tiny: Path) -> None:
    (tiny / "words.txt").unlink()
    assert load_dataset("tiny-imagenet", tiny).train.class_names == ("n01443537", "n02802426")


def test_unknown_val_wnid(tiny: Path) -> None:
    (tiny / "val" / "val_annotations.txt").write_text("val_0.JPEG\tn99\t0\t0\t1\t1\n")
    with pytest.raises(DataError, match="val_annotations.txt:1: unknown wnid n99"):
        load_dataset("tiny-imagenet", tiny)


def test_unreadable_jpeg(tiny: Path) -> None:
    (tiny / "train" / "n02802426" / "images" / "n02802426_1.JPEG").write_bytes(b"not a jpeg at all")
    with pytest.raises(DataError, match="n02802426_1.JPEG: unreadable image") as info:
        load_dataset("tiny-imagenet", tiny)
    assert "\n" not in str(info.value)


def test_truncated_jpeg(tiny: Path) -> None:
    path = tiny / "val" / "images" / "val_1.JPEG"
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(DataError, match="val_1.JPEG: unreadable image"):
        load_dataset("tiny-imagenet", tiny)


def test_mismatched_size(tiny: Path, write_image) -> None:
    write_image(tiny / "val" / "images" / "val_1.JPEG", size=(16, 12))
    with pytest.raises(DataError, match="val_1.JPEG: image is 12x16, expected 8x8 like val_0.JPEG$"):
        load_dataset("tiny-imagenet", tiny)


def test_missing_pieces(tiny: Path, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="wnids.txt: no such file"):
        load_dataset("tiny-imagenet", tmp_path / "empty")
    with pytest.raises(DataError, match="absent: no such directory"):
        load_dataset("tiny-imagenet", tmp_path / "absent")
    (tiny / "val" / "val_annotations.txt").unlink()
    with pytest.raises(DataError, match="val_annotations.txt: no such file"):
        load_dataset("tiny-imagenet", tiny)
    (tiny / "wnids.txt").write_text("n01443537\nn02802426\nn00000001\n")
    with pytest.raises(DataError, match="n00000001/images: no such directory"):
        load_dataset("tiny-imagenet", tiny)


def test_real_tiny_imagenet_sample(shared_data: Path) -> None:
    data = load_dataset("tiny-imagenet", shared_data / "tiny-imagenet-sample")
    assert data.train.images.shape == (200, 3, 64, 64) and data.test.images.shape == (100, 3, 64, 64)
    assert data.train.num_classes == 10 and torch.bincount(data.train.labels).tolist() == [20] * 10
    assert all(name and not name.startswith("n0") for name in data.train.class_names)  # names from words.txt


# --- hostile inputs (issue 12) ---------------------------------------------------------


def _error(root: Path, needle: str) -> str:
    with pytest.raises(DataError, match=needle) as info:
        load_dataset("tiny-imagenet", root)
    assert "\n" not in str(info.value) and str(info.value).startswith(str(root))
    return str(info.value)


def test_no_train_images_refused(tiny: Path) -> None:
    for wnid in ("n01443537", "n02802426"):
        for image in (tiny / "train" / wnid / "images").iterdir():
            image.unlink()
    _error(tiny, r"tiny/train: holds no images$")


def test_val_file_names_must_stay_in_val_images(tiny: Path) -> None:
    (tiny / "val" / "val_annotations.txt").write_text("../../train/n01443537/images/n01443537_0.JPEG\tn01443537\n")
    _error(
        tiny, r"val_annotations.txt:1: '\.\./\.\./train/n01443537/images/n01443537_0\.JPEG' is not a plain file name"
    )


def test_wnids_must_be_plain_names(tiny: Path) -> None:
    (tiny / "wnids.txt").write_text("n01443537\n../n02802426\n")
    (tiny / "n02802426" / "images").mkdir(parents=True)  # what train/../n02802426/images would reach
    _error(tiny, r"wnids.txt: '\.\./n02802426' is not a plain wnid")


def test_too_many_wnids_refused(tiny: Path) -> None:
    (tiny / "wnids.txt").write_text("".join(f"n{i:08d}\n" for i in range(100_001)))
    _error(tiny, r"wnids.txt: 100001 wnids means 100001 classes, above the limit of 100000")


def test_unreadable_wnids(tiny: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = Path.read_text

    def refuse(self: Path, *args: object, **kwargs: object) -> str:
        if self.name == "wnids.txt":
            raise PermissionError(13, "Permission denied")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", refuse)
    _error(tiny, r"wnids.txt: cannot read \(PermissionError: \[Errno 13\] Permission denied\)")
