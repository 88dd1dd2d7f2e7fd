"""What the dashboard's pages share: the ``Context`` they reach the agent and the engine
through, and the ``Page`` base that polls only while it is shown.

Agent calls go through the app's ``Calls``; engine calls through the dashboard's own
``Calls`` (``Context.engine_calls``), so a slow engine (a container's stats under
emulation, a cluster whose leader is frozen) never makes the tray say that the agent
does not answer. Either way nothing runs on the GUI thread.

A page polls with a single-shot timer that is armed again only when a round's answers
are in, so rounds never pile up behind a slow engine; the dashboard activates the page
it shows and deactivates every page while it is hidden or minimized (then nothing
polls at all).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QTimer, QUrl, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QVBoxLayout,
    QWidget,
)

from moorage.desktop.calls import Calls
from moorage.errors import MoorageError

log = logging.getLogger("moorage.desktop")

Ask = Callable[[str, str, list[str], Callable[[str | None], None]], None]
"""(title, text, buttons, then), as the app's: ``then`` gets the button's label, or
None when the question was dismissed."""
EngineFactory = Callable[[str], Any]
"""A docker-py ``DockerClient`` for a socket path (the app's ``docker_engine``)."""

NOT_RUNNING = MoorageError("the machine is not running", fix="Start it with the Start button")
CLUSTER_TIMEOUT_S = 10
"""A cluster engine's request timeout: a frozen manager costs a round this much, not
docker-py's 30 s."""


def describe(exc: BaseException) -> tuple[str, str]:
    """(message, fix) of an error: ours carry both; the engine's (docker-py's
    ``APIError``) say what the engine said; a socket that is gone, that the engine is."""
    if isinstance(exc, MoorageError):
        return exc.message, exc.fix or ""
    explanation = getattr(exc, "explanation", None)
    if explanation:
        return str(explanation), ""
    text = str(exc) or type(exc).__name__
    if "Connection" in type(exc).__name__ or "connection" in text.lower():
        return (
            f"the engine did not answer ({type(exc).__name__})",
            "Is the machine running? `moorage status` tells",
        )
    return f"{type(exc).__name__}: {text}", ""


def human_size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1000:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def ago(t: float, now: float | None = None) -> str:
    """How long ago ``t`` (a Unix time) was, as ``docker images`` says it."""
    s = max(0.0, (time.time() if now is None else now) - t)
    for unit, length in (("year", 365 * 86400), ("month", 30 * 86400), ("week", 7 * 86400),
                         ("day", 86400), ("hour", 3600), ("minute", 60)):  # fmt: skip
        if s >= length:
            n = int(s // length)
            return f"{n} {unit}{'s' if n != 1 else ''} ago"
    return "just now"


class Context(QObject):
    """What pages work through. ``error`` and ``info`` reach the dashboard's message line
    and status bar; ``socket`` is the machine's engine socket while it runs."""

    error = Signal(str, str, str)
    """(what failed, message, fix)."""
    info = Signal(str)
    engine_changed = Signal()
    """The machine's engine came or went."""

    def __init__(
        self,
        client: Any,
        calls: Calls,
        engine: EngineFactory,
        *,
        ask: Ask,
        open_url: Callable[[QUrl], Any],
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.client = client
        self.calls = calls
        self.engine_calls = Calls(self, threads=3)
        self._factory = engine
        self.ask = ask
        self.open_url = open_url
        self.socket: str | None = None
        self._engines: dict[str, Any] = {}
        self._lock = threading.Lock()

    def set_socket(self, socket: str | None) -> None:
        if socket != self.socket:
            self.socket = socket
            self.engine_changed.emit()

    def engine(self, socket: str | None = None, *, timeout: int | None = None) -> Any:
        """docker-py's low-level ``APIClient`` of the machine's engine, or of the engine
        at ``socket`` (a cluster's). On a worker only: the first use connects."""
        socket = socket or self.socket
        if socket is None:
            raise NOT_RUNNING
        with self._lock:
            client = self._engines.get(socket)
        if client is None:
            client = self._factory(socket)
            if timeout is not None and hasattr(client.api, "timeout"):
                client.api.timeout = timeout
            with self._lock:
                self._engines[socket] = client
        return client.api

    def stream_engine(self, socket: str | None = None) -> Any:
        """An ``APIClient`` of its own, with no read timeout, for a stream that may be
        quiet for long (a log follow: docker-py's ``logs`` reads with the client's
        timeout, which would end the follow of a container silent for 30 s). On a
        worker only."""
        socket = socket or self.socket
        if socket is None:
            raise NOT_RUNNING
        api = self._factory(socket).api
        if hasattr(api, "timeout"):
            api.timeout = None
        return api

    def forget(self, socket: str) -> None:
        """Drop a client whose engine failed (a cluster's socket may reach another
        manager next time; a new client connects again)."""
        with self._lock:
            self._engines.pop(socket, None)

    def on_engine(
        self,
        fn: Callable[[Any], Any],
        done: Callable[[Any], None] | None = None,
        *,
        what: str,
        failed: Callable[[Exception], None] | None = None,
    ) -> None:
        """``fn(api)`` of the machine's engine on a worker; an error is shown as ``what``
        failing (and ``failed`` told)."""

        def call() -> Any:
            return fn(self.engine())

        def fail(exc: Exception) -> None:
            self.fail(what, exc)
            if failed is not None:
                failed(exc)

        self.engine_calls.run(call, done=done, failed=fail)

    def on_agent(
        self,
        fn: Callable[[], Any],
        done: Callable[[Any], None] | None = None,
        *,
        what: str,
        failed: Callable[[Exception], None] | None = None,
    ) -> None:
        def fail(exc: Exception) -> None:
            self.fail(what, exc)
            if failed is not None:
                failed(exc)

        self.calls.run(fn, done=done, failed=fail)

    def fail(self, what: str, exc: BaseException) -> None:
        message, fix = describe(exc)
        log.info("%s: %s", what, message)
        self.error.emit(what, message, fix)

    def confirm(self, title: str, text: str, yes: str, then: Callable[[], None]) -> None:
        self.ask(title, text, [yes, "Cancel"], lambda answer: then() if answer == yes else None)


class Page(QWidget):
    """A page of the dashboard. ``fetch(finished)`` asks for what the page shows and
    calls ``finished()`` once every answer (or error) is in; with ``interval_ms`` the
    page asks again that long after, while it is active."""

    title = ""
    interval_ms = 0
    needs_engine = True

    def __init__(self, ctx: Context, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.active = False
        self._out = False
        self._again = False
        self.rounds = 0
        """Rounds fetched so far (tests count them)."""
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self.refresh)
        self.layout_ = QVBoxLayout(self)
        self.placeholder = QLabel("")
        self.placeholder.setWordWrap(True)
        self.placeholder.hide()
        self.layout_.addWidget(self.placeholder)

    def set_active(self, active: bool) -> None:
        if active and not self.active:
            self.active = True
            self.started()
            self.refresh()
        elif not active and self.active:
            self.active = False
            self._timer.stop()
            self.stopped()

    @property
    def polling(self) -> bool:
        return self._timer.isActive()

    def refresh(self) -> None:
        """Ask now (after the round that is out, if one is)."""
        if not self.active:
            return
        if self._out:
            self._again = True
            return
        self._timer.stop()
        if self.needs_engine and self.ctx.socket is None:
            self.clear()
            self.show_placeholder("The machine is not running: start it with the Start button.")
            return
        self._out = True
        self.rounds += 1
        self.fetch(self._finished)

    def _finished(self) -> None:
        self._out = False
        if not self.active:
            return
        if self._again:
            self._again = False
            self.refresh()
        elif self.interval_ms:
            self._timer.start(self.interval_ms)

    def after(self, text: str) -> Callable[[Any], None]:
        """What an action's answer does: say ``text``, then ask again."""

        def done(_: Any) -> None:
            self.ctx.info.emit(text)
            self.refresh()

        return done

    def show_placeholder(self, text: str) -> None:
        self.placeholder.setText(text)
        self.placeholder.setVisible(bool(text))

    # for subclasses
    def fetch(self, finished: Callable[[], None]) -> None:
        finished()

    def clear(self) -> None:
        """The engine went: show none of what it had."""

    def started(self) -> None:
        """The page is shown (before the first fetch)."""

    def stopped(self) -> None:
        """The page is no longer shown: end what runs for it."""


def table(headers: list[str]) -> QTableWidget:
    t = QTableWidget(0, len(headers))
    t.setHorizontalHeaderLabels(headers)
    t.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    t.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    t.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    t.verticalHeader().hide()
    t.setAlternatingRowColors(True)
    t.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    t.horizontalHeader().setStretchLastSection(True)
    return t


def button_row(*buttons: QPushButton) -> QHBoxLayout:
    row = QHBoxLayout()
    for b in buttons:
        row.addWidget(b)
    row.addStretch(1)
    return row
