"""Tiny pipeline configs over generated data, shared by pipeline and CLI tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from synthetic import make_blobs_dataset


def write_blobs_npz(path: Path) -> Path:
    train = make_blobs_dataset(n_per_class=60, seed=0)
    test = make_blobs_dataset(n_per_class=20, seed=1)
    np.savez(
        path,
        images=train.images.numpy(),
        labels=train.labels.numpy(),
        test_images=test.images.numpy(),
        test_labels=test.labels.numpy(),
    )
    return path


def tiny_config(tmp_path: Path, **extra: object) -> dict:
    tiny = {"conv_channels": 8, "fc_units": 32}
    return {
        "name": "tiny",
        "output_dir": str(tmp_path / "run"),
        "data": {"name": "npz", "root": str(write_blobs_npz(tmp_path / "blobs.npz"))},
        "train": {"batch_size": 16, "lr": 0.05, "epochs": 5, "device": "cpu"},
        "mentor": {"name": "Mentor", "model": "c-mp-fc-s", "model_options": tiny, "method": "supervised"},
        "students": [
            {"name": "Student-A", "model": "c-mp-fc-s", "model_options": tiny},
            {"name": "Student-B", "model": "fc-s", "model_options": {"fc_units": 16}},
        ],
        **extra,
    }
