"""The FEED harness end to end on tiny generated data: scratch, ensemble, KD, pFEED, sFEED."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from deepmimic.config import parse_config
from deepmimic.errors import ConfigError
from deepmimic.pipelines.feed import run_feed
from pipeline_configs import write_blobs_npz


def feed_config(tmp_path: Path) -> dict:
    return {
        "pipeline": "feed",
        "output_dir": str(tmp_path / "feed"),
        "data": {"name": "npz", "root": str(write_blobs_npz(tmp_path / "blobs.npz"))},
        "model": "c-bn-mp-c-s",
        "model_options": {"conv_channels": 6},
        "train": {"epochs": 2, "batch_size": 32, "lr": 0.05, "device": "cpu"},
        "scratch_seeds": [0, 1],
        "sfeed": {"stacks": 3, "beta": 10.0, "paraphraser_epochs": 1},
        "pfeed": {"beta": 10.0},
    }


def test_feed_harness_trains_every_row(tmp_path: Path) -> None:
    config = parse_config(feed_config(tmp_path))
    results = run_feed(config, progress=False)
    names = [row["name"] for row in results["rows"]]
    assert names == ["Scratch (seed 0)", "Scratch (seed 1)", "Ensemble of 2", "KD from ensemble", "pFEED (k=2)",
                     "sFEED stack 2", "sFEED stack 3"]
    assert all(0.0 <= row["error"] <= 1.0 for row in results["rows"])
    saved = json.loads((tmp_path / "feed" / "results.json").read_text())
    assert saved["rows"][0]["accuracy"] == results["rows"][0]["accuracy"]
    table = (tmp_path / "feed" / "table.md").read_text()
    assert "| sFEED stack 3 | sfeed |" in table
    # Students' weights files hold the student only (translators/paraphrasers live in the checkpoint).
    assert (tmp_path / "feed" / "sfeed-stack-2" / "weights.safetensors").exists()


def test_feed_config_rejects_unknown_keys(tmp_path: Path) -> None:
    raw = feed_config(tmp_path)
    raw["sfeed"]["stack"] = 2
    with pytest.raises(ConfigError, match="unknown key 'sfeed.stack'"):
        parse_config(raw)
    with pytest.raises(ConfigError, match="unknown pipeline 'fed'"):
        parse_config({**raw, "pipeline": "fed"})


def test_feed_resume_refuses_changed_inputs_and_restarts_dependents(tmp_path: Path) -> None:
    """Issue 12, item 1 for FEED: a changed stage is refused; restarting it retrains the stages it teaches."""
    from deepmimic.errors import ConfigError  # noqa: PLC0415

    raw = {**feed_config(tmp_path), "train": {"epochs": 1, "batch_size": 32, "lr": 0.05, "device": "cpu"},
           "kd": {"enabled": False}, "pfeed": {"enabled": False}, "sfeed": {"stacks": 2, "beta": 10.0, "paraphraser_epochs": 1}}
    run_feed(parse_config(raw), progress=False)
    stack2 = (tmp_path / "feed" / "sfeed-stack-2" / "weights.safetensors").read_bytes()
    scratch1 = (tmp_path / "feed" / "scratch-seed-1" / "weights.safetensors").read_bytes()
    changed = {**raw, "sfeed": {**raw["sfeed"], "beta": 20.0}}
    with pytest.raises(ConfigError, match=r"stage 'sFEED stack 2'.*method_options\.beta 10\.0 -> 20\.0"):
        run_feed(parse_config(changed), resume=True, progress=False)
    moved = {**raw, "scratch_seeds": [0, 2]}  # scratch 0 unchanged, a new scratch model
    run_feed(parse_config(moved), resume=True, restart=["Scratch (seed 0)"], progress=False)
    # Restarting scratch 0 retrained sFEED stack 2 (it learns from scratch 0) from the same seeds: same bytes.
    assert (tmp_path / "feed" / "sfeed-stack-2" / "weights.safetensors").read_bytes() == stack2
    assert (tmp_path / "feed" / "scratch-seed-1" / "weights.safetensors").read_bytes() == scratch1  # untouched leftover


def test_one_scratch_model_teaches_kd_as_an_ensemble_and_sfeed_as_itself(tmp_path: Path) -> None:
    """KD's ensemble of one and sFEED's single teacher are different teachers of the same model."""
    raw = {**feed_config(tmp_path), "scratch_seeds": [0], "train": {"epochs": 1, "batch_size": 32, "lr": 0.05, "device": "cpu"},
           "pfeed": {"enabled": False}, "sfeed": {"stacks": 2, "beta": 10.0, "paraphraser_epochs": 1}}
    results = run_feed(parse_config(raw), progress=False)
    assert [row["name"] for row in results["rows"]] == ["Scratch (seed 0)", "Ensemble of 1", "KD from ensemble", "sFEED stack 2"]
