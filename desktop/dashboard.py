"""The dashboard: the machine's window, and the app's whole face where the desktop has
no system tray. A status line with the machine's Start, Stop and Restart (the tray
menu's own items, so they are enabled in the same states), a message line for what
failed and its fix, and pages in a side list:

- Containers (with CPU and memory), Images and Volumes of the machine's engine
  (``engine_pages``); Logs, following one container (``logs_view``);
- Swarm: the one-node swarm and each cluster's nodes with their tasks, live
  (``swarm_view``); Machine: CPU and memory graphs and the machine's facts
  (``machine_view``).

Only the page shown polls, and only while the window is shown and not minimized: a
hidden dashboard asks nothing of the agent or the engine (the tray's idle CPU goal).

The app that shows it (``DesktopApp``, the ``Owner``) follows the machine for the tray
already: it hands the dashboard its view at every change (``show_view``) and its events
(``on_event``), and carries out the machine's actions, so the window and the tray never
disagree and the agent is asked for each status once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol

from PySide6.QtCore import QEvent, QUrl
from PySide6.QtGui import QCloseEvent, QDesktopServices, QHideEvent, QShowEvent
from PySide6.QtWidgets import (
    QApplication,
    QFrame,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QMainWindow,
    QMessageBox,
    QPushButton,
    QStackedWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from moorage.api.schema import Event
from moorage.desktop import model
from moorage.desktop.calls import Calls
from moorage.desktop.engine_pages import ContainersPage, ImagesPage, VolumesPage
from moorage.desktop.logs_view import LogsPage
from moorage.desktop.machine_view import MachinePage
from moorage.desktop.pages import Context, EngineFactory, Page
from moorage.desktop.swarm_view import SwarmPage

log = logging.getLogger("moorage.desktop")

PAGES = ("containers", "images", "volumes", "logs", "swarm", "machine")


class Owner(Protocol):
    """What the dashboard asks of the app that shows it."""

    def machine(self, op: str) -> None:
        """Start, stop or restart the machine, as the tray's items do."""

    def refresh_status(self) -> None:
        """Ask the agent for the status now (the view comes back by ``show_view``)."""


class Dashboard(QMainWindow):
    """The dashboard of ``client``'s machine, shown by ``owner``; ``engine`` makes the
    docker-py client of a socket (the app passes its own ``docker_engine``, so a test's
    fake engine reaches the pages)."""

    def __init__(
        self,
        client: Any,
        calls: Calls,
        parent: QWidget | None = None,
        *,
        engine: EngineFactory,
        owner: Owner,
        open_url: Callable[[QUrl], Any] = QDesktopServices.openUrl,
    ) -> None:
        super().__init__(parent)
        self.client = client
        self.calls = calls
        self.owner = owner
        self.setWindowTitle(f"moorage: {client.name}")
        self.resize(980, 640)
        self.ctx = Context(client, calls, engine, ask=self._ask, open_url=open_url, parent=self)
        self.ctx.error.connect(self.show_problem)
        self.ctx.info.connect(lambda text: self.statusBar().showMessage(text, 8000))
        self.ctx.engine_changed.connect(self._engine_changed)
        self.view = model.View(machine=client.name)
        self.messages: list[tuple[str, str, str]] = []
        """Every (what failed, message, fix) shown: the tests read it."""
        self._boxes: list[QMessageBox] = []
        self._problem = ""
        self._status_error: str | None = None

        central = QWidget()
        outer = QVBoxLayout(central)
        top = QHBoxLayout()
        self.status_label = QLabel(model.status_line(self.view))
        font = self.status_label.font()
        font.setBold(True)
        self.status_label.setFont(font)
        top.addWidget(self.status_label, 1)
        self.machine_buttons: dict[str, QPushButton] = {}
        for op in (model.START, model.STOP, model.RESTART):
            button = QPushButton(op.capitalize())
            button.clicked.connect(lambda _=False, op=op: self.machine(op))
            button.setEnabled(False)
            top.addWidget(button)
            self.machine_buttons[op] = button
        outer.addLayout(top)

        self.problem = QFrame()
        self.problem.setFrameShape(QFrame.Shape.StyledPanel)
        self.problem.setStyleSheet("QFrame { background: #fbe3e0; color: #5a1a12; }")
        row = QHBoxLayout(self.problem)
        self.problem_label = QLabel()
        self.problem_label.setWordWrap(True)
        dismiss = QToolButton()
        dismiss.setText("✕")
        dismiss.setToolTip("Dismiss")
        dismiss.clicked.connect(self.clear_problem)
        row.addWidget(self.problem_label, 1)
        row.addWidget(dismiss)
        self.problem.hide()
        outer.addWidget(self.problem)

        body = QHBoxLayout()
        self.side = QListWidget()
        self.side.setFixedWidth(140)
        self.stack = QStackedWidget()
        self.containers = ContainersPage(self.ctx)
        self.images = ImagesPage(self.ctx)
        self.volumes = VolumesPage(self.ctx)
        self.logs = LogsPage(self.ctx)
        self.swarm = SwarmPage(self.ctx)
        self.machine_page = MachinePage(self.ctx, owner.refresh_status)
        self.pages: dict[str, Page] = dict(
            zip(
                PAGES,
                (self.containers, self.images, self.volumes, self.logs, self.swarm,
                 self.machine_page),
                strict=True,
            )
        )  # fmt: skip
        for page in self.pages.values():
            self.side.addItem(page.title)
            self.stack.addWidget(page)
        self.side.currentRowChanged.connect(self._page_chosen)
        self.side.setCurrentRow(0)
        body.addWidget(self.side)
        body.addWidget(self.stack, 1)
        outer.addLayout(body, 1)
        self.setCentralWidget(central)
        self.containers.logs_wanted.connect(self.show_logs)
        app = QApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(self.shutdown)

    # ----- pages and when they poll ---------------------------------------------------------

    @property
    def page(self) -> str:
        return PAGES[self.stack.currentIndex()]

    def show_page(self, name: str | None) -> None:
        """Show page ``name`` (None: the page shown last)."""
        if name is None:
            return
        if name not in self.pages:
            log.info("no dashboard page %r", name)
            return
        self.side.setCurrentRow(PAGES.index(name))

    def show_logs(self, cid: str) -> None:
        self.logs.show_container(cid)
        self.show_page("logs")

    def _page_chosen(self, row: int) -> None:
        if row >= 0:
            self.stack.setCurrentIndex(row)
            self._sync()

    def shown(self) -> bool:
        """Whether the user can see the window (shown, and not minimized)."""
        return self.isVisible() and not self.isMinimized()

    def _sync(self) -> None:
        """Activate the page shown, and only while the window is; deactivate the rest."""
        visible = self.shown()
        current = self.stack.currentWidget()
        for page in self.pages.values():
            if page is not current or not visible:
                page.set_active(False)
        if visible and isinstance(current, Page):
            current.set_active(True)

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        self._sync()

    def hideEvent(self, event: QHideEvent) -> None:
        super().hideEvent(event)
        self._sync()

    def changeEvent(self, event: QEvent) -> None:
        super().changeEvent(event)
        if event.type() == QEvent.Type.WindowStateChange:
            self._sync()

    def closeEvent(self, event: QCloseEvent) -> None:
        """Closing hides the window; the app (and its tray) go on."""
        super().closeEvent(event)
        self._sync()

    def shutdown(self) -> None:
        """Stop every page (a log follow's thread ends) before the app goes."""
        for page in self.pages.values():
            page.set_active(False)
        self.ctx.engine_calls.wait(1000)

    def _engine_changed(self) -> None:
        current = self.stack.currentWidget()
        if isinstance(current, Page) and current.active:
            current.refresh()

    # ----- the app's view of the machine, and the agent's events -------------------------------

    def show_view(self, view: model.View, menu: model.Menu) -> None:
        """The app's view (and its menu) at each change: the status line and the
        machine's buttons; with a new status, the pages' engine and the machine page."""
        was, self.view = self.view.status, view
        self.status_label.setText(model.status_line(view))
        for item in menu.section("machine").items:
            button = self.machine_buttons.get(item.action)
            if button is not None:
                button.setText(item.label)
                button.setEnabled(item.enabled)
                button.setToolTip(item.tip)
        st = view.status
        if st is None or st is was:
            return
        if st.error and st.error != self._status_error:  # said once, not at every status
            self.show_problem(f"Machine {st.machine!r} is {st.state}", st.error, "")
        self._status_error = st.error
        up = st.state in ("running", "degraded") and bool(st.docker_socket)
        self.ctx.set_socket(st.docker_socket if up else None)
        self.machine_page.set_status(st)

    def machine(self, op: str) -> None:
        """A machine button: the app carries it out (a new start clears the message)."""
        if op in (model.START, model.RESTART):
            self.clear_problem()
        self.owner.machine(op)

    def on_event(self, event: Event) -> None:
        if event.kind == "error":
            what = f"{event.op} failed" if event.op else "The machine reports trouble"
            self.show_problem(what, event.message, event.fix or "")
        elif event.kind == "progress" and event.cluster is None:
            self.statusBar().showMessage(event.message, 8000)
        if (event.kind == "cluster" or event.cluster is not None) and self.swarm.active:
            self.swarm.refresh()
        if event.kind == "forward" and self.containers.active:
            self.containers.refresh()

    # ----- telling the user -------------------------------------------------------------------

    def show_problem(self, what: str, message: str, fix: str) -> None:
        self.messages.append((what, message, fix))
        self._problem = f"{what}: {message}" + (f"\nFix: {fix}" if fix else "")
        text = f"<b>{_escape(what)}</b>: {_escape(message)}"
        if fix:
            text += f"<br>Fix: {_escape(fix)}"
        self.problem_label.setText(text)
        self.problem.show()

    def clear_problem(self) -> None:
        self.problem.hide()
        self.problem_label.setText("")

    def problem_text(self) -> str:
        """The message line as plain text ("" when there is none)."""
        return "" if self.problem.isHidden() else self._problem

    def _ask(
        self, title: str, text: str, buttons: list[str], then: Callable[[str | None], None]
    ) -> None:
        """Ask without blocking: the dashboard (and the tray) go on meanwhile."""
        box = QMessageBox(QMessageBox.Icon.Question, title, text,
                          QMessageBox.StandardButton.NoButton, self)  # fmt: skip
        for label in buttons:
            cancel = label in ("Cancel", "Later")
            b = box.addButton(
                label,
                QMessageBox.ButtonRole.RejectRole if cancel else QMessageBox.ButtonRole.AcceptRole,
            )
            if cancel:
                box.setDefaultButton(b)  # a removal is never the default

        def done(_: int) -> None:
            if box in self._boxes:
                self._boxes.remove(box)
            clicked = box.clickedButton()
            then(clicked.text().replace("&", "") if clicked is not None else None)

        box.finished.connect(done)
        self._boxes.append(box)
        box.open()


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
