"""Writers of small valid and malformed inputs, generated on the fly (nothing binary is committed).

Every function takes the folder (or file path) to write and returns the path to hand to
the command. Sizes are tiny: 8x8 grey images for npz/idx/image folders, a handful of 32x32
records for CIFAR, so every reader fails (or would succeed) in milliseconds.
"""

from __future__ import annotations

import gzip
import io
import os
import pickle
import struct
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

K = 4  # classes of the tiny data sets
SIDE = 8  # images are 1 x SIDE x SIDE


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def random_bytes(path: Path, n: int = 256, seed: int = 7) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes())
    return path


def empty_file(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


# --------------------------------------------------------------------------- probabilities


def probs(n: int, k: int = K, seed: int = 0) -> np.ndarray:
    x = rng(seed).random((n, k)) + 0.05
    return (x / x.sum(axis=1, keepdims=True)).astype(np.float32)


def save_npy(path: Path, array: np.ndarray, allow_pickle: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:
        np.save(handle, array, allow_pickle=allow_pickle)
    return path


class MarkerPayload:
    """Unpickling this runs ``os.system('touch MARKER')``: a file that must never appear."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch '{self.marker}'",))


def malicious_pickle(path: Path, marker: Path, wrap: Any = None) -> Path:
    """A pickle whose loading would create ``marker`` (inside ``wrap``'s structure if given)."""
    payload: Any = MarkerPayload(marker)
    if wrap is not None:
        payload = wrap(payload)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(payload, protocol=2))
    return path


def malicious_npy(path: Path, marker: Path) -> Path:
    """An object-dtype .npy whose pickled element would create ``marker`` when loaded with allow_pickle."""
    array = np.empty(2, dtype=object)
    array[0] = MarkerPayload(marker)
    array[1] = 1
    return save_npy(path, array, allow_pickle=True)


def npy_with_header(path: Path, shape: tuple[int, ...], payload: bytes = b"", descr: str = "<f4") -> Path:
    """A .npy (version 1.0) whose header declares ``shape`` but which holds only ``payload``."""
    header = f"{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape!r}, }}"
    header += " " * ((64 - (10 + len(header) + 1) % 64) % 64) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode("latin1") + payload)
    return path


# --------------------------------------------------------------------------- npz


def tiny_arrays(n_per_class: int = 10, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (N, 1, 8, 8), labels int64 (N,)) with N = K * n_per_class: a bright square per class."""
    g = rng(seed)
    labels = np.repeat(np.arange(K), n_per_class)
    images = g.integers(0, 60, (labels.size, 1, SIDE, SIDE))
    half = SIDE // 2
    for cls in range(K):
        top, left = (cls // 2) * half, (cls % 2) * half
        images[labels == cls, :, top : top + half, left : left + half] += 150
    order = g.permutation(labels.size)
    return images[order].astype(np.uint8), labels[order].astype(np.int64)


def good_npz_arrays() -> dict[str, np.ndarray]:
    images, labels = tiny_arrays(10, seed=0)
    test_images, test_labels = tiny_arrays(4, seed=1)
    return {"images": images, "labels": labels, "test_images": test_images, "test_labels": test_labels}


def npz(path: Path, **changes: Any) -> Path:
    """The tiny npz with arrays replaced (value) or dropped (None)."""
    arrays = good_npz_arrays()
    for key, value in changes.items():
        if value is None:
            arrays.pop(key, None)
        else:
            arrays[key] = value
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)
    return path


def npz_object_arrays(path: Path, marker: Path) -> Path:
    """An npz whose 'labels' is an object array holding a pickled payload that would create ``marker``."""
    arrays = good_npz_arrays()
    labels = np.empty(arrays["labels"].shape[0], dtype=object)
    labels[:] = 1
    labels[0] = MarkerPayload(marker)
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    np.save(buffer, labels, allow_pickle=True)
    with zipfile.ZipFile(path, "w") as archive:
        for key in ("images", "test_images", "test_labels"):
            member = io.BytesIO()
            np.save(member, arrays[key])
            archive.writestr(f"{key}.npy", member.getvalue())
        archive.writestr("labels.npy", buffer.getvalue())
    return path


def npz_truncated(path: Path) -> Path:
    good = npz(path)
    data = good.read_bytes()
    good.write_bytes(data[: len(data) // 2])
    return path


def npz_member_bomb(path: Path, inflated: int = 256 << 20) -> Path:
    """An npz whose 'images.npy' member declares 40 8x8 images but inflates to ``inflated`` bytes."""
    arrays = good_npz_arrays()
    header = io.BytesIO()
    np.save(header, arrays["images"])
    member = header.getvalue() + bytes(inflated - len(header.getvalue()))
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        archive.writestr("images.npy", member)
        for key in ("labels", "test_images", "test_labels"):
            buf = io.BytesIO()
            np.save(buf, arrays[key])
            archive.writestr(f"{key}.npy", buf.getvalue())
    return path


# --------------------------------------------------------------------------- idx (MNIST / Fashion-MNIST)

IMAGES_MAGIC, LABELS_MAGIC = 2051, 2049


def idx_bytes(magic: int, dims: tuple[int, ...], payload: bytes) -> bytes:
    return struct.pack(">I", magic) + struct.pack(f">{len(dims)}I", *dims) + payload


def idx_images(n: int, side: int = SIDE, seed: int = 0) -> bytes:
    pixels = rng(seed).integers(0, 256, (n, side, side), dtype=np.uint8)
    return idx_bytes(IMAGES_MAGIC, (n, side, side), pixels.tobytes())


def idx_labels(n: int, top: int = 9, seed: int = 0) -> bytes:
    labels = rng(seed).integers(0, top + 1, n, dtype=np.uint8)
    return idx_bytes(LABELS_MAGIC, (n,), labels.tobytes())


def idx_dir(root: Path, gz: bool = False, **replace: bytes | None) -> Path:
    """An MNIST folder: train-/t10k- images and labels (12 and 6 images); ``replace`` swaps a file's
    bytes (None: leave it out).

    Keys: train_images, train_labels, test_images, test_labels.
    """
    files = {
        "train_images": ("train-images-idx3-ubyte", idx_images(12, seed=1)),
        "train_labels": ("train-labels-idx1-ubyte", idx_labels(12, seed=1)),
        "test_images": ("t10k-images-idx3-ubyte", idx_images(6, seed=2)),
        "test_labels": ("t10k-labels-idx1-ubyte", idx_labels(6, seed=2)),
    }
    root.mkdir(parents=True, exist_ok=True)
    for key, (name, data) in files.items():
        if key in replace:
            data = replace[key]  # type: ignore[assignment]
            if data is None:
                continue
        if gz:
            (root / f"{name}.gz").write_bytes(gzip.compress(data, compresslevel=1))
        else:
            (root / name).write_bytes(data)
    return root


def idx_dir_raw_gz(root: Path, key: str, raw_gz: bytes) -> Path:
    """An MNIST folder of .gz files where ``key``'s file is replaced by ``raw_gz`` as is (already gzip
    bytes or junk)."""
    idx_dir(root, gz=True)
    names = {
        "train_images": "train-images-idx3-ubyte.gz",
        "train_labels": "train-labels-idx1-ubyte.gz",
        "test_images": "t10k-images-idx3-ubyte.gz",
        "test_labels": "t10k-labels-idx1-ubyte.gz",
    }
    (root / names[key]).write_bytes(raw_gz)
    return root


def gzip_bomb_idx(declared_images: int = 2, inflated: int = 256 << 20) -> bytes:
    """gzip of an idx images file whose header declares ``declared_images`` 8x8 images, inflating to
    ``inflated`` bytes."""
    header = struct.pack(">IIII", IMAGES_MAGIC, declared_images, SIDE, SIDE)
    compressor = gzip.compress(header + bytes(inflated - len(header)), compresslevel=1)
    return compressor


def overflow_dims_idx() -> bytes:
    """An idx images header whose dims multiply to 2**64 (0 modulo 2**64): no payload, and a 'consistent' length."""
    return idx_bytes(IMAGES_MAGIC, (2**31, 2**31, 4), b"")


def huge_dims_idx() -> bytes:
    """Dims of 2**32 - 1 each: their product (about 2**96) overflows int64."""
    return idx_bytes(IMAGES_MAGIC, (2**32 - 1, 2**32 - 1, 2**32 - 1), bytes(64))


# --------------------------------------------------------------------------- CIFAR

RECORD = 1 + 3 * 32 * 32
CIFAR10_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def cifar_records(n: int, labels: list[int] | None = None, seed: int = 0) -> bytes:
    g = rng(seed)
    out = []
    for i in range(n):
        label = labels[i] if labels is not None else i % 10
        out.append(bytes([label]) + g.integers(0, 256, 3072, dtype=np.uint8).tobytes())
    return b"".join(out)


def cifar_bin_dir(root: Path, **replace: bytes | None) -> Path:
    """cifar-10-batches-bin/ with data_batch_1..5.bin (2 records each) and test_batch.bin; ``replace`` by file stem."""
    d = root / "cifar-10-batches-bin"
    d.mkdir(parents=True, exist_ok=True)
    files = {f"data_batch_{i}": cifar_records(2, seed=i) for i in range(1, 6)}
    files["test_batch"] = cifar_records(2, seed=9)
    for stem, data in files.items():
        if stem in replace:
            data = replace[stem]  # type: ignore[assignment]
            if data is None:
                continue
        (d / f"{stem}.bin").write_bytes(data)
    return root


def cifar_batch_dict(n: int = 2, label_key: bytes = b"labels", seed: int = 0, top: int = 10) -> dict[bytes, Any]:
    g = rng(seed)
    return {b"data": g.integers(0, 256, (n, 3072), dtype=np.uint8), label_key: [int(v) for v in g.integers(0, top, n)]}


def _dump(path: Path, obj: Any) -> None:
    path.write_bytes(pickle.dumps(obj, protocol=2))


def cifar_py_dir(root: Path, **replace: Any) -> Path:
    """cifar-10-batches-py/ with batches.meta, data_batch_1..5, test_batch; ``replace`` by file name.

    A replacement that is ``bytes`` is written as is; None leaves the file out; anything else is pickled.
    """
    d = root / "cifar-10-batches-py"
    d.mkdir(parents=True, exist_ok=True)
    files: dict[str, Any] = {"batches.meta": {b"label_names": [n.encode() for n in CIFAR10_NAMES]}}
    for i in range(1, 6):
        files[f"data_batch_{i}"] = cifar_batch_dict(seed=i)
    files["test_batch"] = cifar_batch_dict(seed=9)
    _write_files(d, files, replace)
    return root


def _write_files(d: Path, files: dict[str, Any], replace: dict[str, Any]) -> None:
    """Write each file (bytes as they are, objects pickled), ``replace`` swapping or (None) dropping some."""
    for name, obj in files.items():
        if name in replace:
            obj = replace[name]
            if obj is None:
                continue
        if isinstance(obj, bytes):
            (d / name).write_bytes(obj)
        else:
            _dump(d / name, obj)


def cifar100_dir(root: Path, **replace: Any) -> Path:
    """cifar-100-python/ with meta, train, test (fine labels); ``replace`` as in :func:`cifar_py_dir`."""
    d = root / "cifar-100-python"
    d.mkdir(parents=True, exist_ok=True)
    files: dict[str, Any] = {
        "meta": {b"fine_label_names": [f"class{i}".encode() for i in range(100)]},
        "train": cifar_batch_dict(3, b"fine_labels", seed=1, top=100),
        "test": cifar_batch_dict(2, b"fine_labels", seed=2, top=100),
    }
    _write_files(d, files, replace)
    return root


def pickled(obj: Any) -> bytes:
    return pickle.dumps(obj, protocol=2)


def raw_pickle_global(module: str, name: str, arg: str) -> bytes:
    """A protocol-0 pickle calling ``module.name(arg)``: GLOBAL, a string, TUPLE1, REDUCE."""
    return f"c{module}\n{name}\n(S'{arg}'\ntR.".encode()


# --------------------------------------------------------------------------- images


def png(path: Path, value: int = 100, size: tuple[int, int] = (SIDE, SIDE), mode: str = "L") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    shape = size if mode == "L" else (*size, 3)
    Image.fromarray(np.full(shape, value, dtype=np.uint8)).save(path)
    return path


def image_folder(root: Path, classes: tuple[str, ...] = ("a", "b"), per_class: int = 3, suffix: str = ".png") -> Path:
    for ci, name in enumerate(classes):
        for i in range(per_class):
            png(root / name / f"{i}{suffix}", value=40 * ci + i)
    return root


def png_bomb(path: Path, side: int = 100_000) -> Path:
    """A tiny PNG whose header declares a ``side`` x ``side`` greyscale image (10**10 pixels)."""
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    row = b"\x00" + bytes(side)
    compressor = zlib.compressobj(9)
    body = b"".join(compressor.compress(row) for _ in range(16)) + compressor.flush()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", body) + chunk(b"IEND", b""))
    return path


def truncated_copy(path: Path, keep: float = 0.5) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: max(1, int(len(data) * keep))])
    return path


def tiny_imagenet_dir(root: Path, wnids: tuple[str, ...] = ("n01", "n02"), per_class: int = 2) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "wnids.txt").write_text("\n".join(wnids) + "\n")
    (root / "words.txt").write_text("".join(f"{w}\tthing {w}, other\n" for w in wnids))
    for ci, w in enumerate(wnids):
        for i in range(per_class):
            png(root / "train" / w / "images" / f"{w}_{i}.JPEG", value=30 * ci + i, mode="RGB")
    lines = []
    for ci, w in enumerate(wnids):
        name = f"val_{ci}.JPEG"
        png(root / "val" / "images" / name, value=50 + ci, mode="RGB")
        lines.append(f"{name}\t{w}\t0\t0\t8\t8")
    (root / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")
    return root
