"""The bad-input corpus: one line per case, built by small factories.

A :class:`Case` has a readable id (``area/what[how]``) and a ``build(assets, d)`` that writes
what the case needs into its own folder ``d`` and returns a :class:`~reliability.harness.Spec`:
the argv for ``deepmimic``, the outputs it was told to write (which must not exist
afterwards, or be unchanged if they existed before) and extra checks.

Strings in argv may use placeholders: ``{d}`` (the case folder) and the shared assets
``{npz}``, ``{preds}``, ``{trained}``, ``{stage}``, ``{onnx}``, ``{wrong_onnx}``, ``{url}``
(a recording HTTP teacher), ``{closed}`` (a URL on a closed port); plus whatever the case's
``prep`` returns.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from reliability import builders as b
from reliability.assets import Assets, tiny_config
from reliability.harness import (
    Check,
    Spec,
    message_has,
    message_lacks,
    no_new_requests,
    path_absent,
    peak_memory_below,
    quick,
)

Prep = Callable[[Assets, Path], "dict[str, Any] | None"]
Extra = Callable[[Assets, Path], list[Check]]


@dataclass(frozen=True)
class Case:
    id: str
    build: Callable[[Assets, Path], Spec]
    needs_no_cuda: bool = False  # the case names a CUDA device that must be refused on a CPU machine
    isolate: bool = False  # run as a subprocess (python -m deepmimic): a failure could hang or exhaust the test process

    def __repr__(self) -> str:
        return self.id


CASES: list[Case] = []


def _fmt(value: str, values: dict[str, Any]) -> str:
    return value.format(**values) if "{" in value else value


def _make(
    case_id: str,
    argv: Sequence[str],
    outputs: Sequence[str] = (),
    prep: Prep | None = None,
    extras: Sequence[Extra] = (),
    needles: Sequence[str] = (),
    seconds: float = 10.0,
    trace_memory: bool = False,
    needs_no_cuda: bool = False,
    isolate: bool = False,
) -> Case:
    def build(assets: Assets, d: Path) -> Spec:
        values: dict[str, Any] = {**assets.placeholders(), "d": str(d)}
        values.update((prep(assets, d) or {}) if prep else {})
        checks: list[Check] = [check for extra in extras for check in extra(assets, d)]
        if needles:
            checks.append(message_has(*(_fmt(n, values) for n in needles)))
        return Spec(
            argv=[_fmt(a, values) for a in argv],
            outputs=[Path(_fmt(o, values)) for o in outputs],
            checks=checks,
            seconds=seconds,
            trace_memory=trace_memory,
        )

    case = Case(case_id, build, needs_no_cuda, isolate)
    CASES.append(case)
    return case


# --------------------------------------------------------------------------- extra checks


def marker(assets: Assets, d: Path) -> list[Check]:
    """A pickle / YAML payload in this case would create ``{d}/marker``: it must not run."""
    return [path_absent(d / "marker", "an embedded payload was executed")]


def no_query(assets: Assets, d: Path) -> list[Check]:
    """The recording HTTP teacher gets no request while the command runs."""
    return [no_new_requests(assets.server.count, assets.server.count())]


def fast(seconds: float) -> Extra:
    return lambda assets, d: [quick(seconds)]


def lacks(*needles: str) -> Extra:
    return lambda assets, d: [message_lacks(*needles)]


def bounded_memory(mb: float) -> Extra:
    return lambda assets, d: [peak_memory_below(mb)]


# --------------------------------------------------------------------------- factories


def run_config(d: Path, assets: Assets, change: Callable[[dict], None] | None = None, text: str | None = None) -> Path:
    """Write the tiny config (output_dir {d}/run), changed in place by ``change``, or ``text`` as is."""
    path = d / "cfg.yaml"
    if text is None:
        cfg = tiny_config(d / "run", assets.npz)
        if change is not None:
            change(cfg)
        text = yaml.safe_dump(cfg, sort_keys=False)
    path.write_text(text)
    return path


def run(
    case_id: str,
    *sets: str,
    change: Callable[[dict], None] | None = None,
    text: str | Callable[[Assets, Path], str] | None = None,
    args: Sequence[str] = (),
    outputs: Sequence[str] = ("{d}/run",),
    prep: Prep | None = None,
    **kw: Any,
) -> Case:
    """``deepmimic run {d}/cfg.yaml --no-progress [--set S ...] [args]`` on the tiny config."""

    def prep_all(assets: Assets, d: Path) -> dict[str, Any]:
        values = dict((prep(assets, d) or {}) if prep else {})
        body = text(assets, d) if callable(text) else text
        values["cfg"] = str(run_config(d, assets, change, body))
        return values

    argv = ["run", "{cfg}", "--no-progress", *[x for s in sets for x in ("--set", s)], *args]
    area = case_id.split("/", 1)[0]
    return _make(case_id if area in ("data", "notation") else f"config/{case_id}", argv, outputs, prep_all, **kw)


def label(
    case_id: str,
    *args: str,
    teacher: str = "{preds}",
    data: str = "npz:{npz}",
    out: str = "{d}/probs.npy",
    outputs: Sequence[str] | None = None,
    **kw: Any,
) -> Case:
    """``deepmimic label --teacher T --data D --out O --no-progress [args]``; O and O.querylog must not be left."""
    argv = ["label", "--teacher", teacher, "--data", data, "--out", out, "--no-progress", *args]
    outs = list(outputs) if outputs is not None else [out, f"{out}.querylog"]
    return _make(case_id, argv, outs, **kw)


def mimic(
    case_id: str,
    *args: str,
    teacher: str = "{onnx}",
    data: str = "npz:{npz}",
    student: str = "fc:8-s",
    out: str = "{d}/mimic",
    **kw: Any,
) -> Case:
    """``deepmimic mimic`` with one tiny epoch; the --out folder must not be left."""
    argv = [
        "mimic",
        "--teacher",
        teacher,
        "--data",
        data,
        "--student",
        student,
        "--out",
        out,
        "--epochs",
        "1",
        "--batch-size",
        "16",
        "--no-progress",
        *args,
    ]
    return _make(case_id, argv, [out], **kw)


def cmd(case_id: str, *argv: str, outputs: Sequence[str] = (), **kw: Any) -> Case:
    return _make(case_id, list(argv), outputs, **kw)


def data(reader: str, slug: str, make: Callable[[Path], Path], via: Sequence[str] = ("label",), **kw: Any) -> None:
    """A malformed data set for ``reader``: written by ``make({d}/data)``, read through each command of ``via``.

    ``label``: ``deepmimic label --data READER:ROOT`` with the recording HTTP teacher (which must get no request);
    ``run``: ``deepmimic run --set data.name=READER --set data.root=ROOT``.
    """
    user_prep: Prep | None = kw.pop("prep", None)

    def prep(assets: Assets, d: Path) -> dict[str, Any]:
        values = dict((user_prep(assets, d) or {}) if user_prep else {})
        values["root"] = str(make(d / "data"))
        return values

    for how in via:
        case_id = f"data/{reader}/{slug}[{how}]"
        if how == "label":  # the recording HTTP teacher answers any image: a data error must come before any query
            extras = [*kw.get("extras", ()), no_query]
            label(
                case_id,
                "--option",
                "num_classes=4",
                teacher="{url}",
                data=f"{reader}:{{root}}",
                prep=prep,
                **{**kw, "extras": extras},
            )
        else:
            run(case_id, f"data.name={reader}", "data.root={root}", prep=prep, **kw)


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def file_in_case(rel: str, content: str | bytes = "x") -> Prep:
    """Prep: write ``{d}/rel`` (a file that is in the way, or that must stay unchanged)."""

    def prep(assets: Assets, d: Path) -> None:
        path = d / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)

    return prep


def dir_in_case(rel: str) -> Prep:
    """Prep: create the folder ``{d}/rel``."""
    return lambda assets, d: _mkdir(d / rel) and None


def _copy_run(assets: Assets, d: Path) -> Path:
    """A private copy of the trained run (cases that corrupt it)."""
    target = d / "trained-copy"
    shutil.copytree(assets.trained, target)
    return target


BOTH = ("label", "run")

# =========================================================================== data readers
# ---- mnist / fashion-mnist (idx, raw and gzipped)
data("mnist", "missing-dir", lambda p: p / "nowhere", via=BOTH, needles=["{root}"])
data("mnist", "empty-dir", _mkdir)
data("mnist", "empty-images-file", lambda p: b.idx_dir(p, train_images=b""))
data("mnist", "truncated-header", lambda p: b.idx_dir(p, train_images=b.idx_images(12)[:10]))
data("mnist", "truncated-payload", lambda p: b.idx_dir(p, train_images=b.idx_images(12)[:-50]))
data("mnist", "wrong-magic", lambda p: b.idx_dir(p, train_images=b.idx_bytes(2049, (12, 8, 8), bytes(12 * 64))))
data(
    "mnist", "zero-images", lambda p: b.idx_dir(p, train_images=b.idx_images(0), train_labels=b.idx_labels(0)), via=BOTH
)
data("mnist", "header-dims-product-2^64", lambda p: b.idx_dir(p, train_images=b.overflow_dims_idx()), via=BOTH)
data("mnist", "header-dims-2^32-1", lambda p: b.idx_dir(p, train_images=b.huge_dims_idx()))
data("mnist", "labels-images-count-mismatch", lambda p: b.idx_dir(p, train_labels=b.idx_labels(11)))
data("mnist", "label-out-of-range", lambda p: b.idx_dir(p, test_labels=b.idx_bytes(2049, (6,), bytes([10] * 6))))
data("mnist", "missing-labels-file", lambda p: b.idx_dir(p, train_labels=None))
data(
    "mnist",
    "gz-bomb-beyond-header",
    lambda p: b.idx_dir_raw_gz(p, "train_images", b.gzip_bomb_idx()),
    trace_memory=True,
    extras=[bounded_memory(64)],
)
data(
    "mnist",
    "gz-truncated-stream",
    lambda p: b.idx_dir_raw_gz(p, "train_images", b.gzip.compress(b.idx_images(12))[:200]),
)
data("mnist", "gz-magic-then-junk", lambda p: b.idx_dir_raw_gz(p, "train_labels", b"\x1f\x8b" + bytes(range(200))))
data("mnist", "gz-empty-file", lambda p: b.idx_dir_raw_gz(p, "test_images", b""))
data("fashion-mnist", "missing-dir", lambda p: p / "nowhere", via=BOTH)
data("fashion-mnist", "wrong-magic-test-images", lambda p: b.idx_dir(p, test_images=b.idx_labels(6)))
data("fashion-mnist", "gz-count-mismatch", lambda p: b.idx_dir(p, gz=True, test_labels=b.idx_labels(5)))
data(
    "fashion-mnist",
    "gz-zero-images",
    lambda p: b.idx_dir(p, gz=True, train_images=b.idx_images(0), train_labels=b.idx_labels(0)),
)
data(
    "fashion-mnist",
    "gz-bomb-beyond-header",
    lambda p: b.idx_dir_raw_gz(p, "test_images", b.gzip_bomb_idx()),
    trace_memory=True,
    extras=[bounded_memory(64)],
)

# ---- cifar10 binary version
data("cifar10", "missing-dir", lambda p: p / "nowhere", via=BOTH)
data("cifar10", "empty-dir", _mkdir)
data("cifar10", "bin-empty-batch", lambda p: b.cifar_bin_dir(p, data_batch_3=b""))
data("cifar10", "bin-truncated-record", lambda p: b.cifar_bin_dir(p, test_batch=b.cifar_records(2)[:-10]), via=BOTH)
data(
    "cifar10", "bin-label-out-of-range", lambda p: b.cifar_bin_dir(p, data_batch_1=b.cifar_records(2, labels=[200, 1]))
)
data("cifar10", "bin-missing-test-batch", lambda p: b.cifar_bin_dir(p, test_batch=None))
data("cifar10", "bin-zero-images", lambda p: b.cifar_bin_dir(p, **{f"data_batch_{i}": b"" for i in range(1, 6)}))


def _cifar_bin_bad_meta(p: Path) -> Path:
    root = b.cifar_bin_dir(p)
    (root / "cifar-10-batches-bin" / "batches.meta.txt").write_text("cat\ndog\nbird\n")
    return root


data("cifar10", "bin-meta-three-names", _cifar_bin_bad_meta)


# ---- cifar10 python version (restricted unpickling)
def _marker_of(p: Path) -> Path:
    return p.parent / "marker"  # p is {d}/data


data(
    "cifar10",
    "py-pickle-calls-os-system",
    lambda p: b.cifar_py_dir(p, data_batch_1=b.pickled(b.MarkerPayload(_marker_of(p)))),
    via=BOTH,
    extras=[marker],
)
data(
    "cifar10",
    "py-payload-inside-dict",
    lambda p: b.cifar_py_dir(p, data_batch_2=b.pickled({b"data": b.MarkerPayload(_marker_of(p)), b"labels": [1, 2]})),
    extras=[marker],
)
data(
    "cifar10",
    "py-meta-calls-os-system",
    lambda p: b.cifar_py_dir(p, **{"batches.meta": b.pickled(b.MarkerPayload(_marker_of(p)))}),
    extras=[marker],
)
data(
    "cifar10",
    "py-builtins-eval-global",
    lambda p: b.cifar_py_dir(
        p, test_batch=b.raw_pickle_global("builtins", "eval", f"__import__('os').system('touch {_marker_of(p)}')")
    ),
    extras=[marker],
)
data("cifar10", "py-not-a-dict", lambda p: b.cifar_py_dir(p, data_batch_1=[1, 2, 3]))
data(
    "cifar10",
    "py-missing-labels-key",
    lambda p: b.cifar_py_dir(p, data_batch_1={b"data": np.zeros((2, 3072), np.uint8)}),
)
data(
    "cifar10",
    "py-row-length-100",
    lambda p: b.cifar_py_dir(p, data_batch_4={b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}),
)
data(
    "cifar10",
    "py-labels-count-mismatch",
    lambda p: b.cifar_py_dir(p, data_batch_1={b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 1, 2]}),
)
data(
    "cifar10",
    "py-negative-labels",
    lambda p: b.cifar_py_dir(p, test_batch={b"data": np.zeros((2, 3072), np.uint8), b"labels": [-1, 0]}),
)
data(
    "cifar10",
    "py-pixels-out-of-range",
    lambda p: b.cifar_py_dir(p, data_batch_1={b"data": np.full((2, 3072), 300, np.int64), b"labels": [0, 1]}),
    via=BOTH,
)
data(
    "cifar10",
    "py-label-out-of-range",
    lambda p: b.cifar_py_dir(p, data_batch_5={b"data": np.zeros((2, 3072), np.uint8), b"labels": [10, 0]}),
)
data(
    "cifar10",
    "py-labels-are-strings",
    lambda p: b.cifar_py_dir(p, data_batch_1={b"data": np.zeros((2, 3072), np.uint8), b"labels": ["a", "b"]}),
)
data(
    "cifar10",
    "py-truncated-pickle",
    lambda p: b.cifar_py_dir(p, data_batch_1=b.pickled(b.cifar_batch_dict(seed=1))[:500]),
)
data(
    "cifar10",
    "py-random-bytes",
    lambda p: b.cifar_py_dir(p, data_batch_3=bytes(b.rng(3).integers(0, 256, 500, dtype=np.uint8))),
)
data("cifar10", "py-empty-file", lambda p: b.cifar_py_dir(p, test_batch=b""))
data(
    "cifar10",
    "py-zero-images",
    lambda p: b.cifar_py_dir(
        p,
        **{
            name: {b"data": np.zeros((0, 3072), np.uint8), b"labels": []}
            for name in [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"]
        },
    ),
    via=BOTH,
)

# ---- cifar100 (python version)
data("cifar100", "missing-dir", lambda p: p / "nowhere", via=BOTH)
data(
    "cifar100",
    "meta-calls-os-system",
    lambda p: b.cifar100_dir(p, meta=b.pickled(b.MarkerPayload(_marker_of(p)))),
    via=BOTH,
    extras=[marker],
)
data(
    "cifar100",
    "train-calls-os-system",
    lambda p: b.cifar100_dir(p, train=b.pickled([b.MarkerPayload(_marker_of(p))])),
    extras=[marker],
)
data(
    "cifar100",
    "fine-label-out-of-range",
    lambda p: b.cifar100_dir(p, train={b"data": np.zeros((3, 3072), np.uint8), b"fine_labels": [100, 0, 1]}),
)
data(
    "cifar100",
    "missing-fine-labels",
    lambda p: b.cifar100_dir(p, test={b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 1]}),
)
data("cifar100", "meta-ten-names", lambda p: b.cifar100_dir(p, meta={b"fine_label_names": [b"x"] * 10}))
data(
    "cifar100",
    "train-truncated",
    lambda p: b.cifar100_dir(p, train=b.pickled(b.cifar_batch_dict(3, b"fine_labels", top=100))[:-40]),
)

# ---- tiny-imagenet


def _ti(change: Callable[[Path], None]) -> Callable[[Path], Path]:
    def make(p: Path) -> Path:
        root = b.tiny_imagenet_dir(p)
        change(root)
        return root

    return make


def _first_train_image(root: Path) -> Path:
    return sorted((root / "train" / "n01" / "images").iterdir())[0]


data("tiny-imagenet", "missing-dir", lambda p: p / "nowhere", via=BOTH)
data("tiny-imagenet", "empty-wnids", _ti(lambda r: (r / "wnids.txt").write_text("")))
data("tiny-imagenet", "missing-class-folder", _ti(lambda r: (r / "wnids.txt").write_text("n01\nn02\nn03\n")))
data("tiny-imagenet", "corrupt-jpeg", _ti(lambda r: b.random_bytes(_first_train_image(r), 300)), via=BOTH)
data("tiny-imagenet", "truncated-jpeg", _ti(lambda r: b.truncated_copy(_first_train_image(r), 0.3)))
data(
    "tiny-imagenet",
    "val-unknown-wnid",
    _ti(lambda r: (r / "val" / "val_annotations.txt").write_text("val_0.JPEG\tn99\t0\t0\t8\t8\n")),
)
data("tiny-imagenet", "val-image-missing", _ti(lambda r: (r / "val" / "images" / "val_0.JPEG").unlink()))
data("tiny-imagenet", "no-val-annotations", _ti(lambda r: (r / "val" / "val_annotations.txt").unlink()))
data("tiny-imagenet", "mixed-image-sizes", _ti(lambda r: b.png(_first_train_image(r), size=(16, 16), mode="RGB")))
data("tiny-imagenet", "zero-train-images", _ti(lambda r: [p.unlink() for p in (r / "train").rglob("*.JPEG")]))

# ---- npz
data("npz", "missing-file", lambda p: p.with_suffix(".npz"), via=BOTH)
data("npz", "empty-file", lambda p: b.empty_file(p.with_suffix(".npz")), via=BOTH)
data("npz", "random-bytes", lambda p: b.random_bytes(p.with_suffix(".npz")))
data("npz", "truncated-zip", lambda p: b.npz_truncated(p.with_suffix(".npz")))
data(
    "npz",
    "object-arrays",
    lambda p: b.npz_object_arrays(p.with_suffix(".npz"), _marker_of(p)),
    via=BOTH,
    extras=[marker],
)
data("npz", "label-10^9", lambda p: b.npz(p.with_suffix(".npz"), labels=np.r_[10**9, np.zeros(39, np.int64)]), via=BOTH)
data("npz", "test-label-10^9", lambda p: b.npz(p.with_suffix(".npz"), test_labels=np.r_[10**9, np.zeros(15, np.int64)]))
data(
    "npz",
    "labels-images-count-mismatch",
    lambda p: b.npz(p.with_suffix(".npz"), labels=np.zeros(39, np.int64)),
    via=BOTH,
)
data(
    "npz",
    "pixels-above-255",
    lambda p: b.npz(p.with_suffix(".npz"), images=np.full((40, 1, 8, 8), 300, np.int16)),
    via=BOTH,
)
data("npz", "negative-pixels", lambda p: b.npz(p.with_suffix(".npz"), images=np.full((40, 1, 8, 8), -1, np.int16)))
data(
    "npz", "negative-labels", lambda p: b.npz(p.with_suffix(".npz"), labels=np.r_[-1, np.zeros(39, np.int64)]), via=BOTH
)
data("npz", "float-images", lambda p: b.npz(p.with_suffix(".npz"), images=np.zeros((40, 1, 8, 8), np.float32)))
data("npz", "float-labels", lambda p: b.npz(p.with_suffix(".npz"), labels=np.zeros(40, np.float32)))
data(
    "npz",
    "zero-images",
    lambda p: b.npz(p.with_suffix(".npz"), images=np.zeros((0, 1, 8, 8), np.uint8), labels=np.zeros(0, np.int64)),
    via=BOTH,
)
data(
    "npz",
    "zero-test-images",
    lambda p: b.npz(
        p.with_suffix(".npz"), test_images=np.zeros((0, 1, 8, 8), np.uint8), test_labels=np.zeros(0, np.int64)
    ),
)
data("npz", "images-2d", lambda p: b.npz(p.with_suffix(".npz"), images=np.zeros((40, 64), np.uint8)))
data("npz", "images-5d", lambda p: b.npz(p.with_suffix(".npz"), images=np.zeros((40, 1, 1, 8, 8), np.uint8)))
data("npz", "missing-labels-array", lambda p: b.npz(p.with_suffix(".npz"), labels=None))
data("npz", "test-images-without-labels", lambda p: b.npz(p.with_suffix(".npz"), test_labels=None))
data("npz", "class-names-numeric", lambda p: b.npz(p.with_suffix(".npz"), class_names=np.arange(4)))
data("npz", "too-few-class-names", lambda p: b.npz(p.with_suffix(".npz"), class_names=np.array(["a", "b"])))
data(
    "npz",
    "train-test-shape-mismatch",
    lambda p: b.npz(p.with_suffix(".npz"), test_images=np.zeros((16, 1, 4, 4), np.uint8)),
)
data(
    "npz",
    "member-bomb",
    lambda p: b.npz_member_bomb(p.with_suffix(".npz")),
    trace_memory=True,
    extras=[bounded_memory(64)],
)
data("npz", "path-is-a-directory", lambda p: _mkdir(p.with_suffix(".npz")))

# ---- image-folder


def _folder(change: Callable[[Path], None], classes: tuple[str, ...] = ("a", "b")) -> Callable[[Path], Path]:
    def make(p: Path) -> Path:
        root = b.image_folder(p, classes)
        change(root)
        return root

    return make


data("image-folder", "missing-dir", lambda p: p / "nowhere", via=BOTH)
data("image-folder", "no-class-folders", _mkdir)
data("image-folder", "class-folders-without-images", lambda p: (_mkdir(p / "a"), _mkdir(p / "b"), p)[-1])
data("image-folder", "corrupt-png", _folder(lambda r: b.random_bytes(r / "a" / "0.png", 200)), via=BOTH)
data("image-folder", "truncated-png", _folder(lambda r: b.truncated_copy(r / "b" / "1.png", 0.4)))
data("image-folder", "empty-jpg", _folder(lambda r: b.empty_file(r / "a" / "9.jpg")))
data("image-folder", "text-named-png", _folder(lambda r: (r / "b" / "x.png").write_text("not an image\n")))
data("image-folder", "mixed-sizes", _folder(lambda r: b.png(r / "a" / "0.png", size=(16, 16))))
data("image-folder", "png-declares-10^10-pixels", _folder(lambda r: b.png_bomb(r / "a" / "0.png")))


def _split_folders(p: Path) -> Path:
    b.image_folder(p / "train", ("a", "b"))
    b.image_folder(p / "test", ("a", "c"))
    return p


data("image-folder", "train-test-classes-differ", _split_folders)

# ---- data specs (label / mimic)
label("data/spec-unknown-name", data="imagenet:/nowhere", needles=["imagenet"])
label("data/spec-empty-root", data="npz:")
label("data/spec-builtin-with-root", data="mnist-5k:{d}/x")
label("data/spec-bare-word", data="blobs")

# =========================================================================== config and overrides


def _set(path: str, value: Any) -> Callable[[dict], None]:
    def change(cfg: dict) -> None:
        node = cfg
        keys = path.split(".")
        for key in keys[:-1]:
            node = node[int(key)] if isinstance(node, list) else node.setdefault(key, {})
        if isinstance(node, list):
            node[int(keys[-1])] = value
        else:
            node[keys[-1]] = value

    return change


run("unknown-top-level-key", change=_set("bogus", 1), needles=["bogus"])
run("unknown-nested-key", change=_set("mentor.train.bogus", 1), needles=["bogus"])
run("wrong-type-epochs-text", change=_set("train.epochs", "many"), needles=["epochs"])
run("set-unknown-key", "bogus=1", needles=["bogus"])
run("set-mentor.train=5", "mentor.train=5", needles=["mentor.train"])
run("set-students=5", "students=5", needles=["students"])
run("set-students.9.model=x", "students.9.model=x", needles=["9"])
run("set-students.x.model", "students.x.model=fc-s")
run("set-train.device=banana", "train.device=banana", needles=["banana"])
run("set-train.device=cuda", "train.device=cuda", needles=["cuda"], needs_no_cuda=True)
run("set-mentor.train.device=cuda:7", "mentor.train.device=cuda:7", needles=["cuda"], needs_no_cuda=True)
run("set-split.labeled_fraction=1.5", "split.labeled_fraction=1.5", needles=["labeled_fraction"])
run("set-split.labeled_fraction=0", "split.labeled_fraction=0", needles=["labeled_fraction"])
run("set-without-equals", "train.epochs")
run("set-value-invalid-yaml", "train.epochs=[1")
run("set-epochs=-1", "train.epochs=-1", needles=["epochs"])
run("set-lr=-0.1", "train.lr=-0.1", needles=["lr"])
run("set-batch_size=0", "students.0.train.batch_size=0", needles=["batch_size"])
run("set-eval_batch_size=0", "train.eval_batch_size=0", needles=["eval_batch_size"])
run("set-mentor.method=soft_label", "mentor.method=soft_label", needles=["mentor.method"])
run("set-students.0.method=magic", "students.0.method=magic", needles=["magic"])
run("set-students.0.teacher=sometimes", "students.0.teacher=sometimes", needles=["teacher"])
run("set-data.name=imagenet-21k", "data.name=imagenet-21k", needles=["imagenet-21k"])
run("set-data.options.bogus=1", "data.options.bogus=1", needles=["bogus"])
run("set-data.train_subset=0", "data.train_subset=0", needles=["train_subset"])
run("set-split.removal_ratio_bound=1", "split.removal_ratio_bound=1", needles=["removal_ratio_bound"])
run("set-ood-pool-missing", "split.out_of_domain={{pool: {d}/nowhere.npz, fraction: 0.1}}", needles=["nowhere.npz"])
run("set-model_options.bogus=1", "students.0.model_options.bogus=1", needles=["bogus"])
run(
    "set-model_options.conv_channels=99999999",
    "mentor.model=c-mp-fc:8-s",
    "mentor.model_options.conv_channels=99999999",
)
run("set-model_options.fc_units=0", "students.0.model_options.fc_units=0", needles=["fc_units"])
run("set-model_options.dropout=1.5", "mentor.model_options.dropout=1.5", needles=["dropout"])
run("set-model_options.kernel_size=2", "mentor.model_options.kernel_size=2", needles=["kernel_size"])
run("set-method_options.bogus=1", "students.0.method_options.bogus=1", needles=["bogus"])
run("set-method_options.temperature=-1", "students.0.method_options.temperature=-1", needles=["temperature"])
run("duplicate-student-names", change=lambda c: c["students"].append(dict(c["students"][0])), needles=["Student"])
run("no-students", change=_set("students", []), needles=["students"])
run("unknown-pipeline", change=_set("pipeline", "magic"), needles=["magic"])
run("train-block-not-a-mapping", change=_set("train", 5), needles=["train"])
run(
    "cache-dir-is-a-file",
    change=lambda c: c.update(cache_dir=c["output_dir"] + "-cache-file"),
    outputs=["{d}/run", "{d}/run-cache-file"],
    prep=file_in_case("run-cache-file", "x"),
)
# file values are strict (no coercion); --set strings still parse as YAML
for _slug, _path, _value, _key in (
    ("yaml-epochs-string-'2'", "train.epochs", "2", "epochs"),
    ("yaml-epochs-float-2.0", "train.epochs", 2.0, "epochs"),
    ("yaml-seed-true", "train.seed", True, "seed"),
    ("yaml-lr-string-'0.1'", "train.lr", "0.1", "lr"),
    ("yaml-nesterov-string-'true'", "mentor.train.nesterov", "true", "nesterov"),
    ("yaml-labeled_fraction-string", "split.labeled_fraction", "0.2", "labeled_fraction"),
):
    run(_slug, change=_set(_path, _value), needles=[_key])

BAD_YAML = {
    "invalid-yaml": "mentor: [unclosed\nstudents: {\n",
    "yaml-tab-indent": "name: x\n\tmentor: 1\n",
    "top-level-list": "- 1\n- 2\n",
    "top-level-scalar": "just a string\n",
    "empty-file": "",
    "yaml-python-name-tag": "name: !!python/name:os.system\n",
}
for _slug, _text in BAD_YAML.items():
    run(_slug, text=_text)
run(
    "yaml-python-object-apply-os.system",
    text=lambda a, d: f"name: !!python/object/apply:os.system ['touch {d}/marker']\n",
    extras=[marker],
)


def _billion_laughs(assets: Assets, d: Path) -> str:
    """The tiny config with data.options holding 10 ** 9 'lol's by nested YAML aliases (a few hundred bytes)."""
    text = yaml.safe_dump(tiny_config(d / "run", assets.npz), sort_keys=False)
    bomb = "  options:\n    l0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
    bomb += "".join(f"    l{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]\n" for i in range(1, 9))
    return text.replace("data:\n", "data:\n" + bomb, 1)


run(
    "yaml-billion-laughs", text=_billion_laughs, isolate=True
)  # in-process, an earlier version hung the whole test process
run("yaml-20000-nested-lists", text=lambda a, d: "name: " + "[" * 20000 + "]" * 20000 + "\n")
cmd(
    "config/not-utf8",
    "run",
    "{d}/cfg.yaml",
    "--no-progress",
    prep=file_in_case("cfg.yaml", b"name: \xff\xfe\x00x\n"),
    outputs=["{d}/run"],
)
cmd("config/missing-file", "run", "{d}/absent.yaml", "--no-progress", needles=["absent.yaml"])
cmd("config/config-is-a-directory", "run", "{d}/cfgdir", "--no-progress", prep=dir_in_case("cfgdir"))
# --out mistakes
run(
    "out-is-an-existing-file",
    args=["--out", "{d}/taken"],
    outputs=["{d}/taken", "{d}/run"],
    prep=file_in_case("taken", "keep me\n"),
    needles=["taken"],
)
run(
    "out-under-a-regular-file",
    args=["--out", "{d}/file.txt/run"],
    outputs=["{d}/file.txt", "{d}/run"],
    prep=file_in_case("file.txt", "x"),
)
run(
    "out-in-/proc",
    args=["--out", "/proc/deepmimic-reliability/run"],
    outputs=["/proc/deepmimic-reliability", "{d}/run"],
)
run(
    "output_dir-is-an-existing-file",
    change=lambda c: c.update(output_dir=c["output_dir"] + ".txt"),
    outputs=["{d}/run.txt"],
    prep=file_in_case("run.txt", "keep me\n"),
)

# =========================================================================== architecture notation
NOTATIONS = {
    "absurd-conv-width-c:99999999-s": ("c:99999999-s", "99999999"),
    "absurd-fc-widths": ("fc:99999999-fc:99999999-s", "99999999"),
    "absurd-repeat-c999999999": ("c999999999-s", "999999999"),
    "absurd-group-repeat": ("(c-d)99999999-s", "99999999"),
    "unknown-token-zz": ("c-zz-s", "zz"),
    "unknown-symbol-snowman": ("c-\u2603-s", None),
    "empty-string": ("''", None),
    "null": ("null", None),
    "number": ("5", None),
    "unbalanced-open": ("(c-mp-s", "("),
    "unbalanced-close": ("c-mp)-s", ")"),
    "zero-conv-width": ("c:0-s", "c:0"),
    "zero-fc-width": ("fc:0-s", "fc:0"),
    "zero-repeat": ("c0-s", "c0"),
    "zero-group-repeat": ("(c-mp)0-s", None),
    "empty-group": ("()2-s", None),
    "no-output-layer": ("c-mp", None),
    "two-output-layers": ("s-s", None),
    "conv-after-fc": ("fc-c-s", None),
    "pool-below-1x1": ("mp-mp-mp-mp-s", None),
    "only-dashes": ("---", None),
}
for _slug, (_notation, _needle) in NOTATIONS.items():
    run(f"notation/{_slug}", f"mentor.model={_notation}", needles=[_needle] if _needle else [])
cmd(
    "notation/absurd-conv-width[layers]",
    "layers",
    "c:99999999-s",
    "--in-shape",
    "1,8,8",
    "--classes",
    "4",
    needles=["99999999"],
)
cmd(
    "notation/absurd-fc-widths[layers]",
    "layers",
    "fc:99999999-fc:99999999-s",
    "--in-shape",
    "1,8,8",
    "--classes",
    "4",
    needles=["99999999"],
)
cmd("notation/absurd-repeat[layers]", "layers", "c999999999-s", "--in-shape", "1,8,8", "--classes", "4")
cmd("notation/unknown-token[layers]", "layers", "c-zz-s", "--in-shape", "1,8,8", "--classes", "4", needles=["zz"])
cmd("notation/unbalanced[layers]", "layers", "((c-s", "--in-shape", "1,8,8", "--classes", "4")
cmd("notation/empty[layers]", "layers", "", "--in-shape", "1,8,8", "--classes", "4")
cmd("notation/zero-width[layers]", "layers", "c:0-mp-s", "--in-shape", "1,8,8", "--classes", "4")
cmd(
    "notation/student-absurd[mimic]",
    "mimic",
    "--teacher",
    "{url}",
    "--option",
    "num_classes=4",
    "--data",
    "npz:{npz}",
    "--student",
    "c:99999999-s",
    "--out",
    "{d}/mimic",
    "--epochs",
    "1",
    "--no-progress",
    outputs=["{d}/mimic"],
    needles=["99999999"],
    extras=[no_query],
)

# =========================================================================== layers / models
LAYERS = {
    "in-shape-two-dims": ["c-mp-s", "--in-shape", "1,8", "--classes", "4"],
    "in-shape-text": ["c-mp-s", "--in-shape", "a,b,c", "--classes", "4"],
    "in-shape-zero": ["c-mp-s", "--in-shape", "0,8,8", "--classes", "4"],
    "in-shape-negative": ["c-mp-s", "--in-shape=-1,8,8", "--classes", "4"],
    "in-shape-huge": ["c-s", "--in-shape", "1,100000,100000", "--classes", "4"],
    "classes-zero": ["c-mp-s", "--in-shape", "1,8,8", "--classes", "0"],
    "classes-negative": ["c-mp-s", "--in-shape", "1,8,8", "--classes=-3"],
    "notation-without-in-shape": ["c-s", "--classes", "4"],
    "notation-without-classes": ["c-s", "--in-shape", "1,8,8"],
    "unknown-preset": ["resnet21"],
    "preset-wrong-in-shape": ["mnist-mentor", "--in-shape", "1,2,2"],
}
for _slug, _args in LAYERS.items():
    cmd(f"layers/{_slug}", "layers", *_args)

# =========================================================================== teacher specs
TEACHERS: dict[str, tuple[str, list[str], dict[str, Any]]] = {
    "missing-file": ("{d}/nowhere.onnx", [], {"needles": ["nowhere.onnx"]}),
    "unknown-suffix": ("{d}/teacher.bin", [], {"prep": file_in_case("teacher.bin", bytes(range(256)))}),
    "directory-not-a-run": ("{d}/folder", [], {"prep": dir_in_case("folder")}),
    "run-root-not-a-stage": ("{trained}", [], {}),
    "stage-with-corrupt-weights": ("{copy}/mentor", [], {"prep": lambda a, d: {"copy": str(_corrupt_weights(a, d))}}),
    "onnx-random-bytes": ("{d}/t.onnx", [], {"prep": file_in_case("t.onnx", bytes(range(256)) * 2)}),
    "onnx-empty-file": ("{d}/t.onnx", [], {"prep": file_in_case("t.onnx", b"")}),
    "onnx-wrong-input-shape": ("{wrong_onnx}", [], {}),
    "http-closed-port-retries-0": (
        "{closed}",
        ["--option", "retries=0", "--option", "num_classes=4"],
        {"extras": [fast(10)]},
    ),
    "http-closed-port-info-retries-0": ("{closed}", ["--option", "retries=0"], {"extras": [fast(10)]}),
    "http-no-host": ("http://", [], {}),
    "http-bad-port-text": (
        "http://127.0.0.1:notaport/v1/predict",
        ["--option", "retries=0", "--option", "num_classes=4"],
        {},
    ),
    "onnx-unknown-option": ("{onnx}", ["--option", "colour=red"], {"needles": ["colour"]}),
    "http-unknown-option": ("{url}", ["--option", "layout=nhwc"], {"needles": ["layout"], "extras": [no_query]}),
    "option-without-value": ("{onnx}", ["--option", "novalue"], {"needles": ["novalue"]}),
    "option-given-twice": ("{onnx}", ["--option", "scale=unit", "--option", "scale=byte"], {"needles": ["scale"]}),
    "onnx-layout-sideways": ("{onnx}", ["--option", "layout=sideways"], {"needles": ["sideways"]}),
    "onnx-mean-not-numbers": ("{onnx}", ["--option", "mean=a,b"], {"needles": ["mean"]}),
    "onnx-std-zero": ("{onnx}", ["--option", "std=0"], {"needles": ["std"]}),
    "onnx-mean-four-values-one-channel": ("{onnx}", ["--option", "mean=0.1,0.2,0.3,0.4"], {"needles": ["mean"]}),
    "onnx-num-classes-mismatch": ("{onnx}", ["--option", "num_classes=7"], {"needles": ["7"]}),
    "onnx-num-classes-zero": ("{onnx}", ["--option", "num_classes=0"], {}),
    "onnx-threads-negative": ("{onnx}", ["--option", "threads=-1"], {"needles": ["threads"]}),
    "onnx-input-name-missing": ("{onnx}", ["--option", "input=nope"], {"needles": ["nope"]}),
    "onnx-outputs-bogus": ("{onnx}", ["--option", "outputs=bogus"], {"needles": ["bogus"]}),
    "http-retries-negative": ("{url}", ["--option", "retries=-1", "--option", "num_classes=4"], {"extras": [no_query]}),
    "http-timeout-text": ("{url}", ["--option", "timeout=abc"], {"needles": ["timeout"], "extras": [no_query]}),
    "http-timeout-zero": ("{url}", ["--option", "timeout=0", "--option", "num_classes=4"], {"extras": [no_query]}),
    "http-timeout-nan": ("{url}", ["--option", "timeout=nan", "--option", "num_classes=4"], {"extras": [no_query]}),
    "http-concurrency-zero": (
        "{url}",
        ["--option", "concurrency=0", "--option", "num_classes=4"],
        {"extras": [no_query]},
    ),
    "http-num-classes-zero": ("{url}", ["--option", "num_classes=0"], {"extras": [no_query]}),
    "http-budget-negative": ("{url}", ["--option", "budget=-5", "--option", "num_classes=4"], {"extras": [no_query]}),
    "http-token-env-unset": (
        "{url}",
        ["--option", "token_env=DEEPMIMIC_RELIABILITY_UNSET", "--option", "num_classes=4"],
        {"needles": ["DEEPMIMIC_RELIABILITY_UNSET"], "extras": [no_query]},
    ),
    "label-only-maybe": ("{onnx}", ["--option", "label_only=maybe"], {"needles": ["label_only"]}),
    "predictions-atol-text": ("{preds}", ["--option", "atol=abc"], {"needles": ["atol"]}),
    "predictions-unknown-option": ("{preds}", ["--option", "layout=nhwc"], {"needles": ["layout"]}),
}


def _corrupt_weights(assets: Assets, d: Path) -> Path:
    copy = _copy_run(assets, d)
    b.random_bytes(copy / "mentor" / "weights.safetensors", 300)
    return copy


for _slug, (_teacher, _args, _kw) in TEACHERS.items():
    label(f"teacher/{_slug}[label]", *_args, teacher=_teacher, **_kw)
for _slug in (
    "missing-file",
    "directory-not-a-run",
    "onnx-random-bytes",
    "onnx-wrong-input-shape",
    "http-closed-port-retries-0",
    "onnx-unknown-option",
):
    _teacher, _args, _kw = TEACHERS[_slug]
    mimic(f"teacher/{_slug}[mimic]", *_args, teacher=_teacher, **_kw)

# =========================================================================== predictions files
PREDICTIONS: dict[str, tuple[str, Callable[[Path, Path], Path], dict[str, Any]]] = {
    "random-bytes-npy": (
        "p.npy",
        lambda p, d: b.random_bytes(p, 400),
        {"extras": [lacks("holds Python objects", "Python objects")]},
    ),
    "object-dtype-npy": ("p.npy", lambda p, d: b.malicious_npy(p, d / "marker"), {"extras": [marker]}),
    "empty-npy": ("p.npy", lambda p, d: b.empty_file(p), {}),
    "wrong-row-count": ("p.npy", lambda p, d: b.save_npy(p, b.probs(39)), {"needles": ["39"]}),
    "nan": (
        "p.npy",
        lambda p, d: b.save_npy(p, np.where(np.arange(40)[:, None] == 5, np.nan, b.probs(40))),
        {"needles": ["NaN"]},
    ),
    "infinity": ("p.npy", lambda p, d: b.save_npy(p, np.where(np.arange(40)[:, None] == 3, np.inf, b.probs(40))), {}),
    "negative": ("p.npy", lambda p, d: b.save_npy(p, b.probs(40) - 0.3), {"needles": ["negative"]}),
    "rows-not-summing-to-1": ("p.npy", lambda p, d: b.save_npy(p, b.probs(40) * 3), {"needles": ["sum"]}),
    "one-dimensional": ("p.npy", lambda p, d: b.save_npy(p, b.probs(40)[:, 0]), {}),
    "three-dimensional": ("p.npy", lambda p, d: b.save_npy(p, b.probs(40)[:, :, None]), {}),
    "zero-classes": ("p.npy", lambda p, d: b.save_npy(p, np.zeros((40, 0), np.float32)), {}),
    "complex-dtype": ("p.npy", lambda p, d: b.save_npy(p, b.probs(40).astype(np.complex64)), {}),
    "string-dtype": ("p.npy", lambda p, d: b.save_npy(p, np.full((40, 4), "0.25")), {}),
    "header-claims-10^12-rows": ("p.npy", lambda p, d: b.npy_with_header(p, (10**12, 4), bytes(64)), {}),
    "header-claims-2^62-columns": ("p.npy", lambda p, d: b.npy_with_header(p, (40, 2**62), bytes(64)), {}),
    "csv-with-text": ("p.csv", lambda p, d: _csv(p, 40, bad_row=3), {"needles": ["line"]}),
    "csv-empty": ("p.csv", lambda p, d: b.empty_file(p), {}),
    "csv-ragged": ("p.csv", lambda p, d: _csv(p, 40, ragged_row=7), {}),
    "csv-random-bytes": ("p.csv", lambda p, d: b.random_bytes(p, 400), {}),
    "csv-wrong-row-count": ("p.csv", lambda p, d: _csv(p, 12), {}),
    "npy-is-a-directory": ("p.npy", lambda p, d: _mkdir(p), {}),
}


def _csv(path: Path, rows: int, bad_row: int | None = None, ragged_row: int | None = None) -> Path:
    lines = ["a,b,c,d"]
    for i, row in enumerate(b.probs(rows)):
        cells = [f"{v:.8f}" for v in row]
        if i == bad_row:
            cells[1] = "cat"
        if i == ragged_row:
            cells = cells[:2]
        lines.append(",".join(cells))
    path.write_text("\n".join(lines) + "\n")
    return path


for _slug, (_name, _write, _kw) in PREDICTIONS.items():
    _prep: Prep = lambda a, d, _n=_name, _w=_write: {"p": str(_w(d / _n, d))}  # noqa: E731
    label(f"predictions/{_slug}[label]", teacher="{p}", prep=_prep, **_kw)
for _slug in ("random-bytes-npy", "wrong-row-count", "rows-not-summing-to-1", "csv-with-text"):
    _name, _write, _kw = PREDICTIONS[_slug]
    mimic(
        f"predictions/{_slug}[mimic]",
        teacher="{p}",
        prep=lambda a, d, _n=_name, _w=_write: {"p": str(_w(d / _n, d))},
        **_kw,
    )
# (a predictions file answers --subset N <= its rows by row: valid; more rows than it has is not)
mimic("predictions/subset-larger-than-its-rows[mimic]", "--subset", "41", teacher="{preds}", needles=["41"])
mimic(
    "predictions/three-classes-for-four-class-data[mimic]",
    teacher="{p}",
    prep=lambda a, d: {"p": str(b.save_npy(d / "p3.npy", b.probs(40, k=3)))},
)

# =========================================================================== label
label(
    "label/out-is-an-existing-directory",
    "--option",
    "num_classes=4",
    teacher="{url}",
    out="{d}/outdir",
    outputs=["{d}/outdir", "{d}/outdir.querylog"],
    prep=file_in_case("outdir/keep.txt"),
    extras=[no_query, fast(5)],
    needles=["outdir"],
)
label(
    "label/out-is-an-existing-directory[onnx]",
    teacher="{onnx}",
    out="{d}/outdir",
    outputs=["{d}/outdir", "{d}/outdir.querylog"],
    prep=dir_in_case("outdir"),
    extras=[fast(5)],
)
label(
    "label/out-under-a-regular-file",
    "--option",
    "num_classes=4",
    teacher="{url}",
    out="{d}/file.txt/probs.npy",
    outputs=["{d}/file.txt", "{d}/file.txt/probs.npy.querylog"],
    prep=file_in_case("file.txt", "x"),
    extras=[no_query],
)
label(
    "label/out-in-/proc",
    "--option",
    "num_classes=4",
    teacher="{url}",
    out="/proc/deepmimic-reliability/probs.npy",
    outputs=["/proc/deepmimic-reliability"],
    extras=[no_query],
)
label("label/log-is-the-out-file", "--log", "{d}/probs.npy", needles=["log"])
label(
    "label/log-under-a-regular-file",
    "--log",
    "{d}/file.txt/q.log",
    outputs=["{d}/probs.npy", "{d}/file.txt"],
    prep=file_in_case("file.txt", "x"),
)
label(
    "label/log-is-garbage",
    "--log",
    "{d}/q.log",
    outputs=["{d}/probs.npy", "{d}/q.log"],
    prep=file_in_case("q.log", bytes(range(100))),
)
label("label/batch-size-0", "--batch-size", "0", needles=["--batch-size"])
label("label/batch-size-negative", "--batch-size=-4", needles=["--batch-size"])
label("label/budget-negative", "--budget=-1", needles=["--budget"])

# =========================================================================== mimic
mimic("mimic/bad-student-fails-before-onnx-teacher-is-queried", student="c-xx-s", needles=["xx"], extras=[fast(10)])
mimic(
    "mimic/bad-student-fails-before-http-teacher-is-queried",
    "--option",
    "num_classes=4",
    teacher="{url}",
    student="c-xx-s",
    needles=["xx"],
    extras=[no_query],
)
mimic("mimic/bad-student-fails-before-predictions-are-read", teacher="{preds}", student="c-xx-s", needles=["xx"])
mimic("mimic/unknown-preset-student", student="mnist-student-z")
cmd(
    "mimic/epochs-0",
    "mimic",
    "--teacher",
    "{url}",
    "--option",
    "num_classes=4",
    "--data",
    "npz:{npz}",
    "--student",
    "fc:8-s",
    "--out",
    "{d}/mimic",
    "--epochs",
    "0",
    "--no-progress",
    outputs=["{d}/mimic"],
    needles=["epochs"],
    extras=[no_query],
)
cmd(
    "mimic/batch-size-0",
    "mimic",
    "--teacher",
    "{url}",
    "--option",
    "num_classes=4",
    "--data",
    "npz:{npz}",
    "--student",
    "fc:8-s",
    "--out",
    "{d}/mimic",
    "--batch-size",
    "0",
    "--no-progress",
    outputs=["{d}/mimic"],
    needles=["batch"],
    extras=[no_query],
)
cmd(
    "mimic/lr-negative",
    "mimic",
    "--teacher",
    "{url}",
    "--option",
    "num_classes=4",
    "--data",
    "npz:{npz}",
    "--student",
    "fc:8-s",
    "--out",
    "{d}/mimic",
    "--lr=-1",
    "--no-progress",
    outputs=["{d}/mimic"],
    needles=["lr"],
    extras=[no_query],
)
mimic("mimic/subset-0", "--subset", "0", needles=["subset"])
mimic("mimic/subset-negative", "--subset=-3", needles=["subset"])
mimic("mimic/subset-larger-than-data", "--subset", "1000", needles=["1000"])
mimic("mimic/budget-negative", "--budget=-1", needles=["budget"])
mimic("mimic/budget-0", "--budget", "0", "--option", "num_classes=4", teacher="{url}", extras=[no_query])
mimic("mimic/student-option-text", "--student-option", "fc_units=abc", needles=["fc_units"])
mimic("mimic/student-option-unknown", "--student-option", "bogus=1", needles=["bogus"])
mimic("mimic/student-option-without-value", "--student-option", "conv_channels", needles=["conv_channels"])
mimic("mimic/out-is-an-existing-file", out="{d}/taken", prep=file_in_case("taken", "keep me\n"), needles=["taken"])
mimic("mimic/out-under-a-regular-file", out="{d}/file.txt/mimic", prep=file_in_case("file.txt", "x"))
mimic("mimic/data-spec-unknown", data="imagenet:/nowhere", needles=["imagenet"])

# =========================================================================== reproduce / demo / report
REPRO = [
    "reproduce",
    "split-ratio",
    "--dataset",
    "mnist",
    "--data-dir",
    "{d}/nodata",
    "--out",
    "{d}/out",
    "--no-progress",
]
cmd("reproduce/subset-0", *REPRO, "--subset", "0", outputs=["{d}/out"], needles=["subset"])
cmd("reproduce/subset-negative", *REPRO, "--subset=-5", outputs=["{d}/out"], needles=["subset"])
cmd("reproduce/test-subset-0", *REPRO, "--test-subset", "0", outputs=["{d}/out"], needles=["subset"])
cmd("reproduce/epochs-0", *REPRO, "--epochs", "0", outputs=["{d}/out"], needles=["epochs"])
cmd("reproduce/seeds-0", *REPRO, "--seeds", "0", outputs=["{d}/out"], needles=["seeds"])
cmd("reproduce/students-xyz", *REPRO, "--students", "xyz", outputs=["{d}/out"], needles=["students"])
cmd("reproduce/missing-data-dir", *REPRO, outputs=["{d}/out"], needles=["nodata"])
cmd(
    "reproduce/out-is-an-existing-file",
    "reproduce",
    "split-ratio",
    "--dataset",
    "mnist",
    "--data-dir",
    "{d}/nodata",
    "--out",
    "{d}/taken",
    "--no-progress",
    outputs=["{d}/taken"],
    prep=file_in_case("taken", "keep\n"),
)
DEMO = ["demo", "--no-progress", "--out", "{d}/demo"]
cmd("demo/set-unknown-key", *DEMO, "--set", "bogus=1", outputs=["{d}/demo"], needles=["bogus"])
cmd("demo/set-device-banana", *DEMO, "--set", "train.device=banana", outputs=["{d}/demo"], needles=["banana"])
cmd("demo/set-students=5", *DEMO, "--set", "students=5", outputs=["{d}/demo"])
cmd(
    "demo/out-is-an-existing-file",
    "demo",
    "--no-progress",
    "--out",
    "{d}/taken",
    outputs=["{d}/taken"],
    prep=file_in_case("taken", "keep\n"),
    needles=["taken"],
)
cmd(
    "demo/out-under-a-regular-file",
    "demo",
    "--no-progress",
    "--out",
    "{d}/f.txt/demo",
    outputs=["{d}/f.txt"],
    prep=file_in_case("f.txt", "x"),
)
cmd("report/missing-folder", "report", "{d}/nowhere", outputs=["{d}/nowhere"], needles=["nowhere"])
cmd("report/not-a-run-folder", "report", "{d}/empty", outputs=["{d}/empty"], prep=dir_in_case("empty"))
cmd("report/a-regular-file", "report", "{d}/f.txt", outputs=["{d}/f.txt"], prep=file_in_case("f.txt", "x"))
cmd(
    "report/results-json-garbage",
    "report",
    "{d}/r",
    outputs=["{d}/r"],
    prep=file_in_case("r/results.json", bytes(range(128, 256))),
)
cmd(
    "report/results-json-a-list",
    "report",
    "{d}/r",
    outputs=["{d}/r"],
    prep=file_in_case("r/results.json", "[1, 2, 3]\n"),
)
cmd(
    "report/results-json-empty-object",
    "report",
    "{d}/r",
    outputs=["{d}/r"],
    prep=file_in_case("r/results.json", "{}\n"),
)
cmd(
    "report/summary-json-garbage",
    "report",
    "{d}/r",
    outputs=["{d}/r"],
    prep=file_in_case("r/summary.json", "{not json\n"),
)
cmd(
    "report/run-with-corrupt-metrics",
    "report",
    "{copy}",
    outputs=["{copy}"],
    prep=lambda a, d: {"copy": str(_corrupt_metrics(a, d))},
)


def _corrupt_metrics(assets: Assets, d: Path) -> Path:
    copy = _copy_run(assets, d)
    for name in ("report.md", "report.html"):
        (copy / name).unlink(missing_ok=True)
    (copy / "mentor" / "metrics.jsonl").write_bytes(b"\x00\xff{garbage\n")
    return copy


# =========================================================================== serve / export
cmd("serve/missing-model", "serve", "{d}/nowhere", "--port", "0", needles=["nowhere"], seconds=15)
cmd("serve/folder-not-a-run", "serve", "{d}/empty", "--port", "0", prep=dir_in_case("empty"), seconds=15)
cmd("serve/run-root-not-a-stage", "serve", "{trained}", "--port", "0", seconds=15)
cmd(
    "serve/onnx-random-bytes",
    "serve",
    "{d}/m.onnx",
    "--port",
    "0",
    prep=file_in_case("m.onnx", bytes(range(256))),
    seconds=15,
)
cmd("serve/port-70000", "serve", "{stage}", "--port", "70000", needles=["70000"], seconds=15)
cmd("serve/port-negative", "serve", "{stage}", "--port=-1", needles=["-1"], seconds=15)
cmd("serve/max-batch-0", "serve", "{stage}", "--port", "0", "--max-batch", "0", needles=["batch"], seconds=15)
cmd(
    "serve/token-env-unset",
    "serve",
    "{stage}",
    "--port",
    "0",
    "--token-env",
    "DEEPMIMIC_RELIABILITY_UNSET",
    needles=["DEEPMIMIC_RELIABILITY_UNSET"],
)
cmd(
    "serve/onnx-mean-text",
    "serve",
    "{wrong_onnx}",
    "--port",
    "0",
    "--onnx-mean",
    "a,b",
    needles=["--onnx-mean"],
    seconds=15,
)
cmd("serve/onnx-std-zero", "serve", "{wrong_onnx}", "--port", "0", "--onnx-std", "0", needles=["std"], seconds=15)
cmd(
    "serve/corrupt-weights",
    "serve",
    "{copy}/mentor",
    "--port",
    "0",
    prep=lambda a, d: {"copy": str(_corrupt_weights(a, d))},
    seconds=15,
)
cmd(
    "export/missing-checkpoint",
    "export",
    "{d}/nowhere",
    "--onnx",
    "{d}/m.onnx",
    outputs=["{d}/m.onnx"],
    needles=["nowhere"],
)
cmd(
    "export/folder-not-a-run",
    "export",
    "{d}/empty",
    "--onnx",
    "{d}/m.onnx",
    outputs=["{d}/m.onnx"],
    prep=dir_in_case("empty"),
)
cmd(
    "export/run-root-not-a-stage", "export", "{trained}", "--bundle", "{d}/m.safetensors", outputs=["{d}/m.safetensors"]
)
cmd(
    "export/corrupt-weights",
    "export",
    "{copy}/mentor",
    "--onnx",
    "{d}/m.onnx",
    outputs=["{d}/m.onnx"],
    prep=lambda a, d: {"copy": str(_corrupt_weights(a, d))},
)
# (An export into a missing folder creates it, as run folders are created: not a mistake.)
cmd(
    "export/onnx-under-a-file",
    "export",
    "{stage}",
    "--onnx",
    "{d}/file/m.onnx",
    outputs=["{d}/file/m.onnx"],
    prep=lambda a, d: (d / "file").write_text("x") and None,
)
cmd(
    "export/onnx-onto-an-existing-folder",
    "export",
    "{stage}",
    "--onnx",
    "{d}/taken",
    outputs=["{d}/taken"],
    prep=dir_in_case("taken"),
)
cmd(
    "export/bundle-onto-an-existing-folder",
    "export",
    "{stage}",
    "--bundle",
    "{d}/taken",
    outputs=["{d}/taken"],
    prep=dir_in_case("taken"),
)
cmd(
    "export/onnx-under-a-regular-file",
    "export",
    "{stage}",
    "--onnx",
    "{d}/f.txt/m.onnx",
    outputs=["{d}/f.txt"],
    prep=file_in_case("f.txt", "x"),
)
cmd(
    "export/torchscript-in-/proc",
    "export",
    "{stage}",
    "--torchscript",
    "/proc/deepmimic-reliability/m.pt",
    outputs=["/proc/deepmimic-reliability"],
)
cmd(
    "export/batch-size-0",
    "export",
    "{stage}",
    "--onnx",
    "{d}/m.onnx",
    "--batch-size",
    "0",
    outputs=["{d}/m.onnx"],
    needles=["batch"],
)
cmd(
    "export/batch-size-10^9",
    "export",
    "{stage}",
    "--onnx",
    "{d}/m.onnx",
    "--batch-size",
    "1000000000",
    outputs=["{d}/m.onnx"],
    needles=["batch"],
)
cmd(
    "export/opset-1",
    "export",
    "{stage}",
    "--onnx",
    "{d}/m.onnx",
    "--opset",
    "1",
    outputs=["{d}/m.onnx"],
    needles=["opset"],
)
cmd(
    "export/opset-999",
    "export",
    "{stage}",
    "--onnx",
    "{d}/m.onnx",
    "--opset",
    "999",
    outputs=["{d}/m.onnx"],
    needles=["opset"],
)


def _check_ids() -> None:
    ids = [c.id for c in CASES]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    assert not duplicates, f"duplicate case ids: {duplicates}"


_check_ids()
