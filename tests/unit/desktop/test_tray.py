"""The tray app over a fake agent: its menu in each state, each action reaching the
agent, errors shown to the user, notifications, and the no-tray fallback."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from PySide6.QtCore import QUrl  # noqa: TID251
from PySide6.QtGui import QAction  # noqa: TID251
from PySide6.QtWidgets import (  # noqa: TID251
    QApplication,
    QDialog,
    QMainWindow,
    QMenu,
    QMessageBox,
    QSystemTrayIcon,
)
from pytestqt.qtbot import QtBot

from moorage.api.schema import Status
from moorage.desktop import app as app_mod
from moorage.desktop.app import DesktopApp
from moorage.desktop.calls import Calls
from moorage.errors import SwarmError
from tests.helpers.fake_agent_client import FakeAgentClient, offer, update_view


class StandInDashboard(QMainWindow):
    """The Dashboard's contract with the app, recording what it is told (the real one
    is tested in test_dashboard.py)."""

    def __init__(self, client: Any, calls: Calls, parent: Any = None, **_: Any) -> None:
        super().__init__(parent)
        self.client, self.calls = client, calls
        self.pages: list[str] = []
        self.events: list[Any] = []
        self.views: list[Any] = []

    def show_page(self, name: str) -> None:
        self.pages.append(name)

    def show_logs(self, cid: str) -> None:
        self.pages.append(f"logs:{cid}")

    def on_event(self, event: Any) -> None:
        self.events.append(event)

    def show_view(self, view: Any, menu: Any) -> None:
        self.views.append(view)


class StandInPreferences(QDialog):
    def __init__(self, client: Any, calls: Calls, parent: Any = None) -> None:
        super().__init__(parent)
        self.client = client


class Harness:
    def __init__(self, qtbot: QtBot, client: FakeAgentClient) -> None:
        self.qtbot = qtbot
        self.client = client
        self.opened: list[QUrl] = []
        self.asked: list[tuple[str, list[str]]] = []
        self.answer: str | None = None
        self.app = DesktopApp(
            client,  # type: ignore[arg-type]
            engine=lambda _socket: client.docker,
            dashboard_class=lambda: StandInDashboard,
            preferences_class=lambda: StandInPreferences,
            open_url=self.opened.append,
        )
        self.app.ask = self._ask

    def _ask(self, title: str, text: str, buttons: list[str],
             then: Callable[[str | None], None]) -> None:  # fmt: skip
        self.asked.append((text, buttons))
        then(self.answer if self.answer is not None else buttons[0])

    def start(self, **kwargs: Any) -> Harness:
        self.app.start(**kwargs)
        return self

    def settle(self, until: Callable[[], object] | None = None) -> None:
        """Let the status and what follows from it arrive."""
        self.qtbot.waitUntil(lambda: self.app.view.status is not None, timeout=3000)
        if until is not None:
            self.qtbot.waitUntil(until, timeout=3000)

    @property
    def menu(self) -> QMenu:
        assert self.app.tray is not None
        return self.app.tray.menu

    def action(self, *path: str) -> QAction:
        """The menu's QAction at ``path`` of text prefixes, through its submenus."""
        menu = self.menu
        for i, label in enumerate(path):
            found = [a for a in menu.actions() if a.text().replace("&&", "&").startswith(label)]
            assert found, f"{label!r} not in {[a.text() for a in menu.actions()]}"
            if i == len(path) - 1:
                return found[0]
            sub = found[0].menu()
            assert isinstance(sub, QMenu), f"{label!r} is no submenu"
            menu = sub
        raise AssertionError("empty path")

    def click(self, *path: str) -> None:
        action = self.action(*path)
        assert action.isEnabled(), f"{path} is disabled"
        action.trigger()


@pytest.fixture
def with_tray(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(QSystemTrayIcon, "isSystemTrayAvailable", staticmethod(lambda: True))


@pytest.fixture
def harness(qtbot: QtBot, fake_client: FakeAgentClient, with_tray: None) -> Iterator[Harness]:
    h = Harness(qtbot, fake_client)
    yield h
    h.app.shutdown()
    for box in list(h.app._boxes):
        box.close()


def top_labels(menu: QMenu) -> list[str]:
    return [a.text() for a in menu.actions() if not a.isSeparator()]


# ----- the menu in each state ------------------------------------------------------------


def test_running_machine_menu_matches_the_model_with_its_containers(harness: Harness) -> None:
    harness.start().settle(until=lambda: harness.app.view.containers is not None)
    harness.qtbot.waitUntil(lambda: harness.app.view.clusters is not None)
    assert top_labels(harness.menu) == [
        "default: running, engine 26.1.5", "Start", "Stop", "Restart", "Dashboard",
        "Containers (2)", "Swarm", "Preferences…", "Troubleshoot", "Check for updates",
        "About moorage", "Quit",
    ]  # fmt: skip
    assert not harness.action("Start").isEnabled()
    assert harness.action("Stop").isEnabled() and harness.action("Restart").isEnabled()
    assert harness.action("Containers", "web", "Open http://localhost:8080").isEnabled()
    assert harness.action("Swarm", "Cluster c1", "c1-w1", "Drain").isEnabled()
    assert harness.app.tray is not None
    assert harness.app.tray.animator.state == "running"
    assert harness.app.tray.icon.toolTip().startswith("moorage: default: running")


def test_stopped_machine_menu_offers_start(harness: Harness, fake_client: FakeAgentClient) -> None:
    fake_client.agent = "absent"
    harness.app._spawn = False
    harness.start().settle()
    harness.qtbot.waitUntil(lambda: harness.app.view.connection == "not-running")
    assert harness.action("default: stopped")
    assert harness.action("Start").isEnabled()
    assert not harness.action("Stop").isEnabled()
    assert not harness.action("Containers").isEnabled()
    assert harness.app.tray is not None and harness.app.tray.animator.state == "stopped"


def test_starting_animates_and_follows_events_to_running(
    harness: Harness, fake_client: FakeAgentClient
) -> None:
    fake_client.status_now = Status(machine="default", state="stopped")
    fake_client.operation_seconds = 0.3
    harness.start().settle()
    harness.qtbot.waitUntil(lambda: harness.app.view.connection == "ok")
    harness.click("Start")
    tray = harness.app.tray
    assert tray is not None
    harness.qtbot.waitUntil(lambda: tray.animator.state == "starting", timeout=3000)
    assert tray.animator.animating
    assert harness.action("Stop").text() == "Stop (cancels the start)"
    harness.qtbot.waitUntil(lambda: tray.animator.state == "running", timeout=3000)
    assert not tray.animator.animating
    assert [n.kind for n in harness.app.notifier.shown] == ["ready"]


def test_agent_not_responding_is_shown_and_the_menu_waits(
    harness: Harness, fake_client: FakeAgentClient
) -> None:
    harness.start().settle()
    harness.app.on_connection("not-responding")
    assert harness.action("default: not responding")
    assert not harness.action("Stop").isEnabled()
    assert harness.app.tray is not None and harness.app.tray.animator.state == "trouble"


# ----- each action reaches the agent ----------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "method", "args"),
    [
        (("Stop",), "request", ("stop",)),
        (("Restart",), "request", ("restart",)),
        (("Troubleshoot", "Restart the machine"), "request", ("restart",)),
        (("Troubleshoot", "Reset to factory defaults"), "request", ("reset",)),
        (("Troubleshoot", "Diagnostics bundle"), "diagnostics", ()),
        (("Swarm", "Make this engine a one-node swarm"), "swarm", ("init", False)),
        (("Swarm", "Cluster c1", "c1-w1", "Drain"), "node_action", ("c1", "c1-w1", "drain")),
        (("Swarm", "Cluster c1", "c1-w2", "Promote"), "node_action", ("c1", "c1-w2", "promote")),
        (("Swarm", "Cluster c1", "c1-m2", "Demote"), "node_action", ("c1", "c1-m2", "demote")),
        (("Swarm", "Cluster c1", "c1-m3", "Kill"), "node_action", ("c1", "c1-m3", "kill")),
        (("Swarm", "Cluster c1", "c1-m3", "Freeze"), "node_action", ("c1", "c1-m3", "freeze")),
        (("Swarm", "Cluster c1", "c1-w1", "Partition"), "node_action",
         ("c1", "c1-w1", "partition")),
        (("Swarm", "Cluster c1", "Stop the cluster"), "cluster_request", ("c1", "stop")),
        (("Check for updates",), "update_check", (False,)),
    ],
)  # fmt: skip
def test_each_action_reaches_the_agent(
    harness: Harness, fake_client: FakeAgentClient, path: tuple[str, ...], method: str,
    args: tuple[Any, ...],
) -> None:  # fmt: skip
    harness.start().settle(until=lambda: harness.app.view.clusters is not None)
    harness.qtbot.waitUntil(lambda: harness.app.view.swarm is not None)
    harness.click(*path)
    harness.qtbot.waitUntil(lambda: args in fake_client.called(method), timeout=3000)
    harness.qtbot.waitUntil(lambda: not harness.app.view.pending, timeout=3000)


def test_start_of_a_stopped_machine_starts_its_agent_first(
    harness: Harness, fake_client: FakeAgentClient
) -> None:
    fake_client.agent = "absent"
    fake_client.status_now = Status(machine="default", state="stopped")
    harness.app._spawn = False
    harness.start().settle()
    harness.click("Start")
    harness.qtbot.waitUntil(lambda: ("start",) in fake_client.called("request"))
    assert fake_client.called("spawn") == [()]
    assert fake_client.paths.config_file.exists()  # as `moorage start` writes it


def test_reset_asks_first_and_a_no_sends_nothing(
    harness: Harness, fake_client: FakeAgentClient
) -> None:
    harness.start().settle()
    harness.answer = "Cancel"
    harness.click("Troubleshoot", "Reset to factory defaults")
    text, buttons = harness.asked[-1]
    assert "data disk" in text and "volume" in text
    assert buttons == ["Reset to factory defaults", "Cancel"]
    QApplication.processEvents()
    assert ("reset",) not in fake_client.called("request")


def test_container_actions_reach_the_engine(harness: Harness, fake_client: FakeAgentClient) -> None:
    harness.start().settle(until=lambda: harness.app.view.containers is not None)
    web = fake_client.docker.listed[0]["Id"]
    harness.click("Containers", "web", "Restart")
    harness.qtbot.waitUntil(lambda: ("restart", (web,)) in fake_client.docker.calls)
    harness.click("Containers", "web", "Stop")
    harness.qtbot.waitUntil(lambda: ("stop", (web,)) in fake_client.docker.calls)
    harness.qtbot.waitUntil(lambda: harness.app.view.containers is not None
                            and [c.name for c in harness.app.view.containers] == ["db"])  # fmt: skip
    db = next(c["Id"] for c in fake_client.docker.listed if c["Names"] == ["/db"])
    harness.click("Containers", "db", "Logs")
    dashboard = harness.app.dashboard
    assert isinstance(dashboard, StandInDashboard) and dashboard.pages == [f"logs:{db}"]


def test_open_in_browser_opens_the_published_port(harness: Harness) -> None:
    harness.start().settle(until=lambda: harness.app.view.containers is not None)
    harness.click("Containers", "web", "Open http://localhost:8080")
    assert harness.opened == [QUrl("http://localhost:8080")]


def test_the_menu_asks_the_engine_for_containers_as_it_opens(
    harness: Harness, fake_client: FakeAgentClient
) -> None:
    harness.start().settle(until=lambda: harness.app.view.containers is not None)
    before = len([c for c in fake_client.docker.calls if c[0] == "containers"])
    harness.menu.aboutToShow.emit()
    harness.qtbot.waitUntil(
        lambda: len([c for c in fake_client.docker.calls if c[0] == "containers"]) > before
    )


def test_container_events_refresh_the_list(harness: Harness, fake_client: FakeAgentClient) -> None:
    harness.start().settle(until=lambda: harness.app.engine_follower is not None)
    harness.qtbot.waitUntil(
        lambda: ("events", ({"type": "container"},)) in fake_client.docker.calls
    )
    fake_client.docker.listed.pop(0)
    fake_client.docker.push_event({"Type": "container", "Action": "die"})
    harness.qtbot.waitUntil(lambda: harness.app.view.containers is not None
                            and [c.name for c in harness.app.view.containers] == ["db"])  # fmt: skip


def test_dashboard_preferences_about_log_and_quit(
    harness: Harness, fake_client: FakeAgentClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    harness.start().settle()
    harness.click("Dashboard")
    assert harness.app.dashboard is not None and harness.app.dashboard.isVisible()
    harness.click("Preferences")
    harness.qtbot.waitUntil(lambda: harness.app.preferences is not None)
    assert harness.app.preferences.isVisible()
    harness.click("About moorage")
    assert harness.app.messages[-1][0] == "About moorage"
    assert "Docker engine: 26.1.5" in harness.app.messages[-1][1]
    harness.click("Troubleshoot", "Open the host agent's log")
    assert harness.opened == [QUrl.fromLocalFile(str(fake_client.paths.agent_log))]
    quits: list[bool] = []
    monkeypatch.setattr(QApplication, "quit", staticmethod(lambda: quits.append(True)))
    harness.answer = "Stop and quit"
    harness.click("Quit")
    assert "Stop it too?" in harness.asked[-1][0]
    harness.qtbot.waitUntil(lambda: quits == [True])
    assert ("stop",) in fake_client.called("request")


def test_quit_keeping_the_machine_sends_nothing(
    harness: Harness, fake_client: FakeAgentClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    harness.start().settle()
    quits: list[bool] = []
    monkeypatch.setattr(QApplication, "quit", staticmethod(lambda: quits.append(True)))
    harness.answer = "Quit, keep it running"
    harness.click("Quit")
    assert quits == [True]
    assert fake_client.called("request") == []


def test_diagnostics_shows_where_the_bundle_is(
    harness: Harness, fake_client: FakeAgentClient
) -> None:
    harness.start().settle()
    harness.click("Troubleshoot", "Diagnostics bundle")
    harness.qtbot.waitUntil(lambda: harness.app.messages != [])
    title, text, _ = harness.app.messages[-1]
    assert title == "Diagnostics bundle"
    assert "diagnostics-20261204-120000.zip" in text and "3 secrets" in text


def test_an_update_is_offered_downloaded_and_installed(
    harness: Harness, fake_client: FakeAgentClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_client.update = update_view(offer=offer("0.2.0"))
    started: list[list[str]] = []
    monkeypatch.setattr(app_mod.QProcess, "start",
                        lambda self, program, args: started.append([program, *args]))  # fmt: skip
    monkeypatch.setattr(app_mod.shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr(app_mod.os, "geteuid", lambda: 1000)
    harness.start().settle(until=lambda: harness.app.view.update is not None)
    harness.click("Update to moorage 0.2.0")
    harness.qtbot.waitUntil(lambda: fake_client.called("update_apply") == [(False,)])
    # The download's end comes as the `done` event of op `update`; then the package.
    harness.qtbot.waitUntil(lambda: any("Install 0.2.0" in b for _, bs in harness.asked
                                        for b in bs), timeout=3000)  # fmt: skip
    harness.qtbot.waitUntil(lambda: started != [])
    assert started[0][:2] == ["pkexec", "apt-get"]


# ----- errors reach the user ---------------------------------------------------------------------


def test_an_error_of_a_worker_is_shown_with_its_fix(
    harness: Harness, fake_client: FakeAgentClient
) -> None:
    fake_client.fail["node_action"] = SwarmError("c1-w1 is not a node of c1",
                                                 fix="`moorage cluster nodes c1` lists them")  # fmt: skip
    harness.start().settle(until=lambda: harness.app.view.clusters is not None)
    harness.click("Swarm", "Cluster c1", "c1-w1", "Drain")
    harness.qtbot.waitUntil(lambda: harness.app.messages != [])
    assert harness.app.messages[-1] == (
        "Could not drain c1-w1", "c1-w1 is not a node of c1",
        "`moorage cluster nodes c1` lists them",
    )  # fmt: skip
    boxes = [b for b in harness.app._boxes if b.isVisible()]
    assert boxes and boxes[-1].text() == "c1-w1 is not a node of c1"
    assert boxes[-1].informativeText() == "Fix: `moorage cluster nodes c1` lists them"
    assert not harness.app.view.pending  # the item is enabled again


def test_an_unexpected_exception_is_shown_too(
    harness: Harness, fake_client: FakeAgentClient
) -> None:
    fake_client.fail["diagnostics"] = RuntimeError("disk full")
    harness.start().settle()
    harness.click("Troubleshoot", "Diagnostics bundle")
    harness.qtbot.waitUntil(lambda: harness.app.messages != [])
    assert harness.app.messages[-1][1] == "RuntimeError: disk full"


def test_an_operation_error_is_on_the_status_line_and_notified(
    harness: Harness, fake_client: FakeAgentClient
) -> None:
    harness.start().settle()
    harness.qtbot.waitUntil(lambda: harness.app.view.connection == "ok")
    fake_client.push("error", "the engine did not come up", op="start", code="engine",
                     fix="see `moorage logs --engine`")  # fmt: skip
    harness.qtbot.waitUntil(lambda: harness.app.view.problem is not None)
    assert harness.action("Error: the engine did not come up")
    assert harness.action("Fix: see `moorage logs --engine`")
    note = harness.app.notifier.shown[-1]
    assert note.kind == "error" and "the engine did not come up" in note.message


def test_port_conflict_and_update_are_notified(
    harness: Harness, fake_client: FakeAgentClient
) -> None:
    harness.start().settle()
    harness.qtbot.waitUntil(lambda: harness.app.view.connection == "ok")
    fake_client.push("forward", "127.0.0.1:8080/tcp is taken by another program",
                     change="conflict")  # fmt: skip
    fake_client.push("update", "moorage 0.2.0 is available on stable")
    harness.qtbot.waitUntil(lambda: len(harness.app.notifier.shown) == 2)
    assert [n.kind for n in harness.app.notifier.shown] == ["port-conflict", "update"]


# ----- no tray: the dashboard ----------------------------------------------------------------------


def test_without_a_tray_the_dashboard_opens_and_a_later_tray_is_used(
    qtbot: QtBot, fake_client: FakeAgentClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    available = [False]
    monkeypatch.setattr(QSystemTrayIcon, "isSystemTrayAvailable",
                        staticmethod(lambda: available[0]))  # fmt: skip
    monkeypatch.setattr(app_mod, "TRAY_RECHECK_MS", 50)
    h = Harness(qtbot, fake_client)
    try:
        h.start().settle()
        assert h.app.tray is None
        assert h.app.dashboard is not None and h.app.dashboard.isVisible()
        assert h.app.describe()["tray_available"] is False
        available[0] = True
        qtbot.waitUntil(lambda: h.app.tray is not None, timeout=3000)
        assert h.app.tray is not None and h.app.tray.visible()
        assert h.app.describe()["tray_visible"] is True
    finally:
        h.app.shutdown()


def test_a_second_launch_shows_the_dashboard(harness: Harness) -> None:
    harness.start().settle()
    assert harness.app.handle({"cmd": "dashboard", "page": "swarm"}) == {"ok": True}
    dashboard = harness.app.dashboard
    assert isinstance(dashboard, StandInDashboard)
    assert dashboard.isVisible() and dashboard.pages == ["swarm"]
    described = harness.app.handle({"cmd": "describe"})
    assert described["status_line"] == "default: running, engine 26.1.5"
    assert described["menu"][1]["items"][0] == {"label": "Start", "enabled": False,
                                                "action": "start", "children": []}  # fmt: skip


def test_events_reach_the_dashboard(harness: Harness, fake_client: FakeAgentClient) -> None:
    harness.start(show_dashboard=True).settle()
    harness.qtbot.waitUntil(lambda: harness.app.view.connection == "ok")
    fake_client.push("cluster", "c1-w1: down", cluster="c1", node="c1-w1")
    dashboard = harness.app.dashboard
    assert isinstance(dashboard, StandInDashboard)
    harness.qtbot.waitUntil(lambda: [e.message for e in dashboard.events] == ["c1-w1: down"])


def test_message_boxes_never_block_the_event_loop(harness: Harness) -> None:
    harness.start().settle()
    harness.app.show_error("the engine is gone", "`moorage restart`")
    # show_error returned with its box open: it never runs a nested event loop (exec).
    box = harness.app._boxes[-1]
    assert isinstance(box, QMessageBox) and box.isVisible()
    assert box.text() == "the engine is gone"
