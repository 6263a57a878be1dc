"""Packed, memory-mapped stores (issue 17, first part): pack, read back, resume, refuse."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from deepmimic.cli import main
from deepmimic.data import load_dataset
from deepmimic.data import store as store_module
from deepmimic.data.store import pack_dataset
from deepmimic.data.store_read import read_store
from deepmimic.errors import DataError
from pipeline_configs import tiny_config, write_blobs_npz


def test_pack_then_read_back_bit_identical(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data_path = write_blobs_npz(tmp_path / "blobs.npz")
    original = load_dataset("npz", data_path)
    assert main(["pack", str(data_path), str(tmp_path / "blobs.dmstore")]) == 0
    assert "--data store:" in capsys.readouterr().out
    packed = load_dataset("store", tmp_path / "blobs.dmstore")
    for a, b in ((original.train, packed.train), (original.test, packed.test)):
        assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
        assert a.class_names == b.class_names
    assert read_store(tmp_path / "blobs.dmstore", verify=True).train.in_shape == original.train.in_shape


def test_pack_resizes_with_size(tmp_path: Path) -> None:
    data_path = write_blobs_npz(tmp_path / "blobs.npz")
    assert main(["pack", str(data_path), str(tmp_path / "small.dmstore"), "--size", "4x4"]) == 0
    packed = read_store(tmp_path / "small.dmstore")
    assert packed.train.in_shape == (1, 4, 4) and len(packed.test) == len(load_dataset("npz", data_path).test)
    assert main(["pack", str(data_path), str(tmp_path / "x.dmstore"), "--size", "big"]) == 2


def test_an_interrupted_pack_resumes_and_ends_identical(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = load_dataset("npz", write_blobs_npz(tmp_path / "blobs.npz"))
    calls = []

    def crash_after_two_chunks(done: int, total: int) -> None:
        calls.append(done)
        if len(calls) == 3:  # the starting point, then two chunks written
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        pack_dataset(data, tmp_path / "s.dmstore", source="blobs", chunk_rows=50, progress=crash_after_two_chunks)
    header = json.loads((tmp_path / "s.dmstore" / "header.json").read_text())
    assert header["packed"] == 100 and header["sha256"] is None
    with pytest.raises(DataError, match="unfinished pack"):
        read_store(tmp_path / "s.dmstore")
    resumed: list[int] = []
    pack_dataset(data, tmp_path / "s.dmstore", source="blobs", chunk_rows=50, progress=lambda d, t: resumed.append(d))
    assert resumed[0] == 100  # continued, not restarted
    pack_dataset(data, tmp_path / "whole.dmstore", source="blobs")
    assert (tmp_path / "s.dmstore" / "images.u8").read_bytes() == (
        tmp_path / "whole.dmstore" / "images.u8"
    ).read_bytes()
    with pytest.raises(DataError, match="another source or shape"):
        pack_dataset(data, tmp_path / "s.dmstore", source="other")


def test_bad_stores_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(DataError, match="not a deepmimic store"):
        read_store(tmp_path)
    with pytest.raises(DataError, match="no such directory"):
        read_store(tmp_path / "absent.dmstore")
    data = load_dataset("npz", write_blobs_npz(tmp_path / "blobs.npz"))
    pack_dataset(data, tmp_path / "s.dmstore", source="blobs")
    images = tmp_path / "s.dmstore" / "images.u8"
    flipped = bytearray(images.read_bytes())
    flipped[0] ^= 0xFF
    images.write_bytes(bytes(flipped))
    with pytest.raises(DataError, match="checksum differs"):
        read_store(tmp_path / "s.dmstore", verify=True)
    images.write_bytes(bytes(flipped[:-1]))
    with pytest.raises(DataError, match="bytes, expected"):
        read_store(tmp_path / "s.dmstore")
    assert main(["pack", "npz:" + str(tmp_path / "missing.npz"), str(tmp_path / "m.dmstore")]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    (tmp_path / "file.dmstore").write_text("not a folder")
    assert main(["pack", str(tmp_path / "blobs.npz"), str(tmp_path / "file.dmstore")]) == 2
    err = capsys.readouterr().err.strip()
    assert "exists and is not a folder" in err and len(err.splitlines()) == 1


def test_images_stay_on_disk_until_used(tmp_path: Path) -> None:
    """The tensors point into the file's memory mapping (Linux: /proc/self/maps), not into a copy."""
    maps = Path("/proc/self/maps")
    if not maps.exists():
        pytest.skip("no /proc/self/maps here")
    data = load_dataset("npz", write_blobs_npz(tmp_path / "blobs.npz"))
    pack_dataset(data, tmp_path / "s.dmstore", source="blobs")
    packed = read_store(tmp_path / "s.dmstore")
    spans = [
        tuple(int(v, 16) for v in line.split()[0].split("-"))
        for line in maps.read_text().splitlines()
        if line.endswith(str(tmp_path / "s.dmstore" / "images.u8"))
    ]
    for images in (packed.train.images, packed.test.images):
        assert any(lo <= images.data_ptr() < hi for lo, hi in spans)
    assert json.loads((tmp_path / "s.dmstore" / "header.json").read_text())["format"] == store_module.FORMAT


def test_a_run_on_a_store_gives_the_same_results_as_from_memory(tmp_path: Path) -> None:
    """Mapped and streamed (rows read per batch by a prefetch thread): the same metrics as from memory."""
    data_path = write_blobs_npz(tmp_path / "blobs.npz")
    pack_dataset(load_dataset("npz", data_path), tmp_path / "s.dmstore", source="blobs")
    store = str(tmp_path / "s.dmstore")
    results = {}
    runs = {
        "npz": {"name": "npz", "root": str(data_path)},
        "mapped": {"name": "store", "root": store},
        "streamed": {"name": "store", "root": store, "options": {"stream": True}},
    }
    for kind, data in runs.items():
        (tmp_path / kind).mkdir()
        config = tiny_config(tmp_path / kind)
        config["data"] = data
        path = tmp_path / f"{kind}.yaml"
        path.write_text(yaml.safe_dump(config))
        assert main(["run", str(path), "--no-progress", "--no-report"]) == 0
        results[kind] = json.loads((Path(config["output_dir"]) / "results.json").read_text())
    for kind in ("mapped", "streamed"):
        assert results["npz"]["mentor"]["accuracy"] == results[kind]["mentor"]["accuracy"]
        assert [s["accuracy"] for s in results["npz"]["students"]] == [s["accuracy"] for s in results[kind]["students"]]
