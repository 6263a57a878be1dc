"""Fixtures of the bad-input corpus: the shared assets (reliability/assets.py), a clean environment."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from reliability.assets import Assets, build_assets


@pytest.fixture(scope="session")
def assets(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Assets]:
    built = build_assets(tmp_path_factory.mktemp("assets"))
    try:
        yield built
    finally:
        built.server.close()


@pytest.fixture(autouse=True)
def _plain_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No tokens and no torchrun variables leak into a case."""
    for name in (
        "DEEPMIMIC_TEACHER_TOKEN",
        "DEEPMIMIC_SERVE_TOKEN",
        "RANK",
        "WORLD_SIZE",
        "LOCAL_RANK",
        "LOCAL_WORLD_SIZE",
        "MASTER_ADDR",
        "MASTER_PORT",
        "TORCHELASTIC_RUN_ID",
    ):
        monkeypatch.delenv(name, raising=False)
