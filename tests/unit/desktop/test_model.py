"""The tray's menu in each machine state: pure data, no Qt."""

from __future__ import annotations

from dataclasses import replace

import pytest

from moorage.api.schema import ClusterList, InstallCommand, Status, SwarmInfo
from moorage.desktop import model
from moorage.desktop.model import Container, Item, Menu, View
from tests.helpers.fake_agent_client import (
    cluster,
    engine_container,
    offer,
    running_status,
    update_view,
)

WEB = Container.from_engine(engine_container("web", "nginx:1.27", [(80, 8080), (443, 8443)]))
DB = Container.from_engine(engine_container("db", "postgres:16", []))


def running(**changes: object) -> View:
    base = View(
        machine="default",
        status=running_status(),
        swarm=SwarmInfo(state="inactive"),
        clusters=ClusterList([cluster()]),
        update=update_view(),
        containers=(WEB, DB),
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def stopped(**changes: object) -> View:
    return replace(
        View(
            machine="default",
            status=Status(machine="default"),  # type: ignore[arg-type]
            connection="not-running",
        ),
        **changes,
    )


def enabled(menu: Menu, *path: str) -> bool:
    return menu.item(*path).enabled


def machine_buttons(menu: Menu) -> tuple[bool, bool, bool]:
    return enabled(menu, "Start"), enabled(menu, "Stop"), enabled(menu, "Restart")


def labels(item: Item) -> list[str]:
    return [c.label for c in item.children if not c.separator]


# ----- each machine state --------------------------------------------------------------


def test_running_has_every_section_in_order_and_stop_restart_enabled() -> None:
    m = model.menu(running())
    assert [s.name for s in m.sections] == [
        "status",
        "machine",
        "dashboard",
        "engine",
        "settings",
        "app",
        "quit",
    ]
    assert m.status_line == "default: running, engine 26.1.5"
    assert m.icon == "running"
    assert machine_buttons(m) == (False, True, True)
    top = [i.label for s in m.sections for i in s.items]
    assert top == [
        "default: running, engine 26.1.5",
        "Start",
        "Stop",
        "Restart",
        "Dashboard",
        "Containers (2)",
        "Swarm",
        "Preferences…",
        "Troubleshoot",
        "Check for updates",
        "About moorage",
        "Quit",
    ]
    assert not m.item("default: running").enabled  # the status line is a line, not an action


def test_stopped_offers_start_only_and_greys_the_engine_menus() -> None:
    m = model.menu(stopped())
    assert m.status_line == "default: stopped"
    assert m.icon == "stopped"
    assert machine_buttons(m) == (True, False, False)
    assert not enabled(m, "Containers") and not enabled(m, "Swarm")
    # What needs no running machine still works.
    for path in (
        ("Dashboard",),
        ("Preferences",),
        ("Troubleshoot", "Diagnostics bundle"),
        ("Troubleshoot", "Reset to factory defaults"),
        ("Check for updates",),
        ("About",),
        ("Quit",),
    ):
        assert enabled(m, *path), path
    assert not enabled(m, "Troubleshoot", "Restart the machine")


def test_starting_animates_names_the_phase_and_stop_cancels() -> None:
    st = running_status(state="starting", phase="engine", operation="start", engine_version=None)
    m = model.menu(running(status=st, containers=None, progress="waiting for dockerd"))
    assert m.icon == "starting"
    assert m.status_line == "default: starting: engine — waiting for dockerd"
    assert machine_buttons(m) == (False, True, False)
    assert m.item("Stop").label == "Stop (cancels the start)"
    assert not enabled(m, "Containers")


def test_stopping_disables_every_machine_action() -> None:
    st = running_status(state="stopping", operation="stop")
    m = model.menu(running(status=st))
    assert m.icon == "starting"
    assert m.status_line == "default: stopping"
    assert machine_buttons(m) == (False, False, False)
    assert not enabled(m, "Troubleshoot", "Reset to factory defaults")


def test_error_shows_the_message_and_its_fix_and_offers_start() -> None:
    st = Status(machine="default", state="crashed", error="the VM stopped by itself")
    problem = ("the engine did not come up in 300 s", "see `moorage logs`, then Start again")
    m = model.menu(replace(stopped(status=st, problem=problem), connection="ok"))
    assert m.icon == "trouble"
    assert m.status_line == "default: crashed"
    lines = [i.label for i in m.section("status").items]
    assert lines == [
        "default: crashed",
        "Error: the engine did not come up in 300 s",
        "Fix: see `moorage logs`, then Start again",
        "Error: the VM stopped by itself",
    ]
    assert machine_buttons(m) == (True, False, True)
    assert "the engine did not come up" in m.tooltip


def test_agent_not_responding_waits_and_greys_what_needs_it() -> None:
    m = model.menu(running(connection="not-responding"))
    assert m.icon == "trouble"
    assert m.status_line == "default: not responding"
    assert m.section("status").items[1].label.startswith("The host agent does not answer")
    assert machine_buttons(m) == (False, False, False)
    for path in (
        ("Preferences",),
        ("Troubleshoot", "Diagnostics bundle"),
        ("Troubleshoot", "Reset"),
        ("Check for updates",),
    ):
        assert not enabled(m, *path), path
    # The window, the agent's own log, About and Quit never wait for the agent.
    for path in (
        ("Dashboard",),
        ("Troubleshoot", "Open the host agent's log"),
        ("About",),
        ("Quit",),
    ):
        assert enabled(m, *path), path


def test_a_dead_agent_is_trouble_and_start_starts_another() -> None:
    st = Status(machine="default", error="the host agent of machine 'default' died (pid 7)")
    m = model.menu(View(machine="default", status=st, connection="crashed"))
    assert m.icon == "trouble"
    assert m.status_line == "default: the host agent died"
    assert machine_buttons(m) == (True, False, False)


def test_a_vm_left_without_its_agent_can_be_started_or_stopped() -> None:
    st = Status(machine="default", vm_pid=99, error="the host agent is not running, but the VM is")
    m = model.menu(stopped(status=st))
    assert machine_buttons(m) == (True, True, False)
    assert m.icon == "trouble"


def test_degraded_is_trouble_with_its_warning_and_keeps_the_engine_menus() -> None:
    st = running_status(state="degraded", warnings=["the engine stopped answering"])
    m = model.menu(running(status=st))
    assert m.icon == "trouble"
    assert "Warning: the engine stopped answering" in [i.label for i in m.section("status").items]
    assert enabled(m, "Containers") and enabled(m, "Swarm")


def test_a_port_conflict_is_a_line_of_the_menu() -> None:
    st = running_status(port_conflicts=["127.0.0.1:8080/tcp: in use by another program"])
    m = model.menu(running(status=st))
    assert m.icon == "trouble"
    assert "Port taken: 127.0.0.1:8080/tcp: in use by another program" in [
        i.label for i in m.section("status").items
    ]


def test_an_operation_in_flight_greys_its_button() -> None:
    m = model.menu(stopped(pending=frozenset({model.START})))
    assert not enabled(m, "Start")


# ----- containers ------------------------------------------------------------------------


def test_each_container_opens_its_published_ports_and_has_logs_restart_stop() -> None:
    m = model.menu(running())
    web = m.item("Containers", "web")
    assert web.label == "web (nginx:1.27)"
    assert labels(web) == [
        "Open http://localhost:8080",
        "Open http://localhost:8443",
        "Logs",
        "Restart",
        "Stop",
    ]
    assert web.child("Open http://localhost:8080").args == ("http://localhost:8080",)
    assert web.child("Logs").action == model.CONTAINER_LOGS
    assert web.child("Stop").args == (WEB.id, "web")
    db = m.item("Containers", "db")
    assert labels(db)[0] == "No published ports"


def test_the_engine_lists_a_port_twice_and_the_menu_once() -> None:
    assert [p.host_port for p in WEB.ports] == [8080, 8443]


def test_no_containers_and_not_yet_known() -> None:
    assert labels(model.menu(running(containers=())).item("Containers")) == [
        "No running containers"
    ]
    assert labels(model.menu(running(containers=None)).item("Containers")) == ["Asking the engine…"]


def test_udp_ports_are_shown_not_opened() -> None:
    c = Container.from_engine(
        {
            "Id": "1" * 64,
            "Names": ["/dns"],
            "Image": "coredns",
            "Ports": [{"IP": "0.0.0.0", "PrivatePort": 53, "PublicPort": 5353, "Type": "udp"}],
        }
    )
    item = model.menu(running(containers=(c,))).item("Containers", "dns")
    assert item.children[0].label == "Port 5353/udp → 53"
    assert not item.children[0].enabled


# ----- swarm -------------------------------------------------------------------------------


def test_swarm_offers_init_when_inactive_and_leave_with_a_question_when_active() -> None:
    m = model.menu(running())
    assert m.item("Swarm", "Make this engine a one-node swarm").action == model.SWARM_INIT
    active = SwarmInfo(state="active", node_id="x", managers=1, nodes=1, services=2)
    m = model.menu(running(swarm=active))
    assert m.item("Swarm", "This engine").label == "This engine: one-node swarm, active, 2 services"
    leave = m.item("Swarm", "Leave")
    assert leave.action == model.SWARM_LEAVE and "services" in leave.confirm


def test_clusters_show_their_nodes_with_roles_and_node_actions() -> None:
    m = model.menu(running())
    c1 = m.item("Swarm", "Cluster c1")
    assert c1.label == "Cluster c1 (running)"
    assert [n for n in labels(c1) if n.startswith("c1-")] == [
        "c1-m1: leader, ready",
        "c1-m2: manager, ready",
        "c1-m3: manager, ready",
        "c1-w1: worker, ready",
        "c1-w2: worker, ready",
    ]
    m2 = c1.child("c1-m2")
    assert labels(m2) == [
        "Drain",
        "Activate",
        "Demote to worker",
        "Fault drills (Heal undoes them)",
        "Kill (power cut)",
        "Freeze (hung machine)",
        "Partition (pulled cable)",
    ]
    assert m2.child("Drain").args == ("c1", "c1-m2", "drain")
    assert not m2.child("Activate").enabled  # already active
    assert c1.child("c1-w1").child("Promote to manager").args == ("c1", "c1-w1", "promote")
    assert not c1.child("Heal").enabled  # nothing to undo
    assert c1.child("Stop the cluster").args == ("c1", "stop")


def test_a_drilled_node_is_named_so_and_heal_undoes_it() -> None:
    c = cluster()
    c.nodes[3] = replace(c.nodes[3], drill="killed", state="down", container="exited")
    c.nodes[4] = replace(c.nodes[4], availability="drain")
    c1 = model.menu(running(clusters=ClusterList([c]))).item("Swarm", "Cluster c1")
    assert c1.child("c1-w1").label == "c1-w1: worker, down, killed"
    assert not c1.child("c1-w1").child("Kill").enabled
    assert c1.child("c1-w2").label == "c1-w2: worker, ready, drain"
    assert c1.child("c1-w2").child("Activate").enabled
    assert c1.child("Heal").enabled and c1.child("Heal").args == ("c1", "heal")


def test_lost_quorum_offers_recover_with_the_problem() -> None:
    c = cluster(
        state="no-quorum",
        quorum=False,
        problem="2 of 3 managers are gone",
        fix="moorage cluster recover c1",
    )
    c1 = model.menu(running(clusters=ClusterList([c]))).item("Swarm", "Cluster c1")
    assert "2 of 3 managers are gone" in labels(c1)
    assert c1.child("Recover").args == ("c1", "recover")


def test_no_clusters_says_how_to_make_one() -> None:
    m = model.menu(running(clusters=ClusterList([])))
    assert "No clusters (moorage cluster create NAME)" in labels(m.item("Swarm"))


# ----- troubleshoot, updates, quit --------------------------------------------------------


def test_reset_asks_naming_what_is_deleted() -> None:
    reset = model.menu(running()).item("Troubleshoot", "Reset to factory defaults")
    assert reset.action == model.RESET
    for words in ("data disk", "image", "container", "volume", "cannot be undone"):
        assert words in reset.confirm


def test_diagnostics_restart_and_the_log_are_in_troubleshoot() -> None:
    t = model.menu(running()).item("Troubleshoot")
    assert [c.action for c in t.children] == [
        model.DIAGNOSTICS,
        model.RESTART,
        model.RESET,
        model.AGENT_LOG,
    ]
    pending = model.menu(running(pending=frozenset({model.DIAGNOSTICS})))
    assert pending.item("Troubleshoot", "Writing the diagnostics bundle").enabled is False


def test_an_offered_update_can_be_applied_and_a_downloaded_one_installed() -> None:
    m = model.menu(running(update=update_view(offer=offer("0.2.0"))))
    item = m.item("Update to moorage 0.2.0")
    assert item.action == model.UPDATE_APPLY and item.args == ("0.2.0",)
    skipped = offer("0.2.0") | {"skipped": True}
    assert (
        model.UPDATE_APPLY not in model.menu(running(update=update_view(offer=skipped))).actions()
    )
    ready = update_view(install=InstallCommand(["apt-get", "install", "x.deb"], True, "0.2.0"))
    install = model.menu(running(update=ready)).item("Install moorage 0.2.0")
    assert install.action == model.UPDATE_INSTALL and "password" in install.tip
    checking = model.menu(running(pending=frozenset({model.UPDATE_CHECK})))
    assert not checking.item("Checking for updates").enabled


def test_up_to_date_offers_only_the_check() -> None:
    up = update_view(offer={"channel": "stable", "newest": "0.1.0", "parts": []})
    m = model.menu(running(update=up))
    assert [i.label for i in m.section("app").items] == ["Check for updates", "About moorage"]


@pytest.mark.parametrize(
    ("view", "question"),
    [
        (running(), "Machine 'default' is running. Stop it too?"),
        (stopped(), None),
        (running(connection="not-responding"), None),
    ],
)
def test_quit_asks_to_stop_only_a_machine_that_runs(view: View, question: str | None) -> None:
    assert model.quit_question(view) == question


def test_every_action_of_every_state_is_one_the_app_knows() -> None:
    known = {v for k, v in vars(model).items() if k.isupper() and isinstance(v, str)}
    views = [
        running(),
        stopped(),
        running(connection="not-responding"),
        running(update=update_view(offer=offer())),
        running(swarm=SwarmInfo(state="active")),
    ]
    for v in views:
        assert model.menu(v).actions() <= known


def test_the_clis_dashboard_pages_are_the_dashboards() -> None:
    from moorage.cli.desktop import PAGES as CLI_PAGES  # noqa: PLC0415
    from moorage.desktop.dashboard import PAGES  # noqa: PLC0415

    assert CLI_PAGES == PAGES
