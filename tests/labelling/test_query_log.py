"""The query log: durable appends, torn tails ignored, resumable and budgeted labelling."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from deepmimic.errors import TeacherError
from deepmimic.labelling.black_box_job import default_log_path, label_dataset
from deepmimic.labelling.query_log import QueryLog, fingerprint_images, read_query_log

K = 3
N = 20


def open_log(path: Path, **changes: object) -> QueryLog:
    meta = {"source": "fake", "num_classes": K, "num_rows": N, "fingerprint": "abc"}
    meta.update(changes)
    return QueryLog(path, **meta)  # type: ignore[arg-type]


def batch(rows: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    r = torch.tensor(rows, dtype=torch.int64)
    p = torch.softmax(torch.stack([r.float(), -r.float(), r.float() / 2], dim=1), dim=1)  # (B, K)
    return r, p


def test_appends_are_fsynced_and_read_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "q.log"
    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd))[1])
    with open_log(path) as log:
        before = len(synced)
        log.append(*batch([3, 4, 5]))
        log.append(*batch([0, 9]))
        assert len(synced) == before + 2 and log.count == 5 and log.records == 2
    header, rows, probs = read_query_log(path)
    assert header["source"] == "fake" and rows.tolist() == [3, 4, 5, 0, 9]
    assert torch.equal(probs, torch.cat([batch([3, 4, 5])[1], batch([0, 9])[1]]))
    with open_log(path) as log:  # reopened: the answers are there, exactly
        assert log.count == 5 and log.answered[[0, 3, 4, 5, 9]].all() and not log.answered[1]
        assert torch.equal(log.probs[[9, 0]], batch([9, 0])[1])


@pytest.mark.parametrize("cut", [1, 5, 9, 30])
def test_a_torn_last_record_is_ignored_and_cut_off(tmp_path: Path, cut: int) -> None:
    path = tmp_path / "q.log"
    with open_log(path) as log:
        log.append(*batch([1, 2]))
        log.append(*batch([7, 8, 10]))
    size = path.stat().st_size
    with open(path, "r+b") as handle:  # a crash mid-append: the last record is short
        handle.truncate(size - cut)
    assert read_query_log(path)[1].tolist() == [1, 2]
    with open_log(path) as log:
        assert log.count == 2 and log.torn_bytes > 0
        log.append(*batch([11]))
    assert read_query_log(path)[1].tolist() == [1, 2, 11]


def test_garbage_after_the_last_record_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "q.log"
    with open_log(path) as log:
        log.append(*batch([1, 2]))
    with open(path, "ab") as handle:
        handle.write(b"\xff\xff\xff\x7f garbage")
    with open_log(path) as log:
        assert log.count == 2
        log.append(*batch([3]))
    assert read_query_log(path)[1].tolist() == [1, 2, 3]


def test_corruption_before_the_end_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "q.log"
    with open_log(path) as log:
        for rows in ([1, 2], [3, 4], [5, 6]):
            log.append(*batch(rows))
    data = bytearray(path.read_bytes())
    first_record = len(data) - 3 * (8 + 2 * (8 + 4 * K))
    data[first_record + 12] ^= 0xFF  # flip a byte inside the first record's payload
    path.write_bytes(bytes(data))
    with pytest.raises(TeacherError, match=r"query log is corrupt at byte \d+ \(record 1\)"):
        read_query_log(path)


def test_a_log_of_another_job_or_not_a_log_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "q.log"
    with open_log(path) as log:
        log.append(*batch([1]))
    with pytest.raises(
        TeacherError, match=r"belongs to another labelling job \(source='fake'; this job has source='other'\)"
    ):
        open_log(path, source="other")
    with pytest.raises(TeacherError, match="belongs to another labelling job"):
        open_log(path, fingerprint="xyz")
    (tmp_path / "junk").write_bytes(b"hello")
    with pytest.raises(TeacherError, match="not a deepmimic query log"):
        open_log(tmp_path / "junk")


def test_one_writer_at_a_time(tmp_path: Path) -> None:
    with open_log(tmp_path / "q.log"), pytest.raises(TeacherError, match="in use by another labelling process"):
        open_log(tmp_path / "q.log")


class CountingLabeler:
    """A fake black box that records which rows it was asked about; can crash after some batches."""

    num_classes = K
    source = "counting"

    def __init__(self, crash_after: int | None = None) -> None:
        self.asked: list[int] = []
        self.crash_after = crash_after

    def label_batch(self, images: torch.Tensor) -> torch.Tensor:
        if self.crash_after is not None and len(self.asked) >= self.crash_after:
            raise KeyboardInterrupt  # like Ctrl-C or a crash mid-run
        rows = images[:, 0, 0, 0].to(torch.int64)  # the test images hold their row in pixel 0
        self.asked.extend(rows.tolist())
        return batch(rows.tolist())[1]


def row_images(n: int = N) -> torch.Tensor:
    images = torch.zeros(n, 1, 2, 2, dtype=torch.uint8)
    images[:, 0, 0, 0] = torch.arange(n, dtype=torch.uint8)
    return images


def test_labelling_resumes_without_resending_and_counts_the_budget_across_sessions(tmp_path: Path) -> None:
    images, out = row_images(), tmp_path / "p.npy"
    crashing = CountingLabeler(crash_after=8)
    with pytest.raises(KeyboardInterrupt):
        label_dataset(crashing, images, out, batch_size=4, progress=False)
    assert crashing.asked == list(range(8)) and not out.exists()

    limited = CountingLabeler()
    summary = label_dataset(limited, images, out, batch_size=4, progress=False, budget=14)
    assert limited.asked == list(range(8, 14))  # 8 rows from the log count against the budget of 14
    assert summary["from_log"] == 8 and summary["queried"] == 6 and summary["budget_exhausted"] and not out.exists()

    rest = CountingLabeler()
    summary = label_dataset(rest, images, out, batch_size=4, progress=False)
    assert rest.asked == list(range(14, N)) and summary["complete"] and summary["from_log"] == 14
    saved = np.load(out)
    assert saved.dtype == np.float32 and saved.shape == (N, K)
    np.testing.assert_array_equal(saved, batch(list(range(N)))[1].numpy())

    idle = CountingLabeler()
    again = label_dataset(idle, images, out, batch_size=4, progress=False)
    assert idle.asked == [] and again["complete"] and again["queried"] == 0


def test_a_log_for_other_images_is_refused(tmp_path: Path) -> None:
    label_dataset(CountingLabeler(), row_images(), tmp_path / "p.npy", progress=False)
    other = row_images()
    other[0, 0, 1, 1] = 9
    assert fingerprint_images(other) != fingerprint_images(row_images())
    with pytest.raises(TeacherError, match="belongs to another labelling job"):
        label_dataset(CountingLabeler(), other, tmp_path / "p.npy", progress=False)


def test_a_failing_teacher_keeps_what_was_answered(tmp_path: Path) -> None:
    class Failing(CountingLabeler):
        def label_batch(self, images: torch.Tensor) -> torch.Tensor:
            if len(self.asked) >= 4:
                raise TeacherError("counting: the service is down")
            return super().label_batch(images)

    with pytest.raises(
        TeacherError,
        match=r"the service is down \(4 of 20 rows answered so far are kept in "
        r".*p\.npy\.querylog; run again to resume\)",
    ):
        label_dataset(Failing(), row_images(), tmp_path / "p.npy", batch_size=4, progress=False)


def test_an_empty_log_of_another_job_is_simply_replaced(tmp_path: Path) -> None:
    path = tmp_path / "q.log"
    open_log(path).close()  # a run that failed before any answer
    with open_log(path, source="other") as log:
        log.append(*batch([2]))
    header, rows, _ = read_query_log(path)
    assert header["source"] == "other" and rows.tolist() == [2]


def test_a_log_with_no_answer_is_removed_on_close_and_one_with_answers_is_kept(tmp_path: Path) -> None:
    from deepmimic.labelling.query_log import QueryLog  # noqa: PLC0415

    path = tmp_path / "q.log"
    with QueryLog(path, source="t", num_classes=2, num_rows=3):
        assert path.exists()
    assert not path.exists()  # the job got no answer: nothing to resume, nothing left behind
    with QueryLog(path, source="t", num_classes=2, num_rows=3) as log:
        log.append(torch.tensor([1]), torch.tensor([[0.5, 0.5]]))
    assert path.exists()
    with QueryLog(path, source="t", num_classes=2, num_rows=3):  # reopened by a later job: never removed by it
        pass
    assert path.exists()


def test_exclusive_creation_never_replaces_another_jobs_log(tmp_path: Path) -> None:
    from deepmimic.labelling.query_log import QueryLog  # noqa: PLC0415

    path = tmp_path / "q.log"
    with QueryLog(path, source="t", num_classes=2, num_rows=3) as log:
        log.append(torch.tensor([0]), torch.tensor([[1.0, 0.0]]))
        before = path.read_bytes()
        assert log._create(exclusive=True) is False  # as if a second job raced to create it
        assert path.read_bytes() == before


def test_read_answers_of_a_removed_empty_log_is_empty(tmp_path: Path) -> None:
    from deepmimic.labelling.black_box_job import read_answers  # noqa: PLC0415

    rows, probs = read_answers({"log": str(tmp_path / "gone.querylog"), "rows": 5, "num_classes": 3})
    assert rows.shape == (0,) and probs.shape == (0, 3)


def test_a_budget_in_a_given_order_resumes_with_the_same_rows(tmp_path: Path) -> None:
    """``order``: the budget buys the first rows of a permutation; a killed job rerun with the
    same order asks for exactly the rest of them; another order is refused."""
    images, out = row_images(), tmp_path / "p.npy"
    order = torch.randperm(N, generator=torch.Generator().manual_seed(3))
    crashing = CountingLabeler(crash_after=8)
    with pytest.raises(KeyboardInterrupt):
        label_dataset(crashing, images, out, batch_size=4, progress=False, budget=14, order=order)
    assert crashing.asked == order[:8].tolist()
    rest = CountingLabeler()
    summary = label_dataset(rest, images, out, batch_size=4, progress=False, budget=14, order=order)
    assert rest.asked == order[8:14].tolist() and summary["labeled"] == 14 and summary["budget_exhausted"]
    _, rows, _ = read_query_log(default_log_path(out))
    assert sorted(rows.tolist()) == sorted(order[:14].tolist())
    other = torch.randperm(N, generator=torch.Generator().manual_seed(4))
    with pytest.raises(TeacherError, match="outside the first 16 of this query order"):
        label_dataset(CountingLabeler(), images, out, batch_size=4, progress=False, budget=16, order=other)
    with pytest.raises(TeacherError, match="permutation"):
        label_dataset(CountingLabeler(), images, out, progress=False, order=torch.zeros(N, dtype=torch.int64))


def test_large_answer_tables_live_in_a_scratch_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 17: above FILE_BACKED_BYTES a log's (N, K) answers are a file-backed map, not memory;
    reading the log back applies one record at a time; nothing is left in the folder."""
    from deepmimic.labelling import query_log

    monkeypatch.setattr(query_log, "FILE_BACKED_BYTES", 1)
    path = tmp_path / "q.log"
    with open_log(path) as log:
        maps = Path("/proc/self/maps")
        if maps.exists():  # Linux: the table is a map of an unlinked file in the log's folder
            assert any(str(tmp_path) in line and "(deleted)" in line for line in maps.read_text().splitlines())
        log.append(*batch([3, 4, 5]))
        log.append(*batch([0, 9]))
    with open_log(path) as log:
        assert log.count == 5 and log.records == 2
        assert torch.equal(log.probs[[9, 0, 4]], batch([9, 0, 4])[1]) and not log.probs[1].any()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["q.log"]
