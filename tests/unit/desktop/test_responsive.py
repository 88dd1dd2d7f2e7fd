"""The GUI thread never waits for the agent: a 20 ms timer keeps ticking while the
agent takes a second to answer. The companion test runs the same probe with the
calls made on the GUI thread and sees the gap, so the probe can fail."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from PySide6.QtCore import QTimer  # noqa: TID251
from PySide6.QtWidgets import QSystemTrayIcon  # noqa: TID251
from pytestqt.qtbot import QtBot

from moorage.desktop.app import DesktopApp
from moorage.desktop.calls import Calls
from tests.helpers.fake_agent_client import FakeAgentClient

TICK_MS = 20
LIMIT = 0.2
AGENT_SECONDS = 1.0


class GuiThreadCalls(Calls):
    """What the app must never do: make the call right here, on the GUI thread."""

    def run(
        self,
        fn: Callable[[], Any],
        done: Callable[[Any], None] | None = None,
        failed: Callable[[Exception], None] | None = None,
    ) -> None:
        try:
            result = fn()
        except Exception as exc:
            if failed is not None:
                failed(exc)
            return
        if done is not None:
            done(result)


def largest_gap(qtbot: QtBot, act: Callable[[], None], finished: Callable[[], bool]) -> float:
    """The longest time between two ticks of a 20 ms timer from just before ``act``
    until ``finished()``."""
    ticks: list[float] = []
    timer = QTimer()
    timer.setInterval(TICK_MS)
    timer.timeout.connect(lambda: ticks.append(time.monotonic()))
    timer.start()
    qtbot.waitUntil(lambda: len(ticks) >= 3)
    QTimer.singleShot(0, act)
    qtbot.waitUntil(finished, timeout=10000)
    qtbot.wait(3 * TICK_MS)
    timer.stop()
    return max(b - a for a, b in itertools.pairwise(ticks))


@pytest.fixture
def slow_app(
    qtbot: QtBot, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[DesktopApp, FakeAgentClient]]:
    monkeypatch.setattr(QSystemTrayIcon, "isSystemTrayAvailable", staticmethod(lambda: True))
    client = FakeAgentClient()
    app = DesktopApp(client, engine=lambda _s: client.docker,  # type: ignore[arg-type]
                     dashboard_class=lambda: None, open_url=lambda _u: None)  # fmt: skip
    app.start()
    qtbot.waitUntil(lambda: app.view.containers is not None and app.view.clusters is not None,
                    timeout=5000)  # fmt: skip
    client.delay = AGENT_SECONDS  # from now on the agent takes a second for everything
    yield app, client
    app.shutdown()


def stop_and_status(app: DesktopApp, client: FakeAgentClient) -> tuple[Callable[[], None],
                                                                       Callable[[], bool]]:  # fmt: skip
    """Stop from the menu, and the status it asks for: two slow calls."""
    from moorage.desktop.model import STOP  # noqa: PLC0415

    def act() -> None:
        app.trigger(app.menu_model.item("Stop"))
        app.refresh_status()

    statuses = len(client.called("status"))

    def finished() -> bool:
        return (not app.view.pending and ("stop",) in client.called("request")
                and len(client.called("status")) > statuses)  # fmt: skip

    assert STOP in app.menu_model.actions()
    return act, finished


def test_the_tray_keeps_ticking_while_the_agent_takes_a_second(
    qtbot: QtBot, slow_app: tuple[DesktopApp, FakeAgentClient]
) -> None:
    app, client = slow_app
    began = time.monotonic()
    gap = largest_gap(qtbot, *stop_and_status(app, client))
    assert time.monotonic() - began >= AGENT_SECONDS  # the agent really was slow
    assert gap < LIMIT, f"the GUI thread stalled {gap * 1000:.0f} ms"


def test_the_probe_fails_when_the_call_is_made_on_the_gui_thread(
    qtbot: QtBot, slow_app: tuple[DesktopApp, FakeAgentClient]
) -> None:
    app, client = slow_app
    app.calls = GuiThreadCalls()
    gap = largest_gap(qtbot, *stop_and_status(app, client))
    assert gap > LIMIT, f"the probe missed a {AGENT_SECONDS:g} s call on the GUI thread"
    assert gap >= AGENT_SECONDS * 0.9
