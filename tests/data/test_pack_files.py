"""Streaming packs of image files (issue 17): image folders and tar shards, skipped images, resume, workers."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from deepmimic.cli import main
from deepmimic.data import load_dataset
from deepmimic.data import pack_files as pack_files_module
from deepmimic.data.file_decode import fit_image
from deepmimic.data.pack_files import file_source, pack_files
from deepmimic.data.store_read import read_store
from deepmimic.errors import DataError
from pipeline_configs import write_blobs_npz


def _image_bytes(rng: np.random.Generator, hw: tuple[int, int], colour: bool = True, fmt: str = "PNG") -> bytes:
    """A noise image (so resizing and cropping change every pixel) encoded as ``fmt``."""
    pixels = rng.integers(0, 256, (*hw, 3) if colour else hw, dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=fmt)
    return buffer.getvalue()


def _expected(data: bytes, mode: str, hw: tuple[int, int]) -> np.ndarray:
    """uint8 (C, H, W): Pillow decode, convert, cover-resize and centre-crop (ImageOps.fit, bilinear)."""
    with Image.open(io.BytesIO(data)) as image:
        array = np.asarray(ImageOps.fit(image.convert(mode), (hw[1], hw[0]), Image.Resampling.BILINEAR))
    return array.reshape(*array.shape[:2], -1).transpose(2, 0, 1)


def _folder(root: Path, parts: tuple[str, ...], sizes: list[tuple[int, int]], colour: bool = True) -> dict[str, bytes]:
    """``root/[part/]<class>/<i>.png`` for classes a and b; returns {name relative to root: bytes} in pack order."""
    rng = np.random.default_rng(0)
    files = {}
    for part in parts:
        for cls in ("a", "b"):
            for i, hw in enumerate(sizes):
                name = "/".join(p for p in (part, cls, f"{i}.png") if p)
                files[name] = _image_bytes(rng, hw, colour)
                (root / name).parent.mkdir(parents=True, exist_ok=True)
                (root / name).write_bytes(files[name])
    return files


def _tar(path: Path, members: dict[str, bytes]) -> Path:
    """An uncompressed tar holding ``members`` (in the given order)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def _shard_members(first: int, count: int, labelled: bool = True) -> dict[str, bytes]:
    """WebDataset members ``%04d.png`` (+ ``%04d.cls`` = index % 3), 12x10 colour noise."""
    rng = np.random.default_rng(first)
    members = {}
    for key in range(first, first + count):
        members[f"{key:04d}.png"] = _image_bytes(rng, (12, 10))
        if labelled:
            members[f"{key:04d}.cls"] = f"{key % 3}\n".encode()
    return members


def _raw(store: Path) -> tuple[dict, np.ndarray, np.ndarray, list[str]]:
    """(header, images (N, C, H, W), labels, names) read straight from the files."""
    header = json.loads((store / "header.json").read_text())
    images = np.fromfile(store / "images.u8", dtype=np.uint8).reshape(-1, *header["shape"])
    names = (store / header["names"]).read_text().splitlines()
    return header, images, np.load(store / "labels.npy"), names


def test_image_folder_with_train_and_test(tmp_path: Path) -> None:
    files = _folder(tmp_path / "f", ("train", "test"), [(10, 14), (12, 9), (8, 8)])
    header = pack_files(file_source(f"image-folder:{tmp_path / 'f'}"), tmp_path / "s.dmstore", source="f", size=(6, 7))
    assert (header["train"], header["test"], header["shape"], header["labelled"]) == (6, 6, [3, 6, 7], True)
    packed = read_store(tmp_path / "s.dmstore", verify=True)
    expected = np.stack([_expected(data, "RGB", (6, 7)) for data in files.values()])
    assert np.array_equal(packed.train.images.numpy(), expected[:6])
    assert np.array_equal(packed.test.images.numpy(), expected[6:])
    assert packed.train.class_names == ("a", "b") and packed.test.labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert _raw(tmp_path / "s.dmstore")[3] == list(files)
    assert (tmp_path / "s.dmstore" / "skipped.txt").read_text() == "" and header["skipped"] == 0


def test_flat_grey_folder_keeps_its_size_and_channels(tmp_path: Path) -> None:
    files = _folder(tmp_path / "f", ("",), [(9, 11), (9, 11)], colour=False)
    pack_files(file_source(f"image-folder:{tmp_path / 'f'}"), tmp_path / "s.dmstore", source="f")
    header, images, labels, names = _raw(tmp_path / "s.dmstore")
    assert (header["shape"], header["train"], header["test"]) == ([1, 9, 11], 4, 0)  # flat: all training rows
    assert np.array_equal(images, np.stack([_expected(d, "L", (9, 11)) for d in files.values()]))
    assert labels.tolist() == [0, 0, 1, 1] and names == list(files)


def test_fit_covers_then_crops_the_centre() -> None:
    pixels = np.zeros((8, 16, 3), dtype=np.uint8)
    pixels[:, :4, 0], pixels[:, 4:12, 1], pixels[:, 12:, 2] = 255, 255, 255  # red | green | blue
    fitted = np.asarray(fit_image(Image.fromarray(pixels), (8, 8)))
    assert fitted.shape == (8, 8, 3) and (fitted == [0, 255, 0]).all()


@pytest.mark.parametrize("form", ["file", "folder", "glob", "prefix"])
def test_tar_shards_with_cls(tmp_path: Path, form: str) -> None:
    shards = tmp_path / "shards"
    members = [_shard_members(0, 3), _shard_members(3, 2)]
    _tar(shards / "s-000.tar", members[0])
    if form != "file":
        _tar(shards / "s-001.tar", members[1])
        (shards / "classes.txt").write_text("zero\none\ntwo\n")
    spec = {"file": f"{shards}/s-000.tar", "folder": str(shards), "glob": f"{shards}/s-*.tar"}.get(form)
    listing = file_source(spec or f"tar:{shards}")
    header = pack_files(listing, tmp_path / "s.dmstore", source="t", size=(8, 8), workers=1)
    images = [v for m in (members if form != "file" else members[:1]) for k, v in m.items() if k.endswith(".png")]
    header, rows, labels, names = _raw(tmp_path / "s.dmstore")
    assert np.array_equal(rows, np.stack([_expected(d, "RGB", (8, 8)) for d in images]))
    assert labels.tolist() == [i % 3 for i in range(len(images))] and header["labelled"] is True
    assert header["class_names"] == (["class_0", "class_1", "class_2"] if form == "file" else ["zero", "one", "two"])
    assert names[0] == "s-000.tar:0000.png" and (header["train"], header["test"]) == (len(images), 0)


def test_tar_without_cls_is_unlabelled(tmp_path: Path) -> None:
    members = _shard_members(0, 3, labelled=False)
    _tar(tmp_path / "u.tar", members)
    header = pack_files(file_source(str(tmp_path / "u.tar")), tmp_path / "s.dmstore", source="u")
    header, rows, labels, _ = _raw(tmp_path / "s.dmstore")
    assert header["labelled"] is False and header["class_names"] == [] and labels.tolist() == [-1, -1, -1]
    assert np.array_equal(rows, np.stack([_expected(d, "RGB", (12, 10)) for d in members.values()]))


def _mixed_folder_with_corrupt(root: Path) -> dict[str, bytes]:
    files = _folder(root, ("",), [(10, 12), (9, 9), (12, 8), (8, 8)])
    good_jpeg = _image_bytes(np.random.default_rng(5), (12, 12), fmt="JPEG")
    (root / "a" / "1b_truncated.jpg").write_bytes(good_jpeg[: len(good_jpeg) // 2])
    (root / "b" / "2b_garbage.jpg").write_bytes(b"\xff\xd8 this is not a jpeg")
    return files


def test_corrupt_images_are_skipped_and_listed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files = _mixed_folder_with_corrupt(tmp_path / "f")
    out = tmp_path / "s.dmstore"
    assert main(["pack", f"image-folder:{tmp_path / 'f'}", str(out), "--size", "8x8", "--workers", "1"]) == 0
    assert "2 unreadable images skipped (listed in" in capsys.readouterr().out
    skipped = (out / "skipped.txt").read_text().splitlines()
    assert [line.split("\t")[0] for line in skipped] == ["a/1b_truncated.jpg", "b/2b_garbage.jpg"]
    assert all(len(line.split("\t")[1]) > 0 for line in skipped)
    header, rows, labels, names = _raw(out)
    assert header["skipped"] == 2 and header["packed"] == header["train"] == 8 and names == list(files)
    assert np.array_equal(rows, np.stack([_expected(d, "RGB", (8, 8)) for d in files.values()]))


def _store_files(store: Path) -> dict[str, bytes]:
    return {name: (store / name).read_bytes() for name in ("images.u8", "labels.npy", "names.txt", "skipped.txt")}


def test_an_interrupted_pack_resumes_and_ends_identical(tmp_path: Path) -> None:
    _mixed_folder_with_corrupt(tmp_path / "f")
    listing = file_source(f"image-folder:{tmp_path / 'f'}")
    calls: list[int] = []

    def crash_after_one_chunk(done: int, total: int) -> None:
        calls.append(done)
        if len(calls) == 2:  # the starting point, then one chunk written
            raise KeyboardInterrupt

    out = tmp_path / "s.dmstore"
    with pytest.raises(KeyboardInterrupt):
        pack_files(listing, out, source="f", size=(8, 8), chunk_files=3, progress=crash_after_one_chunk)
    header = json.loads((out / "header.json").read_text())
    assert (header["consumed"], header["packed"], header["sha256"]) == (3, 2, None)  # 1b_truncated.jpg skipped
    with open(out / "images.u8", "ab") as handle:  # a crash after writing rows but before the header counted them
        handle.write(b"\x07" * 500)
    with open(out / "names.txt", "a") as handle:
        handle.write("half a name")
    with pytest.raises(DataError, match="unfinished pack"):
        read_store(out)
    resumed: list[int] = []
    pack_files(listing, out, source="f", size=(8, 8), chunk_files=3, progress=lambda d, t: resumed.append(d))
    assert resumed[0] == 3  # continued, not restarted
    pack_files(listing, tmp_path / "whole.dmstore", source="f", size=(8, 8))
    assert _store_files(out) == _store_files(tmp_path / "whole.dmstore")
    finished = json.loads((out / "header.json").read_text())
    assert finished == json.loads((tmp_path / "whole.dmstore" / "header.json").read_text())
    with pytest.raises(DataError, match="another source or shape"):
        pack_files(listing, out, source="f", size=(6, 6))
    assert pack_files(listing, out, source="f") == finished  # finished: left alone (its shape kept without --size)


def test_the_store_does_not_depend_on_the_worker_count(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _mixed_folder_with_corrupt(tmp_path / "f")
    monkeypatch.setattr(pack_files_module, "BATCH_FILES", 2)  # several tasks per chunk, more than the workers
    listing = file_source(f"image-folder:{tmp_path / 'f'}")
    for workers in (1, 2):
        pack_files(listing, tmp_path / f"w{workers}.dmstore", source="f", size=(8, 8), workers=workers, chunk_files=4)
    assert _store_files(tmp_path / "w1.dmstore") == _store_files(tmp_path / "w2.dmstore")


def test_bad_sources_are_one_line_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _folder(tmp_path / "mixed", ("",), [(8, 8), (9, 8)])
    (tmp_path / "notes.tar").write_text("not a tar at all\n" * 100)
    (tmp_path / "empty").mkdir()
    cases = {
        f"image-folder:{tmp_path / 'absent'}": "no such directory",
        str(tmp_path / "absent.tar"): "no such file or folder",
        str(tmp_path / "notes.tar"): "not an uncompressed tar file",
        f"{tmp_path}/nothing-*.tar": "no files match",
        f"tar:{tmp_path / 'empty'}": "no *.tar shards",
        f"image-folder:{tmp_path / 'empty'}": "no class subfolders",
        f"image-folder:{tmp_path / 'mixed'}": "pass --size HxW",
    }
    for spec, message in cases.items():
        assert main(["pack", spec, str(tmp_path / "out.dmstore"), "--workers", "1"]) == 2, spec
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1, (spec, err)
    _tar(tmp_path / "bad.tar", {"0.jpg": b"garbage", "1.png": b"more garbage"})
    for _ in range(2):  # the failed pack keeps its report, not its progress: a rerun decodes again
        with pytest.raises(DataError, match="no readable images"):
            pack_files(
                file_source(str(tmp_path / "bad.tar")), tmp_path / "bad.dmstore", source="bad", size=(4, 4), channels=3
            )
        assert (tmp_path / "bad.dmstore" / "skipped.txt").read_text().count("\n") == 2
        assert not (tmp_path / "bad.dmstore" / "header.json").exists()


def test_cli_packs_tar_shards_and_resumes_a_finished_store_untouched(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _tar(tmp_path / "shards" / "a.tar", _shard_members(0, 4))
    _tar(tmp_path / "shards" / "b.tar", _shard_members(4, 3))
    out = str(tmp_path / "s.dmstore")
    argv = ["pack", f"{tmp_path}/shards/*.tar", out, "--size", "8x8", "--workers", "2", "--channels", "1"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "7 training + 0 test images, 1x8x8" in printed and "0 unreadable images skipped" in printed
    before = _store_files(Path(out))
    assert main(argv) == 0 and _store_files(Path(out)) == before
    header = json.loads((Path(out) / "header.json").read_text())
    assert header["files"] == header["consumed"] == 7 and "progress" not in header


def test_in_memory_sources_still_pack_and_take_channels(tmp_path: Path) -> None:
    data_path = write_blobs_npz(tmp_path / "blobs.npz")
    assert main(["pack", str(data_path), str(tmp_path / "s.dmstore"), "--channels", "3", "--size", "4x4"]) == 0
    packed, original = read_store(tmp_path / "s.dmstore"), load_dataset("npz", data_path)
    assert packed.train.in_shape == (3, 4, 4) and torch.equal(packed.test.labels, original.test.labels)
    assert not (tmp_path / "s.dmstore" / "names.txt").exists()  # no file names: a data set from memory


@pytest.mark.parametrize("text", ["²", "١٢", "-1", "x"])
def test_a_cls_member_must_hold_ascii_digits(tmp_path: Path, text: str) -> None:
    """int() accepts other scripts' digits ('١٢' is 12): only 0-9 are a class index, else one line."""
    _tar(tmp_path / "c.tar", {"0.png": b"not read", "0.cls": text.encode()})
    with pytest.raises(DataError, match="expected a class index"):
        file_source(str(tmp_path / "c.tar"))
