"""The desktop app: the tray (or, without one, the dashboard), kept up to date from the
agent's event stream, every action carried out through ``Calls``.

``DesktopApp`` holds what the menu is drawn from (``model.View``) and changes it only
on the GUI thread: from events (``follow.AgentFollower``), from the answers of calls
it made, and from the engine's container events (``follow.EngineFollower``). After
each change the menu model is computed again and the tray shows it; the menu itself
is rebuilt only when the model differs.

Nothing here waits for the agent or the engine: a call goes to ``Calls`` and its
answer comes back as a callback. Long operations (start, stop, an update's download)
are accepted at once by the agent and followed through the event stream; installing a
package runs as a QProcess. An error is shown in a message box with its fix, and a
machine's failure also on the status line and as a notification.

Where the desktop has no tray (``QSystemTrayIcon.isSystemTrayAvailable()`` false, as
on GNOME without the AppIndicator extension) the dashboard opens instead, and the app
looks again every ``TRAY_RECHECK_MS``, so a tray that appears later is used.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

from PySide6.QtCore import QObject, QProcess, QTimer, QUrl
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import QApplication, QMessageBox, QSystemTrayIcon, QWidget

from moorage import __version__
from moorage import config as config_mod
from moorage.api.client import AgentClient
from moorage.api.schema import ClusterList, ClusterStatus, Event, Status, SwarmInfo, UpdateView
from moorage.desktop import model
from moorage.desktop.calls import Calls
from moorage.desktop.collector import GuiThreadCollector
from moorage.desktop.follow import AgentFollower, EngineFollower
from moorage.desktop.model import Connection, Container, Item, View
from moorage.desktop.notify import Note, Notifier
from moorage.desktop.tray import Tray
from moorage.errors import MoorageError, UpdateError

log = logging.getLogger("moorage.desktop")

TRAY_RECHECK_MS = 3000
STATUS_DEBOUNCE_MS = 150
CONTAINERS_DEBOUNCE_MS = 300
LONG_ACTIONS = frozenset(
    {
        model.NODE_ACTION,
        model.SWARM_INIT,
        model.SWARM_LEAVE,
        model.UPDATE_CHECK,
        model.DIAGNOSTICS,
        model.CLUSTER_OP,
    }
)
"""Actions that take a while by nature (a drill, a TUF check): while one is out, a
call slower than ``calls.SLOW_AFTER`` is not taken for a hung agent; the event stream
still tells a hung agent (it goes silent)."""

Ask = Callable[[str, str, list[str], Callable[[str | None], None]], None]
"""(title, text, buttons, then): ask the user; ``then`` gets the button's label, or
None when the question was dismissed."""


def docker_engine(socket: str) -> Any:
    """A docker-py client of the machine's engine, its API version fixed like the
    agent's (``moorage.docker_api``); imported only once one runs."""
    # docker-py is 15 MB of imports a stopped machine never needs
    from moorage.docker_api import docker_client  # noqa: PLC0415

    return docker_client(Path(socket))


def _dashboard_class() -> Any:
    return importlib.import_module("moorage.desktop.dashboard").Dashboard


def _preferences_class() -> Any:
    return importlib.import_module("moorage.desktop.preferences").PreferencesDialog


class DesktopApp(QObject):
    """The tray app of one machine. ``start()`` it inside a running QApplication."""

    def __init__(
        self,
        client: AgentClient,
        *,
        engine: Callable[[str], Any] = docker_engine,
        dashboard_class: Callable[[], Any] = _dashboard_class,
        preferences_class: Callable[[], Any] = _preferences_class,
        open_url: Callable[[QUrl], Any] = QDesktopServices.openUrl,
        spawn: bool = True,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.client = client
        self._engine_factory = engine
        self._dashboard_class = dashboard_class
        self._preferences_class = preferences_class
        self.open_url = open_url
        self._spawn = spawn
        self.calls = Calls(self)
        self.calls.failed.connect(self.show_error)
        self.calls.responsive.connect(self._on_responsive)
        self.view = View(machine=client.name, app_version=__version__)
        self.menu_model = model.menu(self.view)
        self._connection: Connection = "ok"
        self._slow = False
        self.follower = AgentFollower(client, self)
        self.follower.arrived.connect(self.on_event)
        self.follower.connection.connect(self.on_connection)
        self.engine_follower: EngineFollower | None = None
        self._engine: Any = None
        self._engine_socket: str | None = None
        self.tray: Tray | None = None
        self.dashboard: Any = None
        self.preferences: Any = None
        self.notifier = Notifier(lambda: self.tray.icon if self.tray is not None else None)
        self.ask: Ask = self._ask
        self.messages: list[tuple[str, str, str]] = []
        """Every (title, message, fix) shown in a box: the tests read it."""
        self._boxes: list[QMessageBox] = []
        self._installer: QProcess | None = None
        self._status_out = self._status_again = False
        self._status_timer = self._single_shot(STATUS_DEBOUNCE_MS, self._fetch_status)
        self._containers_out = self._containers_again = False
        self._containers_timer = self._single_shot(CONTAINERS_DEBOUNCE_MS, self._fetch_containers)
        self._clusters_timer = self._single_shot(STATUS_DEBOUNCE_MS, self._fetch_clusters)
        self._tray_timer = QTimer(self)
        self._tray_timer.setInterval(TRAY_RECHECK_MS)
        self._tray_timer.timeout.connect(self._ensure_tray)
        self.tray_available = False
        self.started_at = time.monotonic()
        self._closed = False

    def _single_shot(self, msecs: int, slot: Callable[[], None]) -> QTimer:
        timer = QTimer(self)
        timer.setSingleShot(True)
        timer.setInterval(msecs)
        timer.timeout.connect(slot)
        return timer

    # ----- life -------------------------------------------------------------------------

    def start(self, *, show_dashboard: bool = False) -> None:
        self._ensure_tray()
        if self.tray is None or show_dashboard:
            self.show_dashboard()
        if self._spawn and self.client.liveness() != "running":
            self.calls.run(
                self.client.spawn, done=lambda _: self.follower.wake(), failed=self._spawn_failed
            )
        self.follower.start()
        self.refresh_status()

    def _spawn_failed(self, exc: Exception) -> None:
        self._error_box("The host agent did not start", exc)
        self.refresh_status()

    def shutdown(self) -> None:
        """Stop following, let calls out finish (briefly), drop the icon."""
        self._closed = True
        self.follower.stop()
        self._stop_engine_follower()
        self._tray_timer.stop()
        if self.tray is not None:
            self.tray.hide()
        self.calls.wait(2000)

    def quit(self) -> None:
        self.shutdown()
        QApplication.quit()

    # ----- the tray, or the dashboard instead ---------------------------------------------

    def _ensure_tray(self) -> None:
        available = QSystemTrayIcon.isSystemTrayAvailable()
        if available != self.tray_available:
            log.info("system tray available: %s", available)
            self.tray_available = available
        if not available:
            if not self._tray_timer.isActive():
                self._tray_timer.start()
            return
        self._tray_timer.stop()
        if self.tray is None:
            self.tray = Tray(self.trigger, self._menu_about_to_show, self)
            self.tray.dashboard.connect(self.show_dashboard)
            self.tray.update(self.menu_model)
            self.tray.show()
            log.info("tray icon shown")

    def _menu_about_to_show(self) -> None:
        self.refresh_containers(now=True)

    def show_dashboard(self, page: str | None = None) -> None:
        if self.dashboard is None:
            try:
                cls = self._dashboard_class()
            except ImportError as exc:
                self._error_box("The dashboard is not available", exc)
                return
            # The app's engine factory and URL opener: a test's fakes reach the pages.
            self.dashboard = cls(
                self.client,
                self.calls,
                engine=self._engine_factory,
                owner=self,
                open_url=self.open_url,
            )
            self.dashboard.show_view(self.view, self.menu_model)
        if page:
            self.dashboard.show_page(page)
        self.dashboard.show()
        self.dashboard.raise_()
        self.dashboard.activateWindow()

    # ----- what the menu is drawn from ---------------------------------------------------

    def _set(self, **changes: Any) -> None:
        self.view = replace(self.view, **changes)
        self.menu_model = model.menu(self.view)
        if self.tray is not None:
            self.tray.update(self.menu_model)
        if self.dashboard is not None:
            self.dashboard.show_view(self.view, self.menu_model)

    def _pending(self, action: str, on: bool) -> None:
        pending = set(self.view.pending)
        if on:
            pending.add(action)
        else:
            pending.discard(action)
        self._set(pending=frozenset(pending))

    def on_connection(self, connection: str) -> None:
        self._connection = connection  # type: ignore[assignment]
        self._show_connection()
        if connection == "ok":
            self.refresh_status()
            self.calls.run(self.client.update_view, done=self._got_update, failed=lambda _exc: None)
        elif connection in ("not-running", "crashed"):
            self.refresh_status()

    def _on_responsive(self, responsive: bool) -> None:
        self._slow = not responsive and not (LONG_ACTIONS & self.view.pending)
        self._show_connection()

    def _show_connection(self) -> None:
        connection = self._connection
        if self._slow and connection == "ok":
            connection = "not-responding"
        if connection != self.view.connection:
            self._set(connection=connection)

    def refresh_status(self) -> None:
        self._status_timer.start()

    def _fetch_status(self) -> None:
        if self._status_out:
            self._status_again = True
            return
        if self._connection == "not-responding":
            return
        self._status_out = True
        self.calls.run(
            self.client.status_or_files, done=self._got_status, failed=self._status_failed
        )

    def _status_done(self) -> None:
        self._status_out = False
        if self._status_again:
            self._status_again = False
            self.refresh_status()

    def _got_status(self, status: Status) -> None:
        self._status_done()
        was = self.view.status
        engine_up = status.state in ("running", "degraded") and bool(status.docker_socket)
        changes: dict[str, Any] = {"status": status}
        if status.state == "running" and status.operation is None:
            changes["progress"] = None
        if not engine_up:
            changes.update(swarm=None, clusters=None, containers=None)
            self._stop_engine_follower()
        self._set(**changes)
        if engine_up and (
            was is None or was.state not in ("running", "degraded") or self.engine_follower is None
        ):
            self._engine_up(status)

    def _status_failed(self, exc: Exception) -> None:
        self._status_done()
        log.info("status: %s", exc)

    # ----- the engine: containers, swarm, clusters ------------------------------------------

    def _engine_client(self) -> Any:
        """The engine's docker-py client (made on a worker: it connects lazily)."""
        socket = self.view.status.docker_socket if self.view.status else None
        if socket is None:
            raise MoorageError("the machine is not running", fix="Start it from the menu")
        if self._engine is None or self._engine_socket != socket:
            self._engine, self._engine_socket = self._engine_factory(socket), socket
        return self._engine

    def _engine_up(self, status: Status) -> None:
        if self._closed:
            return
        self.refresh_containers(now=True)
        self.calls.run(
            self.client.swarm,
            done=self._got_swarm,
            failed=lambda exc: log.info("swarm: %s", exc),
        )
        self._clusters_timer.start()
        self._stop_engine_follower()
        socket = status.docker_socket
        assert socket is not None
        engine = self._engine_factory

        def events() -> Any:
            return engine(socket).api.events(decode=True, filters={"type": "container"})

        self.engine_follower = EngineFollower(events, self)
        self.engine_follower.changed.connect(self.refresh_containers)
        self.engine_follower.start()

    def _stop_engine_follower(self) -> None:
        if self.engine_follower is not None:
            self.engine_follower.stop(500)
            self.engine_follower = None

    def refresh_containers(self, now: bool = False) -> None:
        st = self.view.status
        if st is None or st.state not in ("running", "degraded"):
            return
        if now:
            self._containers_timer.stop()
            self._fetch_containers()
        else:
            self._containers_timer.start()

    def _fetch_containers(self) -> None:
        if self._containers_out:
            self._containers_again = True
            return
        self._containers_out = True

        def listed() -> tuple[Container, ...]:
            return tuple(Container.from_engine(c) for c in self._engine_client().api.containers())

        def done(containers: tuple[Container, ...] | None) -> None:
            self._containers_out = False
            if containers is not None:
                self._set(containers=containers)
            if self._containers_again:
                self._containers_again = False
                self.refresh_containers()

        def failed(exc: Exception) -> None:
            log.info("containers: %s", exc)
            done(None)

        self.calls.run(listed, done=done, failed=failed)

    def _fetch_clusters(self) -> None:
        self.calls.run(
            self.client.clusters,
            done=lambda cl: self._set(clusters=cl),
            failed=lambda exc: log.info("clusters: %s", exc),
        )

    def _got_swarm(self, info: SwarmInfo) -> None:
        self._set(swarm=info)

    def _got_update(self, view: UpdateView) -> None:
        self._set(update=view)

    # ----- events -------------------------------------------------------------------------------

    def on_event(self, event: Event) -> None:
        if self.dashboard is not None:
            self.dashboard.on_event(event)
        st = self.view.status
        name = self.view.machine
        match event.kind:
            case "state":
                if st is not None and event.state is not None:
                    self._set(status=replace(st, state=event.state))
                self.refresh_status()
            case "phase":
                if st is not None:
                    self._set(status=replace(st, phase=event.phase), progress=event.message[:80])
            case "progress":
                if event.op == "update" and event.total:
                    percent = 100 * (event.done or 0) // event.total
                    self._set(progress=f"downloading the update: {percent} %")
                elif event.cluster is None:
                    self._set(progress=event.message[:80])
            case "ready":
                self._set(problem=None, progress=None)
                self.refresh_status()
                context = st.docker_context if st is not None else None
                self.notifier.notify(
                    Note(
                        "ready",
                        "moorage is ready",
                        f"Machine {name!r} runs"
                        + (f": docker --context {context}" if context else ""),
                    )
                )
            case "done":
                self.refresh_status()
                if event.op == "update":
                    self._update_downloaded()
                elif event.cluster is not None:
                    self._clusters_timer.start()
            case "error":
                self._set(problem=(event.message, event.fix or ""), progress=None)
                self.refresh_status()
                if event.op == "update":
                    self._pending(model.UPDATE_APPLY, False)
                what = f"{event.op} failed" if event.op else "trouble"
                self.notifier.notify(
                    Note(
                        "error",
                        f"moorage {name}: {what}",
                        event.message + (f"\nFix: {event.fix}" if event.fix else ""),
                    )
                )
            case "warning":
                self.refresh_status()
            case "forward":
                self.refresh_status()
                self.refresh_containers()
                if event.change == "conflict":
                    self.notifier.notify(
                        Note("port-conflict", "A published port is taken", event.message)
                    )
            case "cluster":
                self._clusters_timer.start()
            case "update":
                self.calls.run(
                    self.client.update_view, done=self._got_update, failed=lambda _exc: None
                )
                self.notifier.notify(Note("update", "A moorage update is available", event.message))

    # ----- actions -------------------------------------------------------------------------------

    def trigger(self, item: Item) -> None:
        """Carry out a menu item (after its question, if it has one)."""
        if item.confirm:
            self.ask(
                "moorage",
                item.confirm,
                [item.label.rstrip("…"), "Cancel"],
                lambda answer: self._act(item) if answer == item.label.rstrip("…") else None,
            )
        else:
            self._act(item)

    def _act(self, item: Item) -> None:
        log.info("action %s %s", item.action, " ".join(item.args))
        handler = self._handlers().get(item.action)
        if handler is None:
            log.warning("no handler for %r", item.action)
            return
        handler(*item.args)

    def _handlers(self) -> dict[str, Callable[..., None]]:
        return {
            model.START: lambda: self.machine("start"),
            model.STOP: lambda: self.machine("stop"),
            model.RESTART: lambda: self.machine("restart"),
            model.RESET: lambda: self.machine("reset"),
            model.DASHBOARD: self.show_dashboard,
            model.OPEN_URL: lambda url: self.open_url(QUrl(url)),
            model.CONTAINER_LOGS: self._container_logs,
            model.CONTAINER_RESTART: lambda cid, name: self._container("restart", cid, name),
            model.CONTAINER_STOP: lambda cid, name: self._container("stop", cid, name),
            model.SWARM_INIT: lambda: self._swarm("init"),
            model.SWARM_LEAVE: lambda: self._swarm("leave"),
            model.CLUSTER_OP: self._cluster_op,
            model.NODE_ACTION: self._node_action,
            model.PREFERENCES: self.show_preferences,
            model.DIAGNOSTICS: self._diagnostics,
            model.AGENT_LOG: self._agent_log,
            model.UPDATE_CHECK: self._update_check,
            model.UPDATE_APPLY: self._update_apply,
            model.UPDATE_INSTALL: self._update_install,
            model.ABOUT: self._about,
            model.QUIT: self._quit_asked,
        }

    def _agent(self) -> AgentClient:
        """The client, with its agent started if none runs (on a worker: it may wait)."""
        if self.client.liveness() != "running":
            self.client.spawn()
            self.follower.wake()
        return self.client

    def _run(
        self,
        action: str,
        fn: Callable[[], Any],
        done: Callable[[Any], None] | None = None,
        title: str = "",
    ) -> None:
        """Run ``fn`` on a worker with ``action`` pending; an error goes to a box."""
        self._pending(action, True)

        def ok(result: Any) -> None:
            self._pending(action, False)
            if done is not None:
                done(result)

        def failed(exc: Exception) -> None:
            self._pending(action, False)
            self._error_box(title or "That did not work", exc)

        self.calls.run(fn, done=ok, failed=failed)

    def machine(self, op: str) -> None:
        """Start, stop, restart or reset the machine (the tray's items, the dashboard's
        buttons), its agent started first if none runs."""

        def call() -> Any:
            if op == "start":
                self._write_config_template()
            elif op == "stop" and self.client.liveness() != "running":
                st = self.client.status_or_files()
                if st.vm_pid is None:
                    return None  # nothing runs: nothing to stop
            return self._agent().request(op)  # type: ignore[arg-type]

        if op in ("start", "restart"):
            self._set(problem=None)
        self._run(
            op,
            call,
            done=lambda _: self.refresh_status(),
            title=f"Could not {op} machine {self.client.name!r}",
        )

    def _write_config_template(self) -> None:
        """As ``moorage start`` does: a first start writes the commented config file."""
        path = self.client.paths.config_file
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(config_mod.template(config_mod.HostFacts.read()))

    def _container(self, op: str, cid: str, name: str) -> None:
        def call() -> None:
            getattr(self._engine_client().api, op)(cid)

        self._run(
            f"container-{op}",
            call,
            done=lambda _: self.refresh_containers(now=True),
            title=f"Could not {op} container {name}",
        )

    def _container_logs(self, cid: str, name: str) -> None:
        self.show_dashboard()
        if self.dashboard is not None:
            self.dashboard.show_logs(cid)

    def _swarm(self, action: str) -> None:
        act = model.SWARM_INIT if action == "init" else model.SWARM_LEAVE
        self._run(
            act,
            lambda: self._agent().swarm(action, force=action == "leave"),
            done=self._got_swarm,
            title=f"Could not {action} the swarm",
        )

    def _cluster_op(self, name: str, op: str) -> None:
        self._run(
            model.CLUSTER_OP,
            lambda: self._agent().cluster_request(name, op),
            done=lambda _: self._clusters_timer.start(),
            title=f"Could not {op} cluster {name}",
        )

    def _node_action(self, cluster: str, node: str, action: str) -> None:
        def done(status: ClusterStatus) -> None:
            clusters = self.view.clusters.clusters if self.view.clusters else []
            self._set(
                clusters=ClusterList([status if c.name == status.name else c for c in clusters])
            )

        self._run(
            model.NODE_ACTION,
            lambda: self._agent().node_action(cluster, node, action),
            done=done,
            title=f"Could not {action} {node}",
        )

    def show_preferences(self) -> None:
        def opened(_: Any) -> None:
            if self.preferences is None:
                try:
                    cls = self._preferences_class()
                except ImportError as exc:
                    self._error_box("Preferences are not available", exc)
                    return
                self.preferences = cls(self.client, self.calls)
                # Its "Restart now" is the menu's Restart: pending, progress, errors.
                restart = getattr(self.preferences, "restart_requested", None)
                if restart is not None:
                    restart.connect(lambda: self.machine("restart"))
            self.preferences.open()

        self._run(model.PREFERENCES, self._agent, done=opened, title="The host agent did not start")

    def _diagnostics(self) -> None:
        def written(d: Any) -> None:
            self.inform(
                "Diagnostics bundle",
                f"Written to {d.path}\n\n{d.size // 1024 or 1} KB: {', '.join(d.contents)}. "
                f"{d.scrubbed} secrets (keys, tokens) were scrubbed.",
                open_folder=str(Path(d.path).parent),
            )

        self._run(
            model.DIAGNOSTICS,
            lambda: cast(Any, self._agent()).diagnostics(),
            done=written,
            title="Could not write the diagnostics bundle",
        )

    def _agent_log(self) -> None:
        self.open_url(QUrl.fromLocalFile(str(self.client.paths.agent_log)))

    def _update_check(self) -> None:
        def checked(view: UpdateView) -> None:
            self._got_update(view)
            offer = view.offer or {}
            version = model._offer(view)
            if version is not None:
                notes = "\n\n".join(f"{v}: {n.strip()}" for v, n in offer.get("notes", []))
                self.ask(
                    "Update available",
                    f"moorage {version} is available on {offer.get('channel')}.\n\n{notes}".strip(),
                    [f"Update to {version}", "Later"],
                    lambda answer: (
                        self._update_apply(version)
                        if answer and answer.startswith("Update")
                        else None
                    ),
                )
            else:
                newest = offer.get("newest") or "none yet"
                self.inform(
                    "Check for updates",
                    f"moorage {view.app_version} is up to date "
                    f"(the {offer.get('channel', 'update')} channel's newest: {newest})."
                    + (f"\n\nThe check said: {view.last_error}" if view.last_error else ""),
                )

        self._run(
            model.UPDATE_CHECK,
            lambda: self._agent().update_check(),
            done=checked,
            title="Could not check for updates",
        )

    def _update_apply(self, version: str = "") -> None:
        """The download is accepted at once and followed through the event stream (its
        ``done`` or ``error`` of op ``update``): no worker waits minutes on it."""
        self._pending(model.UPDATE_APPLY, True)

        def failed(exc: Exception) -> None:
            self._pending(model.UPDATE_APPLY, False)
            self._error_box("Could not download the update", exc)

        self.calls.run(lambda: self._agent().update_apply(), failed=failed)

    def _update_downloaded(self) -> None:
        def got(view: UpdateView) -> None:
            self._pending(model.UPDATE_APPLY, False)
            self._got_update(view)
            messages = "\n".join(view.messages)
            if view.install is not None:
                step = view.install
                self.ask(
                    "Update downloaded",
                    f"moorage {step.version} is downloaded and "
                    "verified."
                    + (f"\n\n{messages}" if messages else "")
                    + ("\n\nInstalling it asks for your password." if step.privileged else ""),
                    [f"Install {step.version}", "Later"],
                    lambda answer: (
                        self._update_install() if answer and answer.startswith("Install") else None
                    ),
                )
            else:
                self.inform(
                    "Update",
                    messages or "The update is staged: it applies at the machine's next restart.",
                )

        def failed(exc: Exception) -> None:
            self._pending(model.UPDATE_APPLY, False)
            self._error_box("Update", exc)

        self.calls.run(self.client.update_view, done=got, failed=failed)

    def _update_install(self) -> None:
        """The package manager installs the verified package behind pkexec (a desktop
        has no terminal for sudo); a QProcess, so nothing waits for the password."""
        step = self.view.update.install if self.view.update else None
        if step is None or self._installer is not None:
            return
        argv = list(step.argv)
        if step.privileged and os.geteuid() != 0:
            if shutil.which("pkexec") is None:
                self._error_box(
                    "Cannot install the update",
                    UpdateError(
                        "installing the package needs root, and pkexec is not here",
                        fix=f"run as root: {' '.join(argv)}",
                    ),
                )
                return
            argv = ["pkexec", *argv]
        self._pending(model.UPDATE_INSTALL, True)
        proc = QProcess(self)
        self._installer = proc

        def finished(code: int, _status: QProcess.ExitStatus) -> None:
            self._installer = None
            self._pending(model.UPDATE_INSTALL, False)
            if code == 0:
                self.inform(
                    "Update installed",
                    f"moorage {step.version} is installed. "
                    "Machines keep their running host agent until they restart; "
                    "quit and start the tray again to use the new one.",
                )
                self.calls.run(
                    self.client.update_view, done=self._got_update, failed=lambda _exc: None
                )
            else:
                err = bytes(proc.readAllStandardError().data()).decode(errors="replace")
                self._error_box(
                    "The update was not installed",
                    UpdateError(
                        f"installing moorage {step.version} failed (exit {code}); the installed "
                        "version is unchanged",
                        fix=err.strip()[-300:] or "see the system log",
                    ),
                )

        proc.finished.connect(finished)
        proc.start(argv[0], argv[1:])

    def _about(self) -> None:
        st = self.view.status
        lines = [
            f"moorage {__version__}",
            "A local Linux VM running the real Docker engine.",
            "",
            f"Machine: {self.view.machine}",
        ]
        if st is not None:
            if st.agent_version:
                lines.append(f"Host agent: {st.agent_version}")
            if st.engine_version:
                lines.append(f"Docker engine: {st.engine_version}")
            if st.image:
                lines.append(f"Guest image: {st.image}")
            if st.accel:
                lines.append(f"Accelerator: {st.accel}")
        self.inform("About moorage", "\n".join(lines))

    def _quit_asked(self) -> None:
        question = model.quit_question(self.view)
        if question is None:
            self.quit()
            return

        def answered(answer: str | None) -> None:
            if answer == "Stop and quit":
                self.calls.run(
                    lambda: self.client.request("stop"),
                    done=lambda _: self.quit(),
                    failed=lambda exc: self._error_box("Could not stop", exc),
                )
            elif answer == "Quit, keep it running":
                self.quit()

        self.ask(
            "Quit moorage", question, ["Stop and quit", "Quit, keep it running", "Cancel"], answered
        )

    # ----- telling the user ------------------------------------------------------------------

    def show_error(self, message: str, fix: str) -> None:
        """An error of a call that had no handler of its own (``Calls.failed``)."""
        self._box(QMessageBox.Icon.Warning, "moorage", message, fix)

    def _error_box(self, title: str, exc: BaseException) -> None:
        if isinstance(exc, MoorageError):
            message, fix = exc.message, exc.fix or ""
        else:
            message, fix = f"{type(exc).__name__}: {exc}", ""
        self._box(QMessageBox.Icon.Warning, title, message, fix)

    def inform(self, title: str, text: str, open_folder: str | None = None) -> None:
        box = self._box(QMessageBox.Icon.Information, title, text, "")
        if open_folder is not None:
            button = box.addButton("Show in folder", QMessageBox.ButtonRole.ActionRole)
            button.clicked.connect(lambda: self.open_url(QUrl.fromLocalFile(open_folder)))

    def _box(self, icon: QMessageBox.Icon, title: str, message: str, fix: str) -> QMessageBox:
        """A box that does not block: the event loop (and the tray) go on meanwhile."""
        log.info("box %s: %s%s", title, message, f" (fix: {fix})" if fix else "")
        self.messages.append((title, message, fix))
        box = QMessageBox(icon, title, message, QMessageBox.StandardButton.Ok, self._parent())
        if fix:
            box.setInformativeText(f"Fix: {fix}")
        self._keep(box)
        box.open()
        return box

    def _ask(
        self, title: str, text: str, buttons: list[str], then: Callable[[str | None], None]
    ) -> None:
        box = QMessageBox(
            QMessageBox.Icon.Question,
            title,
            text,
            QMessageBox.StandardButton.NoButton,
            self._parent(),
        )
        for i, label in enumerate(buttons):
            cancel = label in ("Cancel", "Later")
            b = box.addButton(
                label,
                QMessageBox.ButtonRole.RejectRole if cancel else QMessageBox.ButtonRole.AcceptRole,
            )
            if i == 0 and not cancel and len(buttons) == 2:
                box.setDefaultButton(b)

        def done(_: int) -> None:
            clicked = box.clickedButton()
            then(clicked.text().replace("&", "") if clicked is not None else None)

        box.finished.connect(done)
        self._keep(box)
        box.open()

    def _parent(self) -> QWidget | None:
        d = self.dashboard
        return d if isinstance(d, QWidget) and d.isVisible() else None

    def _keep(self, box: QMessageBox) -> None:
        self._boxes.append(box)
        box.finished.connect(lambda _=0, b=box: self._boxes.remove(b) if b in self._boxes else None)

    # ----- for the single-instance socket ----------------------------------------------------

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        """A request from another launch (``desktop/ipc.py``), or from the tray's
        end-to-end test, ``scripts/screenshots`` and ``bench/desktop.py``: ``dashboard``
        (with a ``page``), ``preferences``, ``close`` (both windows, as the user would),
        ``describe`` and ``quit``. ``describe`` also names the X window (``winId``) of
        each top-level window shown, so they can photograph it with ``import -window``."""
        cmd = request.get("cmd")
        if cmd == "dashboard":
            self.show_dashboard(request.get("page"))
            return {"ok": True}
        if cmd == "preferences":
            self.show_preferences()
            return {"ok": True}
        if cmd == "close":  # as the user closes a window (bench/desktop.py opens it again)
            for w in (self.dashboard, self.preferences):
                if isinstance(w, QWidget) and w.isVisible():
                    w.close()
            return {"ok": True}
        if cmd == "describe":
            shown = {
                name: int(w.winId())
                for name, w in (("dashboard", self.dashboard), ("preferences", self.preferences))
                if isinstance(w, QWidget) and w.isVisible()
            }
            boxes = [int(b.winId()) for b in self._boxes if b.isVisible()]
            return {
                "ok": True,
                **self.describe(),
                "preferences_visible": "preferences" in shown,
                "windows": shown,
                "boxes": boxes,
                "messages": [list(m) for m in self.messages],
            }
        if cmd == "quit":
            QTimer.singleShot(0, self.quit)
            return {"ok": True}
        return {"ok": False, "error": f"unknown command {cmd!r}"}

    def describe(self) -> dict[str, Any]:
        def items(entries: tuple[Item, ...]) -> list[dict[str, Any]]:
            return [
                {
                    "label": i.label,
                    "enabled": i.enabled,
                    "action": i.action,
                    "children": items(i.children),
                }
                for i in entries
                if not i.separator
            ]

        m = self.menu_model
        return {
            "pid": os.getpid(),
            "machine": self.view.machine,
            "tray_available": self.tray_available,
            "tray_visible": self.tray is not None and self.tray.visible(),
            "dashboard_visible": bool(self.dashboard is not None and self.dashboard.isVisible()),
            "status_line": m.status_line,
            "icon": m.icon,
            "connection": self.view.connection,
            "events": self.follower.count,
            "menu": [{"section": s.name, "items": items(s.items)} for s in m.sections],
        }


# ----- the process ------------------------------------------------------------------------------


def _log_to(path: Path) -> None:
    handler = logging.FileHandler(path, mode="w", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    root = logging.getLogger("moorage")
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    stderr = logging.StreamHandler()
    stderr.setFormatter(logging.Formatter("moorage tray: %(message)s"))
    stderr.setLevel(logging.WARNING)
    root.addHandler(stderr)


def _quit_on_signals(app: QApplication, quit: Callable[[], None]) -> Any:
    """SIGINT and SIGTERM end the app cleanly. Python runs its signal handlers only
    between bytecodes, which a Qt event loop never reaches while idle: the handler's
    wake-up byte on a socket wakes the loop instead (no polling timer)."""
    import signal  # noqa: PLC0415
    import socket  # noqa: PLC0415

    from PySide6.QtCore import QSocketNotifier  # noqa: PLC0415

    read, write = socket.socketpair()
    read.setblocking(False)
    write.setblocking(False)
    signal.set_wakeup_fd(write.fileno())
    notifier = QSocketNotifier(read.fileno(), QSocketNotifier.Type.Read, app)

    def woke() -> None:
        with contextlib.suppress(OSError):
            read.recv(64)

    notifier.activated.connect(woke)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: quit())
    return (read, write, notifier)


def run(machine: str, *, dashboard: bool = False, page: str | None = None) -> int:
    """``moorage tray`` and ``moorage dashboard``: the first launch runs the app; a
    later one asks it to show its dashboard and returns 0."""
    from moorage.desktop import icons, ipc  # noqa: PLC0415
    from moorage.paths import data_dir, private_dir  # noqa: PLC0415

    answer = ipc.send({"cmd": "dashboard", "page": page})
    if answer is not None:
        print(
            "moorage tray already runs: its dashboard is shown"
            if answer.get("ok")
            else f"moorage tray already runs, but said: {answer.get('error')}"
        )
        return 0
    _log_to(private_dir(data_dir()) / "tray.log")
    app = QApplication(["moorage"])
    app.setApplicationName("moorage")
    app.setApplicationDisplayName("moorage")
    app.setDesktopFileName("moorage")
    app.setQuitOnLastWindowClosed(False)  # a tray app outlives its windows
    app.setWindowIcon(icons.icon("running"))
    collector = GuiThreadCollector(app)
    desktop = DesktopApp(AgentClient(machine))
    server = ipc.claim(desktop.handle, desktop)
    if server is None:  # another launch won the race: hand over to it
        answer = ipc.send({"cmd": "dashboard", "page": page})
        print("moorage tray already runs: its dashboard is shown")
        return 0
    keep = _quit_on_signals(app, desktop.quit)
    desktop.start(show_dashboard=dashboard or page is not None)
    if page:
        desktop.show_dashboard(page)
    log.info("tray of machine %r running (pid %d)", machine, os.getpid())
    try:
        return app.exec()
    finally:
        server.close()
        collector.stop()
        del keep
