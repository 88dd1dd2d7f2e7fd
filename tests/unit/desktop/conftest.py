"""The desktop's tests run Qt offscreen (no display, no tray) against a fake agent."""

from __future__ import annotations

import gc
import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from collections.abc import Iterator

import pytest
from pytestqt.qtbot import QtBot

from moorage.desktop.calls import Calls
from moorage.desktop.collector import GuiThreadCollector
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


@pytest.fixture(autouse=True)
def collect_on_the_gui_thread(qtbot: QtBot) -> Iterator[None]:
    """As in the app (``moorage tray``): garbage is collected on the GUI thread only, and
    what a test left is collected here, before the next test's event loops run. A
    collection on a ``Calls`` worker destroyed QObjects there and crashed a later test."""
    gc.collect()
    collector = GuiThreadCollector()
    yield
    collector.stop()
    gc.collect()
