"""Streamed images (issue 17): RowTable reads rows from disk when indexed, splits stay index arrays,
batches are prefetched in a thread and equal the in-memory ones, torchrun ranks read disjoint shares."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from deepmimic.data import load_dataset
from deepmimic.data.batches import Normalizer, TrainingSet, iterate_batches
from deepmimic.data.dataset import ImageDataset
from deepmimic.data.prefetch import prefetch
from deepmimic.data.rows import FileRows, RowTable, TensorRows, cat_rows, is_streamed, row_chunks, take_rows
from deepmimic.data.splits import add_out_of_domain, remove_unbalanced, split_labeled_unlabeled
from deepmimic.data.store import pack_dataset
from deepmimic.data.store_read import read_store
from deepmimic.errors import DataError
from pipeline_configs import write_blobs_npz

SCRIPTS = Path(__file__).parent / "scripts"


def _file_table(tmp_path: Path, n: int = 50, shape: tuple[int, int, int] = (3, 4, 5)) -> tuple[RowTable, torch.Tensor]:
    images = torch.randint(0, 256, (n, *shape), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    (tmp_path / "rows.u8").write_bytes(images.numpy().tobytes())
    return RowTable.of(FileRows(tmp_path / "rows.u8", n, shape), n), images


def test_indexing_a_row_table_reads_the_same_rows_as_the_tensor(tmp_path: Path) -> None:
    table, images = _file_table(tmp_path)
    assert table.shape == images.shape and table.dtype == torch.uint8 and table.dim() == 4 and len(table) == 50
    picks = [slice(3, 17), slice(None, None, 7), torch.tensor([9, 2, 2, 49, 0]), np.array([5, 4, 3]), -1, 7]
    for key in picks:
        assert torch.equal(table[key], images[key]), key
    mask = torch.arange(50) % 3 == 0
    assert torch.equal(table[mask], images[mask])
    with pytest.raises(IndexError):
        table[50]


def test_take_and_cat_compose_index_arrays_without_reading(tmp_path: Path) -> None:
    table, images = _file_table(tmp_path)
    picked = take_rows(table, torch.tensor([40, 1, 30]))
    assert is_streamed(picked) and torch.equal(picked[:], images[[40, 1, 30]])
    pool = torch.full((4, 3, 4, 5), 7, dtype=torch.uint8)
    joined = cat_rows([picked, pool, take_rows(table, torch.tensor([2]))])
    assert is_streamed(joined) and len(joined.sources) == 2  # the file once, the pool once
    assert torch.equal(joined[:], torch.cat([images[[40, 1, 30]], pool, images[[2]]]))
    assert torch.equal(cat_rows([pool, pool]), torch.cat([pool, pool]))  # tensors stay tensors
    assert torch.equal(torch.cat(list(row_chunks(joined, 3))), joined[:])
    assert torch.equal(RowTable.of(TensorRows(pool), 4)[1:3], pool[1:3])


def test_gathered_pages_are_given_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """After RELEASE_ROWS gathered the map's pages are released; reads after that still see the file."""
    import pickle

    from deepmimic.data import rows as rows_module

    monkeypatch.setattr(rows_module, "RELEASE_ROWS", 8)
    table, images = _file_table(tmp_path)
    for start in range(0, 50, 5):
        assert torch.equal(table[start : start + 5], images[start : start + 5])
    assert table.sources[0]._since_release < 8
    copy = pickle.loads(pickle.dumps(table))  # a worker process maps the file anew
    assert copy.sources[0]._map is None and torch.equal(copy[torch.tensor([7, 3])], images[[7, 3]])


def test_a_short_file_and_a_device_move_are_one_line_errors(tmp_path: Path) -> None:
    table, _ = _file_table(tmp_path)
    with open(tmp_path / "rows.u8", "r+b") as handle:
        handle.truncate(60 * 10)
    with pytest.raises(DataError, match="file truncated"):
        table[45:50]
    with pytest.raises(DataError, match="cannot open"):
        RowTable.of(FileRows(tmp_path / "absent.u8", 2, (1, 1, 1)), 2)[0:1]
    with pytest.raises(DataError, match="cannot be moved"):
        table.to("meta")


def _stores(tmp_path: Path) -> tuple[object, object]:
    data = load_dataset("npz", write_blobs_npz(tmp_path / "blobs.npz"))
    pack_dataset(data, tmp_path / "s.dmstore", source="blobs")
    return read_store(tmp_path / "s.dmstore", stream=False), read_store(tmp_path / "s.dmstore", stream=True)


def test_a_streamed_store_reads_the_same_rows_and_splits_stay_index_arrays(tmp_path: Path) -> None:
    mapped, streamed = _stores(tmp_path)
    assert is_streamed(streamed.train.images) and not is_streamed(mapped.train.images)
    for a, b in ((mapped.train, streamed.train), (mapped.test, streamed.test)):
        assert torch.equal(a.images, b.images[:]) and torch.equal(a.labels, b.labels)
    split_m = split_labeled_unlabeled(mapped.train, 0.2, seed=3)
    split_s = split_labeled_unlabeled(streamed.train, 0.2, seed=3)
    assert is_streamed(split_s.unlabeled.images) and is_streamed(split_s.labeled.images)
    assert torch.equal(split_m.unlabeled.images, split_s.unlabeled.images[:])
    removed_m = remove_unbalanced(split_m.unlabeled, 0.5, seed=1)
    removed_s = remove_unbalanced(split_s.unlabeled, 0.5, seed=1)
    assert is_streamed(removed_s.images) and torch.equal(removed_m.images, removed_s.images[:])
    pool = ImageDataset(torch.zeros(30, *mapped.train.in_shape, dtype=torch.uint8), torch.zeros(30).long(), ("a",))
    grown_m = add_out_of_domain(removed_m, pool, 0.3, seed=2)
    grown_s = add_out_of_domain(removed_s, pool, 0.3, seed=2)
    assert is_streamed(grown_s.images) and torch.equal(grown_m.images, grown_s.images[:])


def test_a_store_without_test_rows_gets_a_stratified_test_part(tmp_path: Path) -> None:
    mapped, _ = _stores(tmp_path)
    labels = torch.cat([mapped.train.labels, mapped.test.labels])
    header = tmp_path / "s.dmstore" / "header.json"
    import json

    values = json.loads(header.read_text())
    values.update(train=values["train"] + values["test"], test=0)
    header.write_text(json.dumps(values))
    for stream in (False, True):
        parts = read_store(tmp_path / "s.dmstore", stream=stream, test_fraction=0.25)
        assert len(parts.train) + len(parts.test) == len(labels)
        assert abs(len(parts.test) - 0.25 * len(labels)) <= mapped.train.num_classes
        assert torch.equal(torch.sort(torch.cat([parts.train.labels, parts.test.labels])).values, labels.sort().values)


@pytest.mark.parametrize(("augment", "read_ahead"), [("none", True), ("crop-flip", True), ("crop-flip", False)])
def test_streamed_batches_equal_in_memory_batches(tmp_path: Path, augment: str, read_ahead: bool) -> None:
    table, images = _file_table(tmp_path, n=70, shape=(3, 8, 8))
    probs = torch.rand(70, 4)
    norm = Normalizer.fit(images)
    runs = []
    for source in (images, table):
        gen = torch.Generator().manual_seed(5)
        data = TrainingSet(source, {"probs": probs})
        batches = iterate_batches(data, 16, norm, gen, torch.device("cpu"), augment, read_ahead=read_ahead)
        runs.append([(b.x, b.targets["probs"], b.index) for b in batches])
    assert len(runs[0]) == len(runs[1]) == 5
    for (xa, pa, ia), (xb, pb, ib) in zip(*runs, strict=True):
        assert torch.equal(xa, xb) and torch.equal(pa, pb) and torch.equal(ia, ib)
    assert Normalizer.fit(table) == norm


def test_prefetch_keeps_order_raises_where_it_failed_and_stops_when_left() -> None:
    assert list(prefetch(range(20), depth=3)) == list(range(20))

    def failing():
        yield 1
        raise DataError("row 2 unreadable")

    got = []
    with pytest.raises(DataError, match="row 2"):
        for item in prefetch(failing()):
            got.append(item)
    assert got == [1]
    before = threading.active_count()
    for item in prefetch(iter(range(10_000)), depth=2):
        if item == 3:
            break
    assert threading.active_count() <= before
    with pytest.raises(ValueError):
        list(prefetch([], depth=0))


def test_torchrun_ranks_read_disjoint_shares_of_a_streamed_store(tmp_path: Path) -> None:
    """Two processes under torchrun: each reads only its rows, together every row once per epoch."""
    _file_table(tmp_path, n=64, shape=(1, 4, 4))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("WORLD_SIZE", None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    cmd += [str(SCRIPTS / "read_shares.py"), str(tmp_path / "rows.u8"), "64", str(tmp_path)]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    shares = [np.load(tmp_path / f"rows-read-rank{r}.npy") for r in (0, 1)]
    assert len(shares[0]) == len(shares[1]) == 32
    assert not set(shares[0].tolist()) & set(shares[1].tolist())
    assert sorted(np.concatenate(shares).tolist()) == list(range(64))


def test_store_options_are_checked(tmp_path: Path) -> None:
    _stores(tmp_path)
    with pytest.raises(DataError, match="stream must be true or false, got 'maybe'"):
        read_store(tmp_path / "s.dmstore", stream="maybe")  # type: ignore[arg-type]
    with pytest.raises(DataError, match="verify must be true or false"):
        read_store(tmp_path / "s.dmstore", verify=1)  # type: ignore[arg-type]


def test_a_store_without_labels_opens_for_labelling_only(tmp_path: Path) -> None:
    """Tar shards without .cls: label -1; read_store refuses, open_unlabeled gives the rows to label."""
    from deepmimic.data.spec import open_unlabeled
    from deepmimic.data.store import StoreWriter
    from deepmimic.data.store_format import FORMAT

    identity = {"format": FORMAT, "shape": [1, 2, 2], "train": 5, "test": 0, "class_names": [], "source": "t"}
    writer = StoreWriter(tmp_path / "u.dmstore", identity)
    images = np.arange(20, dtype=np.uint8).reshape(5, 1, 2, 2)
    writer.append(images, np.full(5, -1))
    writer.finish(labelled=False)
    with pytest.raises(DataError, match="packed without labels"):
        read_store(tmp_path / "u.dmstore")
    unlabelled = open_unlabeled(str(tmp_path / "u.dmstore"))
    assert unlabelled.meta["labels_known"] is False and torch.equal(unlabelled.images[:], torch.from_numpy(images))
    with pytest.raises(DataError, match="no test rows were packed"):
        open_unlabeled(str(tmp_path / "u.dmstore"), "test")
