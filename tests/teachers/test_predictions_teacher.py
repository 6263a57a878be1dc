"""PredictionsTeacher: precomputed probabilities from .npy/.csv, validated with one-line errors."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import numpy.lib.format as npy_format
import pytest
import torch

from black_box_answers import label_all
from deepmimic.errors import TeacherError
from deepmimic.teachers.blackbox import ImageLabeler
from deepmimic.teachers.cached import CachedTeacher
from deepmimic.teachers.predictions_teacher import PredictionsTeacher, load_predictions


def probs(n: int = 6, k: int = 3, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).random((n, k)) + 0.1
    return (x / x.sum(axis=1, keepdims=True)).astype(np.float32)


def images(n: int = 6) -> torch.Tensor:
    return torch.randint(0, 256, (n, 1, 3, 3), generator=torch.Generator().manual_seed(1), dtype=torch.int64).to(
        torch.uint8
    )


def test_npy_by_row_by_image_and_as_cached_teacher(tmp_path: Path) -> None:
    p = probs()
    np.save(tmp_path / "p.npy", p)
    imgs = images()
    teacher = PredictionsTeacher(tmp_path / "p.npy", images=imgs)
    assert isinstance(teacher, ImageLabeler) and teacher.num_classes == 3 and teacher.num_rows == 6
    np.testing.assert_array_equal(teacher.label_rows(torch.tensor([4, 0])).numpy(), p[[4, 0]])
    np.testing.assert_array_equal(teacher.label_batch(imgs[[5, 2]]).numpy(), p[[5, 2]])  # looked up by content
    np.testing.assert_array_equal(label_all(teacher, imgs, batch_size=4, progress=False).numpy(), p)
    cached = teacher.to_cached()
    assert isinstance(cached, CachedTeacher)
    np.testing.assert_array_equal(
        cached.predict(torch.zeros(2, 1, 3, 3), torch.tensor([1, 3])).probs.numpy(), p[[1, 3]]
    )
    with pytest.raises(TeacherError, match="not in the unlabelled set"):
        teacher.label_batch(torch.full((1, 1, 3, 3), 7, dtype=torch.uint8))


def test_csv_with_and_without_header(tmp_path: Path) -> None:
    p = probs(4, 2)
    lines = "\n".join(",".join(repr(float(v)) for v in row) for row in p)
    (tmp_path / "a.csv").write_text(lines + "\n")
    (tmp_path / "b.csv").write_text("cat,dog\n" + lines + "\n\n")
    for name in ("a.csv", "b.csv"):
        np.testing.assert_allclose(load_predictions(tmp_path / name, num_rows=4).numpy(), p, atol=1e-7)


def test_without_images_label_batch_explains(tmp_path: Path) -> None:
    np.save(tmp_path / "p.npy", probs())
    with pytest.raises(TeacherError, match="answer by row"):
        PredictionsTeacher(tmp_path / "p.npy").label_batch(images())


def _write(tmp_path: Path, name: str, content: object) -> Path:
    path = tmp_path / name
    if isinstance(content, np.ndarray):
        np.save(path, content, allow_pickle=True)
    elif isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(str(content))
    return path


NAN = probs()
NAN[2, 1] = np.nan
INF = probs()
INF[3, 0] = np.inf
NEG = probs()
NEG[1] = [1.5, -0.5, 0.0]
OFF = probs()
OFF[4] = [0.5, 0.3, 0.1]

MALFORMED = [
    ("one_d.npy", probs()[:, 0].copy(), r"must be a 2-D array \(N, K\), got shape \(6,\)"),
    ("three_d.npy", probs().reshape(6, 3, 1), r"must be a 2-D array \(N, K\), got shape \(6, 3, 1\)"),
    ("nan.npy", NAN, r"contain NaN or infinity \(first at row 2\)"),
    ("inf.npy", INF, r"contain NaN or infinity \(first at row 3\)"),
    ("neg.npy", NEG, r"contain negative values \(first at row 1\)"),
    ("off.npy", OFF, r"rows must sum to 1 within 0.001 \(row 4 sums to 0.9\)"),
    ("wrong_n.npy", probs(5), r"5 rows of predictions but the unlabelled set has 6 images"),
    ("corrupt.npy", b"\x93NUMPY garbage that is not an array", r"not a readable \.npy file"),
    ("objects.npy", np.array([{"a": 1}], dtype=object), r"holds Python objects, which are refused"),
    ("strings.npy", np.array([["a", "b"]]), r"must be numbers, got dtype <U1"),
    ("ragged.csv", "0.5,0.5\n0.2,0.3,0.5\n", r"line 2 has 3 values, expected 2"),
    ("words.csv", "0.5,0.5\nhalf,half\n", r"line 2 is not all numbers"),
    ("empty.csv", "", r"no rows of predictions"),
    ("binary.csv", b"\xff\xfe\x00garbage", r"not a readable \.csv file"),
]


@pytest.mark.parametrize(("name", "content", "message"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_files_give_one_line_errors(tmp_path: Path, name: str, content: object, message: str) -> None:
    path = _write(tmp_path, name, content)
    with pytest.raises(TeacherError, match=message) as info:
        PredictionsTeacher(path, num_rows=6)
    text = str(info.value)
    assert "\n" not in text and text.startswith(str(path))


def test_missing_file_and_wrong_suffix(tmp_path: Path) -> None:
    with pytest.raises(TeacherError, match=r"no such predictions file"):
        PredictionsTeacher(tmp_path / "nope.npy")
    with pytest.raises(TeacherError, match=r"must be a \.npy or \.csv file"):
        PredictionsTeacher(tmp_path / "p.txt")


def test_wrong_n_against_the_images(tmp_path: Path) -> None:
    np.save(tmp_path / "p.npy", probs(6))
    with pytest.raises(TeacherError, match="6 rows of predictions but the unlabelled set has 4 images"):
        PredictionsTeacher(tmp_path / "p.npy", images=images(4))


# --- hostile inputs (issue 12) ---------------------------------------------------------


def _header_only(shape: tuple[int, ...], descr: str = "<f4") -> bytes:
    buffer = io.BytesIO()
    npy_format.write_array_header_1_0(buffer, {"descr": descr, "fortran_order": False, "shape": shape})
    return buffer.getvalue()


HOSTILE = [
    # np.load falls back to unpickling a file without the NumPy magic and blames "allow_pickle".
    ("random.npy", np.random.default_rng(0).bytes(500), r"not a readable \.npy file \(bad header: no NumPy magic\)"),
    ("empty.npy", b"", r"not a readable \.npy file \(bad header: no NumPy magic\)"),
    ("bad_descr.npy", _header_only((2, 2), descr="<zz"), r"not a readable \.npy file \(bad header: "),
    # A header declaring 400 GB with no data after it: refused from the header, nothing allocated.
    (
        "lying.npy",
        _header_only((10**6, 10**5)),
        r"header declares shape \(1000000, 100000\) of float32 \(400000000000 bytes\) but 0 bytes follow it",
    ),
    ("no_rows.npy", np.zeros((0, 3), np.float32), r"no rows of predictions \(shape \(0, 3\)\)"),
]


@pytest.mark.parametrize(("name", "content", "message"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_npy_files(tmp_path: Path, name: str, content: object, message: str) -> None:
    path = _write(tmp_path, name, content)
    with pytest.raises(TeacherError, match=message) as info:
        load_predictions(path)
    text = str(info.value)
    assert "\n" not in text and text.startswith(str(path)) and "Python objects" not in text
