"""Labelling and the soft-label cache on images larger than memory (issue 17).

Streamed images (a :class:`~deepmimic.data.rows.RowTable` over a raw uint8 file) hash to
the same digests as the same tensor, label into a memory-mapped output equal to labelling
in memory, and the memory-mapped ``.npy`` cache and ``deepmimic label`` output round-trip
without a half-written file.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from deepmimic.cli import main
from deepmimic.data import fingerprint as fingerprint_module
from deepmimic.data.batches import Normalizer
from deepmimic.data.fingerprint import fingerprint
from deepmimic.data.rows import FileRows, RowTable, TensorRows
from deepmimic.errors import DataError, TeacherError
from deepmimic.labelling import black_box_job
from deepmimic.labelling.black_box_job import label_dataset, write_probs
from deepmimic.labelling.query_log import fingerprint_images
from deepmimic.labelling.soft_label_cache import cache_paths, cached_soft_labels, soft_label_key
from deepmimic.labelling.white_box import label_images
from deepmimic.teachers.module import ModuleTeacher
from deepmimic.teachers.predictions_teacher import PredictionsTeacher
from pipeline_configs import write_blobs_npz

N, SHAPE, K = 37, (3, 5, 4), 4
CPU = torch.device("cpu")


def make_images(seed: int = 0) -> torch.Tensor:
    """uint8 (N, 3, 5, 4)."""
    return torch.randint(0, 256, (N, *SHAPE), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)


def file_table(tmp_path: Path, images: torch.Tensor) -> RowTable:
    """A RowTable reading ``images`` back from a raw uint8 file."""
    path = tmp_path / "images.u8"
    path.write_bytes(images.numpy().tobytes())
    return RowTable.of(FileRows(path, len(images), tuple(images.shape[1:])), len(images))


def mentor() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(int(np.prod(SHAPE)), K)).eval()


def old_soft_label_key(model: nn.Module, images: torch.Tensor, normalizer: Normalizer) -> str:
    """The key as it was computed before streaming (one ``tobytes`` of the whole set)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{name}:{t.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    digest.update(f"images:{tuple(images.shape)}".encode())
    digest.update(images.contiguous().numpy().tobytes())
    digest.update(json.dumps(normalizer.to_dict()).encode())
    return digest.hexdigest()


def mapped_from(tensor: torch.Tensor, path: Path) -> bool:
    """Whether ``tensor``'s memory is a mapping of ``path`` (Linux: /proc/self/maps; else assumed)."""
    maps = Path("/proc/self/maps")
    if not maps.exists():
        return True
    address = tensor.data_ptr()
    for line in maps.read_text().splitlines():
        span, *rest = line.split()
        low, high = (int(v, 16) for v in span.split("-"))
        if low <= address < high:
            return len(rest) >= 5 and rest[-1] == str(path.resolve())
    return False


# --- hashing in chunks -------------------------------------------------------------------


@pytest.mark.parametrize("slice_bytes", [1 << 24, 100, 1])  # one slice, a few rows per slice, one row per slice
def test_hashing_a_row_table_equals_hashing_the_tensor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, slice_bytes: int
) -> None:
    monkeypatch.setattr(fingerprint_module, "_SLICE", slice_bytes)
    images = make_images()
    table = file_table(tmp_path, images)
    whole = hashlib.sha256(repr(tuple(images.shape)).encode() + images.numpy().tobytes()).hexdigest()
    assert fingerprint(images) == fingerprint(table) == whole  # the digest made before streaming
    assert fingerprint_images(images) == fingerprint_images(table) == whole
    labels = torch.arange(N)
    assert fingerprint(table, labels) == fingerprint(images, labels)
    assert fingerprint(images.flip(0)) == fingerprint(images.flip(0).contiguous())  # non-contiguous: same bytes
    mixed = RowTable.of(TensorRows(images), N)
    assert fingerprint(mixed) == whole
    model, norm = mentor(), Normalizer.fit(images)
    assert (
        soft_label_key(model, table, norm)
        == soft_label_key(model, images, norm)
        == old_soft_label_key(model, images, norm)
    )


# --- white-box labelling into a preallocated output --------------------------------------


def test_label_images_into_a_memmap_equals_labelling_in_memory(tmp_path: Path) -> None:
    images = make_images()
    table = file_table(tmp_path, images)
    teacher, norm = ModuleTeacher(mentor(), K), Normalizer.fit(images)
    expected = label_images(teacher, images, norm, CPU, batch_size=8)
    out = np.lib.format.open_memmap(tmp_path / "probs.npy", mode="w+", dtype=np.float32, shape=(N, K))
    got = label_images(teacher, table, norm, CPU, batch_size=8, out=out)
    assert np.shares_memory(got.numpy(), out)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)
    out.flush()
    del out, got
    np.testing.assert_allclose(np.load(tmp_path / "probs.npy"), expected.numpy(), rtol=0, atol=1e-6)
    with pytest.raises(DataError, match=r"out must be a float32 array of shape \(37, 4\)"):
        label_images(teacher, table, norm, CPU, out=np.zeros((N, K + 1), dtype=np.float32))


# --- the memory-mapped soft-label cache ----------------------------------------------------


def test_the_npy_cache_round_trips_as_a_memory_map_and_recomputes_a_damaged_entry(tmp_path: Path) -> None:
    images = make_images()
    table = file_table(tmp_path, images)
    teacher, norm = ModuleTeacher(mentor(), K), Normalizer.fit(images)
    key = soft_label_key(mentor(), table, norm)
    calls: list[str] = []

    def compute() -> torch.Tensor:
        calls.append("memory")
        return label_images(teacher, table, norm, CPU)

    def compute_into(out: np.ndarray) -> torch.Tensor:
        calls.append("into")
        return label_images(teacher, table, norm, CPU, batch_size=8, out=out)

    def cached() -> tuple[torch.Tensor, bool]:
        return cached_soft_labels(
            tmp_path / "cache", key, compute, shape=(N, K), compute_into=compute_into, streamed=True
        )

    expected = label_images(teacher, images, norm, CPU)
    probs, hit = cached()
    assert not hit and calls == ["into"]
    torch.testing.assert_close(probs, expected, rtol=0, atol=1e-6)
    paths = cache_paths(tmp_path / "cache", key)
    assert paths["npy"].exists() and paths["sidecar"].exists() and not paths["safetensors"].exists()
    assert json.loads(paths["sidecar"].read_text())["key"] == key
    assert not [p.name for p in (tmp_path / "cache").iterdir() if p.name.endswith(".tmp")]

    probs, hit = cached()
    assert hit and calls == ["into"]
    assert mapped_from(probs, paths["npy"])
    torch.testing.assert_close(probs, expected, rtol=0, atol=1e-6)
    probs[0] = 0  # a copy-on-write map: the cache file is not changed through it
    del probs
    torch.testing.assert_close(cached()[0], expected, rtol=0, atol=1e-6)

    raw = paths["npy"].read_bytes()
    for damaged in (raw[:-4], b"garbage" + raw[7:], raw + b"\0" * 8):  # truncated, bad header, padded
        paths["npy"].write_bytes(damaged)
        probs, hit = cached()
        assert not hit
        torch.testing.assert_close(probs, expected, rtol=0, atol=1e-6)
        assert paths["npy"].read_bytes() == raw
    paths["sidecar"].write_text(json.dumps({"key": "0" * 64, "shape": [N, K], "dtype": "float32"}))
    assert not cached()[1]  # a sidecar naming another key: recomputed
    assert calls == ["into"] * 5


def test_small_in_memory_sets_keep_the_safetensors_format(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    images = make_images()
    teacher, norm = ModuleTeacher(mentor(), K), Normalizer.fit(images)
    key = soft_label_key(mentor(), images, norm)

    def cached(**kwargs: int) -> tuple[torch.Tensor, bool]:
        return cached_soft_labels(
            tmp_path / "cache",
            key,
            lambda: label_images(teacher, images, norm, CPU),
            shape=(N, K),
            compute_into=lambda out: label_images(teacher, images, norm, CPU, out=out),
            **kwargs,
        )

    probs, hit = cached()
    paths = cache_paths(tmp_path / "cache", key)
    assert not hit and paths["safetensors"].exists() and not paths["npy"].exists()
    again, hit = cached(large_bytes=1)  # an existing safetensors entry is still a hit
    assert hit and torch.equal(again, probs)
    paths["safetensors"].unlink()
    big, hit = cached(large_bytes=N * K * 4)  # at the threshold: a memory-mapped .npy
    assert not hit and paths["npy"].exists()
    torch.testing.assert_close(big, probs, rtol=0, atol=1e-6)


# --- deepmimic label: the final .npy, streamed ---------------------------------------------


def test_write_probs_writes_what_np_save_writes_and_leaves_nothing_on_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    probs = torch.softmax(torch.randn(N, K, generator=torch.Generator().manual_seed(1)), dim=1)
    monkeypatch.setattr(black_box_job, "WRITE_CHUNK_BYTES", 5 * K * 4)  # 5 rows a chunk
    write_probs(tmp_path / "p.npy", probs)
    with open(tmp_path / "q.npy", "wb") as handle:
        np.save(handle, probs.numpy())
    assert (tmp_path / "p.npy").read_bytes() == (tmp_path / "q.npy").read_bytes()
    write_probs(tmp_path / "empty.npy", torch.zeros(0, K))
    assert np.load(tmp_path / "empty.npy").shape == (0, K)

    class Failing(np.ndarray):
        """Fails once the second chunk is read."""

        def __getitem__(self, key: object) -> np.ndarray:
            if isinstance(key, slice) and (key.start or 0) > 0:
                raise OSError("disk went away")
            return np.asarray(self)[key]

    with pytest.raises(TeacherError, match="p.npy: cannot write the probabilities .disk went away."):
        write_probs(tmp_path / "p.npy", probs.numpy().view(Failing))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.npy", "p.npy", "q.npy"]  # no temp file
    assert (tmp_path / "p.npy").read_bytes() == (tmp_path / "q.npy").read_bytes()  # the old output stays


def test_label_dataset_and_a_predictions_teacher_accept_a_row_table(tmp_path: Path) -> None:
    images = make_images()
    table = file_table(tmp_path, images)
    given = torch.softmax(torch.randn(N, K, generator=torch.Generator().manual_seed(2)), dim=1)
    np.save(tmp_path / "given.npy", given.numpy())

    class ByContent:
        """Answers by looking images up by content (``label_batch``), not by row."""

        def __init__(self, inner: PredictionsTeacher) -> None:
            self.inner, self.num_classes, self.source = inner, inner.num_classes, "by-content"

        def label_batch(self, batch: torch.Tensor) -> torch.Tensor:
            return self.inner.label_batch(batch)

    teacher = ByContent(PredictionsTeacher(tmp_path / "given.npy", images=table))
    summary = label_dataset(teacher, table, tmp_path / "probs.npy", batch_size=8, progress=False)
    assert summary["complete"]
    np.testing.assert_array_equal(np.load(tmp_path / "probs.npy"), given.numpy())


def test_deepmimic_label_output_and_no_temp_file_after_a_failed_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    data = write_blobs_npz(tmp_path / "blobs.npz")
    x = np.random.default_rng(0).random((240, 4)) + 0.05
    given = (x / x.sum(axis=1, keepdims=True)).astype(np.float32)
    np.save(tmp_path / "given.npy", given)
    out = tmp_path / "probs.npy"
    args = ["label", "--teacher", str(tmp_path / "given.npy"), "--data", f"npz:{data}", "--out", str(out)]
    monkeypatch.setattr(black_box_job, "WRITE_CHUNK_BYTES", 7 * 4 * 4)  # 7 rows a chunk

    def full_disk(*_: object, **__: object) -> None:
        raise OSError(28, "No space left on device")

    real = black_box_job._copy_into_npy

    def failing_copy(tmp: Path, *rest: object) -> None:
        real(tmp, *rest)  # type: ignore[arg-type]
        assert tmp.exists()
        full_disk()

    monkeypatch.setattr(black_box_job, "_copy_into_npy", failing_copy)
    assert main([*args, "--no-progress"]) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error == f"error: {out}: cannot write the probabilities (No space left on device)"
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blobs.npz", "given.npy", "probs.npy.querylog"]
    monkeypatch.setattr(black_box_job, "_copy_into_npy", real)
    assert main([*args, "--no-progress"]) == 0  # resumed from the query log, written whole
    capsys.readouterr()
    with open(tmp_path / "expected.npy", "wb") as handle:
        np.save(handle, given)
    assert out.read_bytes() == (tmp_path / "expected.npy").read_bytes()  # what np.save wrote before


# --- torchrun: every rank's output is whole --------------------------------------------------

_WORKER = textwrap.dedent(
    """
    import sys
    from pathlib import Path

    import numpy as np
    import torch
    from torch import nn

    from deepmimic import distributed
    from deepmimic.data.batches import Normalizer
    from deepmimic.data.rows import FileRows, RowTable
    from deepmimic.labelling import white_box
    from deepmimic.labelling.soft_label_cache import cached_soft_labels
    from deepmimic.teachers.module import ModuleTeacher

    root, n, k = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    white_box.GATHER_BYTES = 3 * k * 4  # rounds of 3 rows: several rounds, a short last one
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(60, k)).eval()
    table = RowTable.of(FileRows(root / "images.u8", n, (3, 5, 4)), n)
    teacher, norm = ModuleTeacher(model, k), Normalizer((0.5,) * 3, (0.25,) * 3)
    with distributed.process_group("cpu"):
        r = distributed.rank()
        out = np.lib.format.open_memmap(root / f"out{r}.npy", mode="w+", dtype=np.float32, shape=(n, k))
        white_box.label_images(teacher, table, norm, torch.device("cpu"), batch_size=4, out=out)
        out.flush()
        compute_into = lambda o: white_box.label_images(teacher, table, norm, torch.device("cpu"), out=o)
        probs, hit = cached_soft_labels(
            root / "cache", "ab" * 32, lambda: None, shape=(n, k), compute_into=compute_into, streamed=True
        )
        np.save(root / f"cached{r}.npy", probs.numpy())
        again, hit_again = cached_soft_labels(root / "cache", "ab" * 32, lambda: None, shape=(n, k))
        assert (hit, hit_again) == (False, True), (hit, hit_again)
    """
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_torchrun_ranks_each_get_every_row_in_their_memmap(tmp_path: Path) -> None:
    n = 23  # blocks of 12 and 11 rows: rounds of 3 rows, the last one uneven
    images = torch.randint(0, 256, (n, *SHAPE), generator=torch.Generator().manual_seed(3), dtype=torch.uint8)
    (tmp_path / "images.u8").write_bytes(images.numpy().tobytes())
    (tmp_path / "worker.py").write_text(_WORKER)
    port = _free_port()
    procs = []
    for rank in range(2):
        env = {
            **os.environ,
            "RANK": str(rank),
            "LOCAL_RANK": str(rank),
            "WORLD_SIZE": "2",
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
            "OMP_NUM_THREADS": "1",
            "DEEPMIMIC_DIST_TIMEOUT_S": "60",
        }
        cmd = [sys.executable, str(tmp_path / "worker.py"), str(tmp_path), str(n), str(K)]
        procs.append(subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    outputs = [p.communicate(timeout=120)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(60, K)).eval()
    expected = label_images(ModuleTeacher(model, K), images, Normalizer((0.5,) * 3, (0.25,) * 3), CPU).numpy()
    for rank in range(2):
        np.testing.assert_allclose(np.load(tmp_path / f"out{rank}.npy"), expected, rtol=0, atol=1e-6)
        np.testing.assert_allclose(np.load(tmp_path / f"cached{rank}.npy"), expected, rtol=0, atol=1e-6)
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == [
        f"soft-labels-{'ab' * 16}.json",
        f"soft-labels-{'ab' * 16}.npy",
    ]


# --- the pipeline's call site -------------------------------------------------------------


def test_pipeline_soft_labels_through_the_npy_cache_match_the_safetensors_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from deepmimic.config import parse_config
    from deepmimic.labelling import soft_label_cache
    from deepmimic.pipelines.deepmimic import run_pipeline
    from pipeline_configs import tiny_config

    def run(folder: str, resume: bool = False) -> dict:
        (tmp_path / folder).mkdir(exist_ok=True)
        cfg = tiny_config(tmp_path / folder)
        cfg["train"]["epochs"] = 2
        cfg["students"] = cfg["students"][:1]
        return run_pipeline(parse_config(cfg), resume=resume, progress=False)

    small = run("small")
    assert list((tmp_path / "small/run/soft-label-cache").glob("*.safetensors"))
    monkeypatch.setattr(soft_label_cache, "LARGE_CACHE_BYTES", 1)
    large = run("large")
    cache = tmp_path / "large/run/soft-label-cache"
    assert sorted(p.suffix for p in cache.iterdir()) == [".json", ".npy"]
    assert large["soft_labels"]["key"] == small["soft_labels"]["key"]
    assert large["students"][0]["accuracy"] == small["students"][0]["accuracy"]
    again = run("large", resume=True)
    assert again["soft_labels"]["cached"] is True
