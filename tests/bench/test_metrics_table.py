"""bench/metrics_table.py: the page's table from per-row metrics files, refusing unfinished models."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench_scripts import load_bench


def write_metrics(path: Path, epochs: int, accuracy: float | None, epoch_time: float = 60.0) -> None:
    records = [{"epoch": e, "epoch_time_s": epoch_time} for e in range(1, epochs + 1)]
    if accuracy is not None:
        records[-1].update(test_accuracy=accuracy, test_rows=100)
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")


def test_rows_get_per_seed_accuracy_mean_and_std(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bench = load_bench("metrics_table")
    write_metrics(tmp_path / "kd-seed-0.metrics.jsonl", 3, 0.80)
    write_metrics(tmp_path / "kd-seed-1.metrics.jsonl", 3, 0.84)
    write_metrics(tmp_path / "rec-seed-0.metrics.jsonl", 3, 0.75, epoch_time=120.0)
    write_metrics(tmp_path / "other-seed-0.metrics.jsonl", 3, 0.10)  # not asked for: ignored
    out = tmp_path / "table.json"
    assert bench.main([str(tmp_path), "--epochs", "3", "--rows", "kd=KD", "rec=Rec", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| KD | 80.00% | 84.00% | 82.00 +- 2.83% | 3, 3 |" in printed
    assert "| Rec | 75.00% | - | 75.00% (1 seed) | 6 |" in printed
    rows = json.loads(out.read_text())["rows"]
    assert [r["row"] for r in rows] == ["KD", "Rec"] and rows[0]["seeds"] == [0, 1]


def test_an_unfinished_model_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bench = load_bench("metrics_table")
    write_metrics(tmp_path / "kd-seed-0.metrics.jsonl", 2, None)
    assert bench.main([str(tmp_path), "--epochs", "3", "--rows", "kd=KD"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "last epoch is 2, expected 3" in err and len(err.splitlines()) == 1


def test_a_final_epoch_without_test_accuracy_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bench = load_bench("metrics_table")
    write_metrics(tmp_path / "kd-seed-0.metrics.jsonl", 3, None)
    assert bench.main([str(tmp_path), "--epochs", "3", "--rows", "kd=KD"]) == 2
    assert "no test accuracy after epoch 3" in capsys.readouterr().err


def test_a_corrupt_metrics_file_is_named_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bench = load_bench("metrics_table")
    (tmp_path / "kd-seed-0.metrics.jsonl").write_text('{"epoch": 1}\n{not json\n', encoding="utf-8")
    assert bench.main([str(tmp_path), "--epochs", "1", "--rows", "kd=KD"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "kd-seed-0.metrics.jsonl: not JSON lines" in err and len(err.splitlines()) == 1
