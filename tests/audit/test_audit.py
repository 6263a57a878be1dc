"""``deepmimic audit`` end to end on generated data and a tiny ONNX teacher (seconds)."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from deepmimic.audit.options import AuditOptions
from deepmimic.audit.queries import to_shape
from deepmimic.audit.run import run_audit
from deepmimic.cli import main
from deepmimic.data import load_dataset
from deepmimic.labelling.query_log import read_query_log
from pipeline_configs import write_blobs_npz
from synthetic import make_blobs_dataset

STUDENT = "c:4-mp-fc:16-s"


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, Path]:
    """(blobs npz with a test split, a 4-class ONNX teacher on 1x8x8 pixels / 255 trained on it)."""
    data = write_blobs_npz(tmp_path / "blobs.npz")
    train = load_dataset("npz", data).train
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 4))
    optimiser = torch.optim.Adam(model.parameters(), lr=0.02)
    x = train.images.float() / 255
    for _ in range(60):  # a teacher that is right most of the time, so fidelity means something
        optimiser.zero_grad()
        nn.functional.cross_entropy(model(x), train.labels).backward()
        optimiser.step()
    path = tmp_path / "teacher.onnx"
    with torch.no_grad():
        torch.onnx.export(
            nn.Sequential(model, nn.Softmax(1)).eval(),
            (torch.zeros(2, 1, 8, 8),),
            str(path),
            input_names=["x"],
            dynamic_axes={"x": {0: "b"}},
            dynamo=False,
        )
    return data, path


def argv(data: Path, teacher: Path, out: Path, *extra: str) -> list[str]:
    return [
        "audit",
        "--teacher",
        str(teacher),
        "--data",
        f"npz:{data}",
        "--student",
        STUDENT,
        "--epochs",
        "2",
        "--min-steps",
        "6",
        "--out",
        str(out),
        "--no-progress",
        *extra,
    ]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_audit_sends_the_largest_budget_once_and_resumes_without_a_query(
    setup: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data, teacher = setup
    out = tmp_path / "audit"
    args = argv(data, teacher, out, "--budgets", "20,40,80", "--defences", "none,top1,round:1", "--seeds", "2")
    assert main(args) == 0
    audit = json.loads((out / "audit.json").read_text())
    tests = len(load_dataset("npz", data).test)
    # Issue 16: the attack queries equal the largest budget, not the sum over budgets, defences and seeds.
    _, rows, _ = read_query_log(out / "teacher-probs.npy.querylog")
    assert len(rows) == 80 and len(set(rows.tolist())) == 80
    assert audit["queries"] == {"attack": 80, "test": tests, "sent_this_run": 80 + tests}
    assert len(audit["points"]) == 3 * 3 * 2 and {p["budget"] for p in audit["points"]} == {20, 40, 80}
    assert [c["defence"] for c in audit["curves"]] == ["none", "top1", "round:1"]
    assert all(0 <= p["agreement"] <= 1 and p["epochs"] >= 2 for p in audit["points"])
    assert audit["points"][0]["epochs"] == 6  # 20 queries = 1 step per epoch: --min-steps 6 asks for 6 epochs
    report = (out / "report.md").read_text()
    assert "Queries needed" in report and "audit.png" in report and (out / "report.html").exists()
    printed = capsys.readouterr().out
    assert "queries for 95% agreement" in printed and "attack queries in the log 80" in printed
    before = {name: (out / name).read_bytes() for name in ("report.md", "report.html", "audit.png")}
    assert main(["report", str(out)]) == 0  # rebuilt from audit.json alone, byte for byte
    assert before == {name: (out / name).read_bytes() for name in before}

    assert main([*args, "--resume"]) == 0  # everything read back: no query, no training
    again = json.loads((out / "audit.json").read_text())
    assert again["queries"]["sent_this_run"] == 0 and again["points"] == audit["points"]
    assert main(args) == 2 and "pass --resume" in capsys.readouterr().err
    changed = [a if a != "2" else "3" for a in args]  # --epochs 3 (and --seeds 3): other options
    assert main([*changed, "--resume"]) == 2 and "ran with other epochs" in capsys.readouterr().err


@pytest.mark.parametrize(
    "extra,message",
    [
        (["--budgets", "40,20"], "--budgets must increase"),
        (["--budgets", "20,20"], "--budgets must increase"),
        (["--budgets", "0,20"], "--budgets must be positive"),
        (["--budgets", "20,100000"], "largest budget 100,000 is more than the 240 query images"),
        (["--defences", "none,shuffle"], "unknown defence 'shuffle'"),
        (["--defences", "topk:0"], "topk takes an integer"),
        (["--budgets", "a,b"], "expected comma-separated whole numbers"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(
    setup: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    data, teacher = setup
    out = tmp_path / "audit"
    assert main(argv(data, teacher, out, *extra)) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and not out.exists()


def test_an_unreachable_teacher_is_one_line_and_writes_nothing(
    setup: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data, _ = setup
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "audit"
    url = f"http://127.0.0.1:{port}/v1/predict"
    assert main(argv(data, Path(url), out, "--option", "num_classes=4", "--option", "retries=0")) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and len(err.splitlines()) == 1 and not out.exists()


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_out_of_domain_queries_are_converted_to_the_teacher_shape(setup: tuple[Path, Path], tmp_path: Path) -> None:
    data, teacher = setup
    pool = make_blobs_dataset(n_per_class=20, num_classes=3, shape=(3, 12, 12), seed=5)
    np.savez(tmp_path / "pool.npz", images=pool.images.numpy(), labels=pool.labels.numpy())
    opts = AuditOptions(
        teacher=str(teacher),
        data=f"npz:{data}",
        student=STUDENT,
        out=str(tmp_path / "ood"),
        budgets=(30, 60),
        defences="none",
        query_data=str(tmp_path / "pool.npz"),
        epochs=1,
        min_steps=0,
        report=False,
        progress=False,
    )
    audit = run_audit(opts)
    assert "60 query images from pool.npz, converted from 3x12x12 to 1x8x8" in audit["query_data"]
    assert audit["queries"]["attack"] == 60 and not (tmp_path / "ood" / "report.md").exists()


def test_to_shape_turns_colour_into_grey_and_resizes() -> None:
    white = torch.full((2, 3, 16, 16), 255, dtype=torch.uint8)
    grey = to_shape(white, (1, 8, 8))
    assert grey.shape == (2, 1, 8, 8) and int(grey.min()) == 255
    assert to_shape(grey, (3, 8, 8)).shape == (2, 3, 8, 8)
    with pytest.raises(Exception, match="2-channel"):
        to_shape(torch.zeros(1, 2, 4, 4, dtype=torch.uint8), (1, 4, 4))


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_a_teacher_whose_budget_runs_out_on_the_test_images_is_one_line(
    setup: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from deepmimic.audit import run as audit_run

    real = audit_run.open_teacher

    def limited(spec: str, options: dict, **kwargs: object) -> object:
        teacher = real(spec, options, **kwargs)
        teacher.budget = 50  # a served model's own query budget: 40 attack queries, then 10 of the 80 test images
        return teacher

    monkeypatch.setattr(audit_run, "open_teacher", limited)
    data, teacher = setup
    assert main(argv(data, teacher, tmp_path / "audit", "--budgets", "20,40")) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]  # progress lines go to stderr before it
    assert last.startswith("error:") and "answered 50 of the 80 test images" in last


def test_query_images_from_a_streamed_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 17: --query-data store:PATH works when the store is streamed, converted or not."""
    from deepmimic.audit.queries import read_query_images
    from deepmimic.data import store_read
    from deepmimic.data.store import pack_dataset

    data = load_dataset("npz", write_blobs_npz(tmp_path / "blobs.npz"))
    pack_dataset(data, tmp_path / "b.dmstore", source="blobs")
    monkeypatch.setattr(store_read, "STREAM_ABOVE_BYTES", 0)
    every = torch.cat([data.train.images, data.test.images])
    same, _ = read_query_images(f"store:{tmp_path / 'b.dmstore'}", tuple(every.shape[1:]))
    assert torch.equal(same, every)
    grey, note = read_query_images(f"store:{tmp_path / 'b.dmstore'}", (1, 6, 6))
    assert torch.equal(grey, to_shape(every, (1, 6, 6))) and "converted" in note
