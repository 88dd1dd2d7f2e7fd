"""The dashboard over a fake agent and a fake engine, shown by a stand-in for the app
(``Owner``): each page's contents, each action reaching the engine, the agent or the
app, errors shown in the window, polling only while the window is shown, and the swarm
view watching a task move off a drained node. The app's own part (the machine's actions,
its status) is test_tray.py's; the last test here opens the real one."""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator
from dataclasses import replace
from types import SimpleNamespace
from typing import Any
from unittest.mock import create_autospec

import pytest
from PySide6.QtCore import QCoreApplication, QEvent, QUrl  # noqa: TID251
from PySide6.QtWidgets import QSystemTrayIcon  # noqa: TID251
from pytestqt.qtbot import QtBot

from moorage.api.schema import Event
from moorage.desktop import model
from moorage.desktop.app import DesktopApp
from moorage.desktop.calls import Calls
from moorage.desktop.dashboard import PAGES, Dashboard
from moorage.desktop.engine_pages import ContainersPage, ImageRow, cpu_percent, memory_used
from moorage.desktop.swarm_view import tasks_by_node
from tests.helpers.fake_agent_client import APIError, FakeAgentClient, error, running_status

FAST_MS = 40
WEB_ID = "web000000000" + "f" * 52


class Owner:
    """The app's part, as ``DesktopApp`` plays it: it records the machine's actions, and
    a status asked for is the fake agent's, handed over as the app's view."""

    def __init__(self, client: FakeAgentClient) -> None:
        self.client = client
        self.ops: list[str] = []
        self.view = model.View(machine=client.name)
        self.d: Dashboard | None = None

    def machine(self, op: str) -> None:
        self.ops.append(op)

    def refresh_status(self) -> None:
        self.show(status=self.client.status_or_files())

    def show(self, **changes: Any) -> None:
        self.view = replace(self.view, **changes)
        assert self.d is not None
        self.d.show_view(self.view, model.menu(self.view))


class Harness:
    def __init__(self, qtbot: QtBot, client: FakeAgentClient, calls: Calls) -> None:
        self.qtbot = qtbot
        self.client = client
        self.docker = client.docker
        self.opened: list[QUrl] = []
        self.asked: list[tuple[str, list[str]]] = []
        self.answer: str | None = None
        self.owner = Owner(client)
        self.d = Dashboard(
            client,
            calls,
            engine=lambda _socket: client.docker,
            owner=self.owner,
            open_url=self.opened.append,
        )
        self.owner.d = self.d
        for page in self.d.pages.values():  # rounds in milliseconds, not seconds
            if page.interval_ms:
                page.interval_ms = FAST_MS
        self.d.ctx.ask = self._ask
        qtbot.addWidget(self.d)

    def _ask(self, title: str, text: str, buttons: list[str],
             then: Callable[[str | None], None]) -> None:  # fmt: skip
        self.asked.append((text, buttons))
        then(self.answer if self.answer is not None else buttons[0])

    def show(self, page: str = "containers") -> Harness:
        self.d.show_page(page)
        self.d.show()
        self.owner.refresh_status()  # as the app has, from its start
        return self

    def wait(self, until: Callable[[], object], timeout: int = 3000) -> None:
        self.qtbot.waitUntil(until, timeout=timeout)

    def rows(self, table: Any) -> list[list[str]]:
        return [
            [
                table.item(r, c).text() if table.item(r, c) else ""
                for c in range(table.columnCount())
            ]
            for r in range(table.rowCount())
        ]


@pytest.fixture
def h(qtbot: QtBot, fake_client: FakeAgentClient, calls: Calls) -> Iterator[Harness]:
    harness = Harness(qtbot, fake_client, calls)
    yield harness
    harness.d.hide()
    harness.d.shutdown()
    calls.wait(3000)
    delete(harness.d)


def delete(widget: Any) -> None:
    """Delete the window now, on the GUI thread. Left to Python, its cycles (slots that
    name it) are collected on whichever thread runs Python next, a worker's perhaps,
    and a QObject destroyed off its thread leaves its timers behind (a crash later)."""
    widget.ctx.engine_calls.wait(3000)
    QCoreApplication.processEvents()  # answers still on their way are delivered first
    widget.deleteLater()
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    gc.collect()


def select(table: Any, first_cell: str) -> None:
    for r in range(table.rowCount()):
        if table.item(r, 0).text() == first_cell:
            table.selectRow(r)
            return
    raise AssertionError(f"no row {first_cell!r}")


# ----- the window: status line, machine actions, pages ----------------------------------------


def test_status_line_and_the_machine_actions_of_a_running_machine(h: Harness) -> None:
    h.show()
    h.wait(lambda: h.d.status_label.text() == "default: running, engine 26.1.5")
    buttons = h.d.machine_buttons
    assert not buttons["start"].isEnabled()
    assert buttons["stop"].isEnabled() and buttons["restart"].isEnabled()
    assert [h.d.side.item(i).text() for i in range(h.d.side.count())] == [
        "Containers", "Images", "Volumes", "Logs", "Swarm", "Machine",
    ]  # fmt: skip


@pytest.mark.parametrize("op", ["stop", "restart"])
def test_stop_and_restart_are_the_apps_to_carry_out(h: Harness, op: str) -> None:
    h.show()
    h.d.machine_buttons[op].click()
    assert h.owner.ops == [op]
    assert h.client.called("request") == []  # the app's call (test_tray.py), not the window's


def test_a_pending_action_is_the_apps_and_the_buttons_follow_it(h: Harness) -> None:
    h.show()
    h.owner.show(pending=frozenset({"stop"}))
    assert not any(b.isEnabled() for b in h.d.machine_buttons.values())
    h.owner.show(pending=frozenset())
    assert h.d.machine_buttons["stop"].isEnabled()


def test_start_of_a_stopped_machine_then_its_engine_comes(h: Harness) -> None:
    h.client.status_now = running_status(state="stopped", vm_pid=None, engine_version=None)
    h.show()
    assert h.d.machine_buttons["start"].isEnabled()
    assert not h.d.machine_buttons["stop"].isEnabled()
    assert "not running" in h.d.containers.placeholder.text()
    assert h.docker.calls == []  # no engine to ask
    h.d.machine_buttons["start"].click()
    assert h.owner.ops == ["start"]
    h.client.status_now = running_status()
    h.owner.refresh_status()
    assert h.d.status_label.text().startswith("default: running")
    h.wait(lambda: len(h.d.containers.containers) == 2)  # the engine came: the page asks it


def test_when_the_machine_stops_the_pages_show_nothing_of_its_engine(h: Harness) -> None:
    h.show()
    h.wait(lambda: h.d.containers.table.rowCount() == 2)
    h.client.set_state("stopped", vm_pid=None, engine_version=None)
    h.owner.refresh_status()
    h.wait(lambda: h.d.containers.table.rowCount() == 0)
    assert "not running" in h.d.containers.placeholder.text()
    assert h.d.machine_buttons["start"].isEnabled()
    h.d.show_page("swarm")
    assert h.d.swarm.boxes == {} and "not running" in h.d.swarm.placeholder.text()


def test_an_error_event_is_shown_and_a_new_start_clears_it(h: Harness) -> None:
    h.client.status_now = running_status(state="stopped", vm_pid=None, engine_version=None)
    h.show()
    h.d.on_event(
        Event(1, "error", "the engine stopped answering", op="start", fix="`moorage restart`")
    )
    assert (
        h.d.problem_text() == "start failed: the engine stopped answering\nFix: `moorage restart`"
    )
    h.d.machine_buttons["start"].click()
    assert h.d.problem_text() == ""


def test_a_machine_error_in_the_status_is_shown_once(h: Harness) -> None:
    h.client.status_now = running_status(state="crashed", error="the VM stopped unasked")
    h.show()
    h.wait(lambda: h.d.problem_text() != "")
    assert h.d.problem_text() == "Machine 'default' is crashed: the VM stopped unasked"
    h.d.clear_problem()
    h.owner.refresh_status()
    assert h.d.problem_text() == ""


def test_show_page_by_name(h: Harness) -> None:
    h.show()
    for name in PAGES:
        h.d.show_page(name)
        assert h.d.page == name
        assert h.d.pages[name].active
        assert [n for n, p in h.d.pages.items() if p.active] == [name]
    h.d.show_page(None)  # the page shown last
    assert h.d.page == "machine"


# ----- only the page shown polls, and only while the window is shown --------------------------


def test_polling_stops_when_the_window_hides_and_starts_again_when_shown(h: Harness) -> None:
    h.show()
    page = h.d.containers
    h.wait(lambda: page.rounds >= 3)
    h.d.hide()
    assert not page.active and not page.polling
    h.qtbot.wait(FAST_MS * 3)
    h.client.calls.clear()
    h.docker.calls.clear()
    h.qtbot.wait(FAST_MS * 6)
    assert h.docker.calls == [] and h.client.calls == []
    h.d.show()
    h.wait(lambda: h.docker.called("containers") != [])


def test_polling_stops_while_minimized(h: Harness) -> None:
    h.show("swarm")
    h.wait(lambda: h.d.swarm.rounds >= 2)
    h.d.showMinimized()
    h.wait(lambda: not h.d.swarm.active)
    h.qtbot.wait(FAST_MS * 3)
    rounds = h.d.swarm.rounds
    h.qtbot.wait(FAST_MS * 6)
    assert h.d.swarm.rounds == rounds
    h.d.showNormal()
    h.wait(lambda: h.d.swarm.rounds > rounds)


def test_a_page_not_shown_does_not_poll(h: Harness) -> None:
    h.show("images")
    h.wait(lambda: h.docker.called("images") != [])
    h.qtbot.wait(FAST_MS * 4)
    assert h.docker.called("stats") == [] and h.docker.called("tasks") == []
    assert h.client.called("stats") == [] and h.client.called("clusters") == []
    assert len(h.docker.called("images")) == 1  # images are listed when shown, not polled


def test_a_hidden_dashboard_asks_for_nothing_on_events(h: Harness) -> None:
    h.show()
    h.d.hide()
    h.qtbot.wait(FAST_MS * 3)
    h.client.calls.clear()
    h.docker.calls.clear()
    for kind in ("state", "forward", "cluster"):
        h.d.on_event(Event(1, kind, "something changed", state="running"))
    h.qtbot.wait(300)
    assert h.client.calls == [] and h.docker.calls == []
    h.d.show()  # the page shown polls again
    h.wait(lambda: h.docker.called("containers") != [])


# ----- containers -----------------------------------------------------------------------------


def test_containers_page_lists_them_with_ports_cpu_and_memory(h: Harness) -> None:
    h.show()
    table = h.d.containers.table
    h.wait(lambda: [r[0] for r in h.rows(table)] == ["db", "web"])
    h.wait(lambda: h.rows(table)[1][4] == "25.0 %")  # the second sample gives the CPU
    assert h.rows(table)[1] == [
        "web", "running", "nginx:1.27", "8080→80/tcp", "25.0 %", "64.0 MiB / 2.0 GiB",
    ]  # fmt: skip
    assert (WEB_ID, False, True) in h.docker.called("stats")


def test_stats_are_asked_one_container_after_the_other(h: Harness) -> None:
    h.docker.delay = 0.05
    h.show()
    h.wait(lambda: len(h.docker.called("stats")) >= 4)
    assert h.d.ctx.engine_calls.busy <= 1


@pytest.mark.parametrize(
    ("button", "method", "args"),
    [
        ("restart_button", "restart", (WEB_ID,)),
        ("stop_button", "stop", (WEB_ID,)),
    ],
)
def test_container_actions_reach_the_engine(
    h: Harness, button: str, method: str, args: tuple[str, ...]
) -> None:
    h.show()
    page = h.d.containers
    h.wait(lambda: page.table.rowCount() == 2)
    select(page.table, "web")
    getattr(page, button).click()
    h.wait(lambda: h.docker.called(method) == [args])


def test_remove_container_asks_first(h: Harness) -> None:
    h.show()
    page = h.d.containers
    h.wait(lambda: page.table.rowCount() == 2)
    select(page.table, "web")
    h.answer = "Cancel"
    page.remove_button.click()
    assert "Remove container web? It is running" in h.asked[0][0]
    assert h.docker.called("remove_container") == []
    h.answer = None
    page.remove_button.click()
    h.wait(lambda: [r[0] for r in h.rows(page.table)] == ["db"])
    assert h.docker.called("remove_container") == [(WEB_ID, True)]


def test_open_in_browser_opens_the_first_published_tcp_port(h: Harness) -> None:
    h.show()
    page = h.d.containers
    h.wait(lambda: page.table.rowCount() == 2)
    select(page.table, "db")
    assert not page.open_button.isEnabled()  # no published port
    select(page.table, "web")
    assert page.open_button.isEnabled()
    page.open_button.click()
    assert h.opened == [QUrl("http://localhost:8080")]


def test_logs_of_a_container_switches_to_the_logs_page_and_follows_it(h: Harness) -> None:
    h.show()
    page = h.d.containers
    h.wait(lambda: page.table.rowCount() == 2)
    select(page.table, "web")
    page.logs_button.click()
    assert h.d.page == "logs"
    logs = h.d.logs
    h.wait(lambda: "web000000000 line 2" in logs.view.toPlainText())
    assert logs.choice.currentText() == "web (running)"
    assert h.docker.called("logs")[-1][1:] == (500, True)
    assert h.docker.timeout is None  # a quiet container's follow never times out


def test_a_failing_engine_call_is_shown_in_the_window(h: Harness) -> None:
    h.docker.fail["containers"] = APIError("500 Server Error", explanation="the engine is ill")
    h.show()
    h.wait(lambda: h.d.problem_text() != "")
    assert h.d.problem_text() == "Could not list the containers: the engine is ill"
    h.docker.fail.clear()
    h.d.clear_problem()
    h.wait(lambda: h.d.containers.table.rowCount() == 2)  # the next round works again


# ----- images and volumes ---------------------------------------------------------------------


def test_images_page_lists_each_tag_and_removes_one_after_asking(h: Harness) -> None:
    h.show("images")
    page = h.d.images
    h.wait(lambda: page.table.rowCount() == 4)
    rows = h.rows(page.table)
    assert [r[0] for r in rows] == ["nginx:1.27", "nginx:latest", "postgres:16", "<none>"]
    assert rows[0][1:3] == ["nginx0000000", "192.0 MB"]
    assert rows[0][3].endswith("ago")
    select(page.table, "nginx:1.27")
    page.remove_button.click()
    assert h.asked and h.asked[0][1] == ["Remove", "Cancel"]
    h.wait(lambda: page.table.rowCount() == 3)
    assert h.docker.called("remove_image") == [("nginx:1.27", False)]


def test_an_untagged_image_is_removed_by_its_id() -> None:
    rows = ImageRow.rows([{"Id": "sha256:abc", "RepoTags": ["<none>:<none>"], "Size": 1}])
    assert [(r.ref, r.label) for r in rows] == [("sha256:abc", "<none>")]


def test_volumes_page_and_the_engine_refusing_one_in_use(h: Harness) -> None:
    h.show("volumes")
    page = h.d.volumes
    h.wait(lambda: page.table.rowCount() == 2)
    assert h.rows(page.table) == [
        ["cache", "local", "/var/lib/docker/volumes/cache/_data"],
        ["pgdata", "local", "/var/lib/docker/volumes/pgdata/_data"],
    ]
    select(page.table, "pgdata")
    page.remove_button.click()
    h.wait(lambda: h.d.problem_text() != "")
    assert h.d.problem_text().startswith(
        "Could not remove volume pgdata: remove pgdata: volume is in use - [db00"
    )
    assert page.table.rowCount() == 2
    select(page.table, "cache")
    page.remove_button.click()
    h.wait(
        lambda: h.rows(page.table) == [["pgdata", "local", "/var/lib/docker/volumes/pgdata/_data"]]
    )


# ----- logs -----------------------------------------------------------------------------------


def test_logs_follow_the_chosen_container_and_stop_when_another_is_chosen(h: Harness) -> None:
    h.show("logs")
    logs = h.d.logs
    h.wait(lambda: len(h.docker.log_streams) == 1)
    first = h.docker.log_streams[0]
    h.wait(lambda: "db0000000000 line 1" in logs.view.toPlainText())  # the first listed
    first.push(b"a new line\n")
    h.wait(lambda: "a new line" in logs.view.toPlainText())
    logs.choice.setCurrentIndex(1)
    logs.choice.activated.emit(1)
    h.wait(lambda: len(h.docker.log_streams) == 2)
    assert first.closed
    h.wait(lambda: "web000000000 line 1" in logs.view.toPlainText())
    assert "a new line" not in logs.view.toPlainText()


def test_logs_stop_following_when_the_window_hides(h: Harness) -> None:
    h.show("logs")
    h.wait(lambda: len(h.docker.log_streams) == 1)
    follower = h.d.logs.follower
    assert follower is not None
    h.d.hide()
    assert h.docker.log_streams[0].closed
    h.wait(follower.isFinished)
    h.d.show()
    h.wait(lambda: len(h.docker.log_streams) == 2)  # followed again from its tail


# ----- swarm ----------------------------------------------------------------------------------


def test_swarm_page_draws_each_node_with_its_tasks(h: Harness) -> None:
    h.show("swarm")
    swarm = h.d.swarm
    h.wait(lambda: "c1" in swarm.boxes and swarm.node_tasks("c1", "c1-w1") != ())
    box = swarm.boxes["c1"]
    assert list(box.nodes) == ["c1-m1", "c1-m2", "c1-m3", "c1-w1", "c1-w2"]
    assert swarm.node_tasks("c1", "c1-w1") == ("web.1",)
    assert swarm.node_tasks("c1", "c1-m2") == ("web.3",)
    m1 = box.nodes["c1-m1"]
    assert m1.name.text() == "c1-m1"
    assert m1.info.text() == "manager · Leader\nReady · Active"
    assert box.nodes["c1-m2"].info.text() == "manager · Reachable\nReady · Active"
    assert box.nodes["c1-w1"].info.text() == "worker\nReady · Active"
    assert swarm.swarm_label.text().startswith("This engine is not a swarm")
    assert h.docker.called("tasks")[-1] == ({"desired-state": "running"},)


def test_the_one_node_swarm_is_made_shown_with_its_tasks_and_left(h: Harness) -> None:
    h.show("swarm")
    swarm = h.d.swarm
    h.wait(swarm.swarm_button.isVisible)
    assert swarm.swarm_button.text() == "Make this engine a one-node swarm"
    assert not swarm.swarm_tasks.isVisible()
    swarm.swarm_button.click()
    h.wait(lambda: ("init", False) in h.client.called("swarm"))
    h.wait(swarm.swarm_tasks.isVisible)
    assert swarm.swarm_label.text().startswith("This engine: one-node swarm, active")
    # the fake's one engine answers for the machine and the cluster alike
    listed = swarm.swarm_tasks.text().removeprefix("Its tasks: ").split(", ")
    assert sorted(listed) == ["web.1", "web.2", "web.3"]
    assert swarm.swarm_button.text() == "Leave the one-node swarm…"
    h.answer = "Cancel"
    swarm.swarm_button.click()
    assert h.asked[-1][1] == ["Leave", "Cancel"]
    assert ("leave", True) not in h.client.called("swarm")
    h.answer = None
    swarm.swarm_button.click()
    h.wait(lambda: ("leave", True) in h.client.called("swarm"))
    h.wait(lambda: swarm.swarm_button.text() == "Make this engine a one-node swarm")
    assert not swarm.swarm_tasks.isVisible()


def test_draining_a_node_moves_its_task_in_the_view(h: Harness) -> None:
    h.show("swarm")
    swarm = h.d.swarm
    h.wait(lambda: "c1" in swarm.boxes and swarm.node_tasks("c1", "c1-w1") == ("web.1",))
    w1 = swarm.boxes["c1"].nodes["c1-w1"]
    w1.action("Drain").trigger()
    h.wait(lambda: h.client.called("node_action") == [("c1", "c1-w1", "drain")])
    h.wait(lambda: swarm.node_tasks("c1", "c1-w1") == ())
    assert swarm.node_tasks("c1", "c1-m1") == ("web.1",)
    assert w1.info.text() == "worker\nReady · Drain"
    assert not w1.action("Drain").isEnabled() and w1.action("Activate").isEnabled()


def test_a_drill_then_heal_through_the_agent(h: Harness) -> None:
    h.show("swarm")
    swarm = h.d.swarm
    h.wait(lambda: "c1" in swarm.boxes and bool(swarm.boxes["c1"].nodes))
    box = swarm.boxes["c1"]
    assert not box.op_buttons["heal"].isEnabled()  # nothing to heal yet
    box.nodes["c1-w2"].action("Kill").trigger()
    h.wait(lambda: h.client.called("node_action") == [("c1", "c1-w2", "kill")])
    h.wait(box.op_buttons["heal"].isEnabled)
    assert "killed" in box.nodes["c1-w2"].info.text()
    h.wait(lambda: swarm.node_tasks("c1", "c1-w2") == ())  # its task went elsewhere
    box.op_buttons["heal"].click()
    h.wait(lambda: h.client.called("cluster_request") == [("c1", "heal")])


@pytest.mark.parametrize(
    ("node", "label", "action"),
    [("c1-w2", "Promote", "promote"), ("c1-m3", "Demote", "demote"), ("c1-m2", "Freeze", "freeze"),
     ("c1-m3", "Partition", "partition")],
)  # fmt: skip
def test_node_actions_reach_the_agent(h: Harness, node: str, label: str, action: str) -> None:
    h.show("swarm")
    swarm = h.d.swarm
    h.wait(lambda: "c1" in swarm.boxes and bool(swarm.boxes["c1"].nodes))
    swarm.boxes["c1"].nodes[node].action(label).trigger()
    h.wait(lambda: h.client.called("node_action") == [("c1", node, action)])


def test_a_failing_node_action_is_shown_with_its_fix(h: Harness) -> None:
    h.client.fail["node_action"] = error("no manager answers", fix="`moorage cluster recover c1`")
    h.show("swarm")
    swarm = h.d.swarm
    h.wait(lambda: "c1" in swarm.boxes and bool(swarm.boxes["c1"].nodes))
    swarm.boxes["c1"].nodes["c1-w1"].action("Drain").trigger()
    h.wait(lambda: h.d.problem_text() != "")
    assert h.d.problem_text() == (
        "Could not drain c1-w1: no manager answers\nFix: `moorage cluster recover c1`"
    )


def test_a_cluster_engine_that_does_not_answer_is_said_in_its_box(h: Harness) -> None:
    h.docker.fail["tasks"] = ConnectionError("connection refused")
    h.show("swarm")
    swarm = h.d.swarm
    h.wait(lambda: "c1" in swarm.boxes and not swarm.boxes["c1"].problem.isHidden())
    assert "did not answer" in swarm.boxes["c1"].problem.text()
    assert swarm.boxes["c1"].nodes["c1-w1"].task_label.text() == "tasks: not known"


def test_tasks_by_node_names_services_and_slots() -> None:
    nodes = [{"ID": "n1", "Description": {"Hostname": "c1-w1"}}]
    services = [{"ID": "s1", "Spec": {"Name": "web"}}, {"ID": "s2", "Spec": {"Name": "agent"}}]
    tasks = [
        {"ServiceID": "s1", "Slot": 2, "NodeID": "n1", "DesiredState": "running",
         "Status": {"State": "running"}},
        {"ServiceID": "s1", "Slot": 1, "NodeID": "n1", "DesiredState": "running",
         "Status": {"State": "preparing"}},
        {"ServiceID": "s2", "NodeID": "n1", "DesiredState": "running", "Status": {"State": "running"}},
        {"ServiceID": "s1", "Slot": 3, "DesiredState": "running", "Status": {"State": "pending"}},
        {"ServiceID": "s1", "Slot": 4, "NodeID": "n1", "DesiredState": "shutdown",
         "Status": {"State": "shutdown"}},
    ]  # fmt: skip
    assert tasks_by_node(nodes, services, tasks) == {
        "c1-w1": ("agent", "web.1 (preparing)", "web.2"),
        "": ("web.3 (pending)",),
    }


# ----- machine ---------------------------------------------------------------------------------


def test_machine_page_draws_the_samples_and_shows_the_facts(h: Harness) -> None:
    h.show("machine")
    page = h.d.machine_page
    h.wait(lambda: page.stats is not None)
    assert len(page.cpu.samples) == 120 and page.memory.top == 2048
    assert page.cpu.samples[0][1] == 10.0
    h.wait(lambda: page.values["State"].text() == "running")
    assert page.values["Accelerator"].text() == "kvm (KVM works (test boot))"
    assert page.values["CPUs"].text() == "2"
    assert page.values["Engine"].text() == "26.1.5"
    assert page.values["Socket"].text().endswith("docker.sock")
    h.wait(lambda: len(h.client.called("stats")) >= 2)  # asked again while shown


def test_machine_page_says_why_there_are_no_samples(h: Harness) -> None:
    h.client.fail["stats"] = error("the machine is not running", fix="Start it")
    h.show("machine")
    h.wait(lambda: "No samples" in h.d.machine_page.placeholder.text())
    assert h.d.machine_page.placeholder.text() == (
        "No samples: the machine is not running (Start it)"
    )


# ----- pure parts -------------------------------------------------------------------------------


def test_cpu_percent_from_the_engines_precpu_or_the_last_sample() -> None:
    def sample(total: int, system: int, pre: tuple[int, int] | None = None) -> dict[str, Any]:
        s: dict[str, Any] = {"cpu_stats": {"cpu_usage": {"total_usage": total},
                                           "system_cpu_usage": system, "online_cpus": 4}}  # fmt: skip
        if pre is not None:
            s["precpu_stats"] = {"cpu_usage": {"total_usage": pre[0]}, "system_cpu_usage": pre[1]}
        return s

    assert cpu_percent(sample(200, 1000, pre=(100, 600))) == 100.0  # 100/400 of 4 CPUs
    assert cpu_percent(sample(200, 1000)) is None  # one_shot: no earlier sample yet
    assert cpu_percent(sample(300, 2000), previous=sample(200, 1000)) == 40.0
    assert cpu_percent(sample(300, 1000), previous=sample(200, 1000)) is None


def test_memory_leaves_out_the_page_cache() -> None:
    assert memory_used({"memory_stats": {"usage": 100, "limit": 1000,
                                         "stats": {"inactive_file": 30}}}) == (70, 1000)  # fmt: skip
    assert memory_used({"memory_stats": {"usage": 100, "stats": {"total_inactive_file": 10}}}) == (
        90,
        0,
    )
    assert memory_used({}) is None


# ----- the app opens this dashboard ----------------------------------------------------------


def test_the_app_opens_the_dashboard_with_its_own_engine_and_events(
    qtbot: QtBot, fake_client: FakeAgentClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(QSystemTrayIcon, "isSystemTrayAvailable", staticmethod(lambda: False))
    app = DesktopApp(fake_client, engine=lambda _s: fake_client.docker)  # type: ignore[arg-type]
    try:
        app.start(show_dashboard=True)
        d = app.dashboard
        assert isinstance(d, Dashboard) and d.isVisible()
        qtbot.waitUntil(lambda: d.containers.table.rowCount() == 2, timeout=3000)
        app.show_dashboard("volumes")
        assert d.page == "volumes" and not d.containers.active
        app.on_event(Event(1, "error", "the engine stopped", op="start"))
        assert d.problem_text() == "start failed: the engine stopped"
        assert isinstance(d.containers, ContainersPage)
    finally:
        app.shutdown()
        d, app.dashboard = app.dashboard, None  # answers still due go to no window
        if d is not None:
            d.hide()
            d.shutdown()
            delete(d)


# ----- the calls fit docker-py's own API --------------------------------------------------------


def test_every_engine_call_fits_docker_pys_api_client(h: Harness) -> None:
    """The pages talk to an autospec of docker-py's ``APIClient`` (a call that does not
    fit its signature raises), answered by the fake engine."""
    docker = pytest.importorskip("docker")
    api = create_autospec(docker.APIClient, instance=True)
    fake = h.docker
    for name in ("containers", "stats", "logs", "restart", "stop", "remove_container", "images",
                 "remove_image", "volumes", "remove_volume", "nodes", "services", "tasks"):  # fmt: skip
        getattr(api, name).side_effect = getattr(fake, name)
    engine = SimpleNamespace(api=api)
    h.d.ctx._factory = lambda _socket: engine
    h.show()
    page = h.d.containers
    h.wait(lambda: page.table.rowCount() == 2 and h.rows(page.table)[1][4] == "25.0 %")
    select(page.table, "web")
    page.restart_button.click()
    h.wait(lambda: api.restart.called)
    page.stop_button.click()
    h.wait(lambda: api.stop.called)
    page.remove_button.click()
    h.wait(lambda: api.remove_container.called)
    h.d.show_page("images")
    h.wait(lambda: h.d.images.table.rowCount() == 4)
    select(h.d.images.table, "postgres:16")
    h.d.images.remove_button.click()
    h.wait(lambda: api.remove_image.called)
    h.d.show_page("volumes")
    h.wait(lambda: h.d.volumes.table.rowCount() == 2)
    select(h.d.volumes.table, "cache")
    h.d.volumes.remove_button.click()
    h.wait(lambda: api.remove_volume.called)
    h.d.show_page("logs")
    h.wait(lambda: api.logs.called)
    h.d.show_page("swarm")
    h.wait(lambda: api.tasks.called and h.d.swarm.node_tasks("c1", "c1-w1") == ("web.1",))
    assert h.d.messages == []
