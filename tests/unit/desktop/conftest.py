"""The desktop's tests run Qt offscreen (no display, no tray) against a fake agent."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from collections.abc import Iterator

import pytest
from pytestqt.qtbot import QtBot

from moorage.desktop.calls import Calls
from tests.helpers.fake_agent_client import FakeAgentClient


@pytest.fixture
def fake_client() -> FakeAgentClient:
    """A running machine's agent, answering at once."""
    return FakeAgentClient()


@pytest.fixture
def calls(qtbot: QtBot) -> Iterator[Calls]:
    c = Calls()
    yield c
    c.wait(5000)
