"""Shared fixtures for the test suite."""

from __future__ import annotations

from pathlib import Path

import pytest

from deepmimic.data.dataset import ImageDataset
from synthetic import make_blobs_dataset

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture
def blobs() -> ImageDataset:
    return make_blobs_dataset()


@pytest.fixture
def shared_data() -> Path:
    """The real data sets beside the repo; tests using this skip when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not present")
    return SHARED_DATA
