"""Shared reader helpers: bounded gunzip, .npy header checks, the class-count limit."""

from __future__ import annotations

import gzip
import io
import tracemalloc
from pathlib import Path

import numpy as np
import numpy.lib.format as npy_format
import pytest

from deepmimic.data.sources import _common
from deepmimic.errors import DataError


def test_read_maybe_gzipped_stops_at_the_hard_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A gzip inflating to 4 MiB is refused once it passes a 10,000-byte limit, without inflating the rest."""
    monkeypatch.setattr(_common, "MAX_DECOMPRESSED_BYTES", 10_000)
    path = tmp_path / "bomb.csv.gz"
    path.write_bytes(gzip.compress(bytes(4 << 20)))
    tracemalloc.start()
    try:
        with pytest.raises(
            DataError, match=r"bomb.csv.gz: inflates past 10000 bytes, the limit for gzip files"
        ) as info:
            _common.read_maybe_gzipped(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "\n" not in str(info.value) and str(info.value).startswith(str(path))
    assert peak < 1 << 20, f"inflated {peak} bytes"


def test_read_maybe_gzipped_within_the_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_common, "MAX_DECOMPRESSED_BYTES", 10_000)
    (tmp_path / "ok.gz").write_bytes(gzip.compress(b"x" * 10_000))  # exactly at the limit
    (tmp_path / "plain").write_bytes(b"y" * 20_000)  # plain files are as big as they are
    assert bytes(_common.read_maybe_gzipped(tmp_path / "ok.gz")) == b"x" * 10_000
    assert bytes(_common.read_maybe_gzipped(tmp_path / "plain")) == b"y" * 20_000


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=True)
    return buffer.getvalue()


def _header_only(shape: tuple[int, ...], descr: str = "<f4") -> bytes:
    buffer = io.BytesIO()
    npy_format.write_array_header_1_0(buffer, {"descr": descr, "fortran_order": False, "shape": shape})
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("data", "needle", "objects"),
    [
        (b"random bytes, not an array", "bad header: no NumPy magic", False),
        (b"\x93NUMPY\x09\x00", "unsupported .npy version 9.0", False),
        (b"\x93NUMPY\x01\x00\x10\x00{'descr': 'x'}  \n", "bad header", False),
        (
            _header_only((10**6, 10**5)),
            r"header declares shape \(1000000, 100000\) of float32 \(400000000000 bytes\) but 0 bytes follow it",
            False,
        ),
        (_header_only((2**40, 2**40)), "header declares shape", False),
        (_npy(np.zeros((2, 3), np.float32))[:-4], r"\(24 bytes\) but 20 bytes follow it", False),
        (_npy(np.array([{"a": 1}], dtype=object)), "holds Python objects", True),
    ],
)
def test_read_npy_header_problems(data: bytes, needle: str, objects: bool) -> None:
    with pytest.raises(_common.NpyProblem, match=needle) as info:
        _common.read_npy_header(io.BytesIO(data), len(data))
    assert info.value.objects is objects and "\n" not in str(info.value)


def test_read_npy_header_of_a_good_array() -> None:
    data = _npy(np.zeros((2, 3), np.float32))
    header = _common.read_npy_header(io.BytesIO(data), len(data))
    assert header.shape == (2, 3) and header.dtype == np.float32 and header.nbytes == 24
    assert header.data_offset + header.nbytes == len(data)


def test_class_count_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    _common.check_class_count(_common.MAX_CLASSES, "src", "label")
    monkeypatch.setattr(_common, "MAX_CLASSES", 5)  # read at call time
    with pytest.raises(DataError, match=r"src: label 7 means 8 classes, above the limit of 5"):
        _common.check_class_count(8, "src", "label 7")
