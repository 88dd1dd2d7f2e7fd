"""Shared by both tiers: every test gets its own MOORAGE_HOME, never the user's."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def moorage_home(
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> Iterator[Path]:
    if request.node.get_closest_marker("e2e"):
        yield Path()  # the e2e tier manages its own, shared by the whole session
        return
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("MOORAGE_HOME", str(home))
    yield home
