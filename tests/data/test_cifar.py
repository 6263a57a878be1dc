"""CIFAR readers: binary and python versions, CIFAR-100, restricted unpickling, malformed files."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from deepmimic.data import load_dataset
from deepmimic.errors import DataError

NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def records(n: int, offset: int = 0) -> bytes:
    rows = []
    for i in range(n):
        pixels = np.full(3072, (i + offset) % 256, dtype=np.uint8)
        pixels[1024:2048] = 200  # the G plane
        rows.append(bytes([(i + offset) % 10]) + pixels.tobytes())
    return b"".join(rows)


def write_bin(root: Path, truncate: bool = False) -> Path:
    d = root / "cifar-10-batches-bin"
    d.mkdir(parents=True)
    for i in range(1, 6):
        (d / f"data_batch_{i}.bin").write_bytes(records(3, offset=i))
    test = records(2)
    (d / "test_batch.bin").write_bytes(test[:-10] if truncate else test)
    (d / "batches.meta.txt").write_text("\n".join(NAMES) + "\n\n")
    return root


def test_binary_version(tmp_path: Path) -> None:
    data = load_dataset("cifar10", write_bin(tmp_path))  # root containing cifar-10-batches-bin/
    assert data.train.images.shape == (15, 3, 32, 32) and data.test.images.shape == (2, 3, 32, 32)
    assert data.train.labels[:3].tolist() == [1, 2, 3]
    assert data.train.class_names == tuple(NAMES)
    # Plane order: channel 1 (G) is the second 1,024 bytes of each record.
    assert int(data.train.images[0, 1, 0, 0]) == 200 and int(data.train.images[0, 0, 5, 5]) == 1


def test_binary_directory_given_directly_and_plane_order(tmp_path: Path) -> None:
    root = write_bin(tmp_path) / "cifar-10-batches-bin"
    record = np.zeros(3073, dtype=np.uint8)
    record[0] = 7
    record[1:1025] = 10  # R plane
    record[1025:2049] = 20  # G plane
    record[2049:] = np.arange(1024) % 256  # B plane, row-major 32x32
    (root / "test_batch.bin").write_bytes(record.tobytes())
    data = load_dataset("cifar10", root)
    image = data.test.images[0]
    assert data.test.labels.tolist() == [7] and data.test.name == "cifar10/test"
    assert int(image[0].min()) == int(image[0].max()) == 10 and int(image[1, 31, 31]) == 20
    assert int(image[2, 0, 5]) == 5 and int(image[2, 1, 0]) == 32  # row-major within the plane
    assert data.train.images.is_contiguous() and data.train.images.dtype == torch.uint8


def test_truncated_binary(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="test_batch.bin: truncated CIFAR binary file"):
        load_dataset("cifar10", write_bin(tmp_path, truncate=True))


def test_binary_label_out_of_range(tmp_path: Path) -> None:
    root = write_bin(tmp_path)
    (root / "cifar-10-batches-bin" / "data_batch_2.bin").write_bytes(bytes([10]) + bytes(3072))
    with pytest.raises(DataError, match="data_batch_2.bin: label 10 out of range"):
        load_dataset("cifar10", root)


def test_missing_binary_batch(tmp_path: Path) -> None:
    root = write_bin(tmp_path)
    (root / "cifar-10-batches-bin" / "data_batch_4.bin").unlink()
    with pytest.raises(DataError, match="data_batch_4.bin: no such file"):
        load_dataset("cifar10", root)


def write_pickles(root: Path, hundred: bool = False) -> Path:
    rng = np.random.default_rng(0)
    if hundred:
        d = root / "cifar-100-python"
        d.mkdir(parents=True)
        for part, n in (("train", 6), ("test", 3)):
            with open(d / part, "wb") as f:
                pickle.dump(
                    {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), b"fine_labels": list(range(n))}, f
                )
        with open(d / "meta", "wb") as f:
            pickle.dump({b"fine_label_names": [f"c{i}".encode() for i in range(100)]}, f)
        return root
    d = root / "cifar-10-batches-py"
    d.mkdir(parents=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        with open(d / name, "wb") as f:
            pickle.dump({b"data": rng.integers(0, 256, (4, 3072), dtype=np.uint8), b"labels": [0, 1, 2, 9]}, f)
    with open(d / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": [n.encode() for n in NAMES]}, f)
    return root


def test_python_version(tmp_path: Path) -> None:
    data = load_dataset("cifar10", write_pickles(tmp_path))
    assert data.train.images.shape == (20, 3, 32, 32) and data.test.labels.tolist() == [0, 1, 2, 9]
    assert data.train.class_names[1] == "automobile"


def test_python_version_directory_given_directly(tmp_path: Path) -> None:
    data = load_dataset("cifar10", write_pickles(tmp_path) / "cifar-10-batches-py")
    assert len(data.train) == 20 and len(data.test) == 4


def test_cifar100(tmp_path: Path) -> None:
    data = load_dataset("cifar100", write_pickles(tmp_path, hundred=True))
    assert data.train.num_classes == 100 and data.train.images.shape == (6, 3, 32, 32)
    assert data.train.class_names[3] == "c3" and data.test.labels.tolist() == [0, 1, 2]
    assert data.train.name == "cifar100/train"


def test_cifar100_missing(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no train here or in cifar-100-python/"):
        load_dataset("cifar100", tmp_path)


class _Exploit:
    def __reduce__(self):  # what a malicious pickle would do on a plain pickle.load
        import os

        return (os.system, ("touch PWNED",))


def test_malicious_pickle_is_refused_not_executed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    root = write_pickles(tmp_path / "c")
    with open(root / "cifar-10-batches-py" / "data_batch_3", "wb") as f:
        pickle.dump({b"data": _Exploit(), b"labels": []}, f)
    with pytest.raises(DataError, match=r"data_batch_3: .*refuses to unpickle (posix|os)\.system"):
        load_dataset("cifar10", root)
    assert not (tmp_path / "PWNED").exists()


# Hand-written protocol-0 pickles that call a global on load: what a malicious file looks like.
HAND_BUILT = {
    "os.system": b"cos\nsystem\n(S'touch PWNED'\ntR.",
    "builtins.eval": b'cbuiltins\neval\n(S\'open("PWNED", "w")\'\ntR.',
    "subprocess.call": b"csubprocess\ncall\n((S'touch'\nS'PWNED'\nltR.",
}


@pytest.mark.parametrize("target", sorted(HAND_BUILT))
def test_hand_built_payload_is_refused_not_executed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, target: str
) -> None:
    monkeypatch.chdir(tmp_path)
    root = write_pickles(tmp_path / "c")
    (root / "cifar-10-batches-py" / "batches.meta").write_bytes(HAND_BUILT[target])
    with pytest.raises(DataError, match=rf"batches.meta: refuses to unpickle {target}"):
        load_dataset("cifar10", root)
    assert not (tmp_path / "PWNED").exists()


def test_garbage_pickle_and_missing_directory(tmp_path: Path) -> None:
    root = write_pickles(tmp_path / "c")
    (root / "cifar-10-batches-py" / "test_batch").write_bytes(b"\x80\x04garbage")
    with pytest.raises(DataError, match="test_batch: not a readable data pickle"):
        load_dataset("cifar10", root)
    with pytest.raises(DataError, match="no CIFAR-10 batches"):
        load_dataset("cifar10", tmp_path)


def test_label_out_of_range(tmp_path: Path) -> None:
    root = write_pickles(tmp_path / "c")
    with open(root / "cifar-10-batches-py" / "test_batch", "wb") as f:
        pickle.dump({b"data": np.zeros((1, 3072), dtype=np.uint8), b"labels": [12]}, f)
    with pytest.raises(DataError, match="label 12 out of range"):
        load_dataset("cifar10", root)


def test_real_cifar10_binary(shared_data: Path) -> None:
    data = load_dataset("cifar10", shared_data / "cifar-10-batches-bin")
    assert len(data.train) == 50000 and len(data.test) == 10000
    assert data.train.class_names[0] == "airplane" and data.train.class_names[9] == "truck"


# --- hostile inputs (issue 12) ---------------------------------------------------------


def _dump(path: Path, obj: object) -> None:
    path.write_bytes(pickle.dumps(obj, protocol=2))


def _error(root: Path, needle: str, name: str = "cifar10") -> str:
    with pytest.raises(DataError, match=needle) as info:
        load_dataset(name, root)
    assert "\n" not in str(info.value) and str(info.value).startswith(str(root))
    return str(info.value)


def test_pickle_with_no_images_refused(tmp_path: Path) -> None:
    root = write_pickles(tmp_path / "c")
    _dump(root / "cifar-10-batches-py" / "test_batch", {b"data": np.zeros((0, 3072), np.uint8), b"labels": []})
    _error(root, r"test_batch: holds no images$")
    root100 = write_pickles(tmp_path / "h", hundred=True)
    _dump(root100 / "cifar-100-python" / "test", {b"data": np.zeros((0, 3072), np.uint8), b"fine_labels": []})
    _error(root100, r"cifar-100-python/test: holds no images$", "cifar100")


def test_ragged_labels_refused(tmp_path: Path) -> None:
    root = write_pickles(tmp_path / "c")
    _dump(root / "cifar-10-batches-py" / "test_batch", {b"data": np.zeros((2, 3072), np.uint8), b"labels": [1, [2]]})
    _error(root, r"test_batch: labels must be a flat list of integers")


def test_uint64_label_refused_naming_the_file(tmp_path: Path) -> None:
    root = write_pickles(tmp_path / "c")  # 2^64 - 1 would wrap to -1 when cast to int64
    _dump(
        root / "cifar-10-batches-py" / "test_batch",
        {b"data": np.zeros((1, 3072), np.uint8), b"labels": np.array([2**64 - 1], np.uint64)},
    )
    _error(root, rf"test_batch: label {2**64 - 1} means {2**64} classes, above the limit")


def test_zero_dimensional_class_names_refused(tmp_path: Path) -> None:
    root = write_pickles(tmp_path / "c")
    _dump(root / "cifar-10-batches-py" / "batches.meta", {b"label_names": np.array(5)})
    _error(root, r"batches.meta: b'label_names' must be a list of names")


def test_shared_references_cannot_expand_the_data(tmp_path: Path) -> None:
    """A pickle repeats an object by reference in 2 bytes: 3,000 rows of 3,072 ints from a ~10 KB file."""
    root = write_pickles(tmp_path / "c")
    path = root / "cifar-10-batches-py" / "test_batch"
    _dump(path, {b"data": [[7] * 3072] * 3000, b"labels": [1] * 3000})
    assert path.stat().st_size < 20_000
    _error(root, r"test_batch: b'data' lists 3000 rows of 3072 pixels, more than its \d+ bytes can hold")
    honest = [[(i + v) % 256 for v in range(3072)] for i in range(2)]  # distinct rows cost >= 1 byte a pixel
    _dump(path, {b"data": honest, b"labels": [3, 4]})
    data = load_dataset("cifar10", root)
    assert data.test.images.shape == (2, 3, 32, 32) and int(data.test.images[1, 0, 0, 0]) == 1


def test_shared_references_cannot_expand_labels_or_names(tmp_path: Path) -> None:
    root = write_pickles(tmp_path / "c")
    inner = [1] * 1000
    _dump(
        root / "cifar-10-batches-py" / "test_batch",
        {b"data": np.zeros((1, 3072), np.uint8), b"labels": [[inner] * 1000]},
    )
    _error(root, r"test_batch: labels must be a flat list of integers")
    root = write_pickles(tmp_path / "d")
    _dump(
        root / "cifar-10-batches-py" / "batches.meta", {b"label_names": [[[inner] * 1000]] * 10}
    )  # str() would be ~3 MB a name
    _error(root, r"batches.meta: class names must be strings, got list")


def test_unreadable_meta_txt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = write_bin(tmp_path)
    real = Path.read_text

    def refuse(self: Path, *args: object, **kwargs: object) -> str:
        if self.name == "batches.meta.txt":
            raise PermissionError(13, "Permission denied")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", refuse)
    _error(root, r"batches.meta.txt: cannot read \(PermissionError: \[Errno 13\] Permission denied\)")
