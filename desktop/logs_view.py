"""The logs page: a container's logs, followed as they are written.

``LogFollower`` reads docker-py's ``logs(stream=True, follow=True)`` on a thread of its
own (a follow lasts as long as the page is shown: a pooled worker would be held, and
counted as a slow call). What it reads waits in a buffer; a queued signal tells the GUI
thread there is some, at most one signal at a time, so a container that writes fast
costs the GUI one repaint per batch, not per line. ``stop`` closes the stream, which
ends the blocked read at once (docker-py's ``CancellableStream`` shuts its socket).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

from PySide6.QtCore import QObject, QThread, Signal
from PySide6.QtGui import QTextCursor
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QPlainTextEdit, QPushButton

from moorage.desktop.model import Container
from moorage.desktop.pages import Context, Page, describe

log = logging.getLogger("moorage.desktop")

TAIL = 500
"""Lines of history shown when a follow starts."""
MAX_LINES = 5000
"""Lines the view keeps (older ones scroll away)."""


class LogFollower(QThread):
    """Follows one stream of bytes; see the module's docstring."""

    ready = Signal()
    """There is text to ``take()``."""
    ended = Signal(str)
    """The stream ended: "" when it simply ended, else what went wrong."""

    def __init__(self, open_stream: Callable[[], Iterable[bytes]],
                 parent: QObject | None = None) -> None:  # fmt: skip
        super().__init__(parent)
        self._open = open_stream
        self._lock = threading.Lock()
        self._buffer: list[bytes] = []
        self._signalled = False
        self._stream: Any = None
        self._stopping = False

    def run(self) -> None:
        try:
            stream = self._open()
            with self._lock:
                self._stream = stream
                stopping = self._stopping
            if stopping:
                self._close(stream)
                return
            for chunk in stream:
                if self.isInterruptionRequested():
                    return
                with self._lock:
                    self._buffer.append(chunk)
                    signal, self._signalled = not self._signalled, True
                if signal:
                    self.ready.emit()
        except Exception as exc:
            if not self._stopping:
                message, fix = describe(exc)
                self.ended.emit(message + (f" ({fix})" if fix else ""))
            return
        if not self._stopping:
            self.ended.emit("")

    def take(self) -> str:
        with self._lock:
            data, self._buffer, self._signalled = b"".join(self._buffer), [], False
        return data.decode("utf-8", errors="replace")

    @staticmethod
    def _close(stream: Any) -> None:
        close = getattr(stream, "close", None)
        if close is not None:
            with contextlib.suppress(Exception):
                close()

    def stop(self, msecs: int = 1000) -> bool:
        """End the follow; True when the thread has ended within ``msecs``."""
        self.requestInterruption()
        with self._lock:
            self._stopping = True
            stream = self._stream
        if stream is not None:
            self._close(stream)
        return bool(self.wait(msecs))


class LogsPage(Page):
    title = "Logs"

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.choice = QComboBox()
        self.choice.setMinimumContentsLength(24)
        self.state = QLabel("")
        self.clear_button = QPushButton("Clear")
        row = QHBoxLayout()
        row.addWidget(QLabel("Container:"))
        row.addWidget(self.choice, 1)
        row.addWidget(self.state, 1)
        row.addWidget(self.clear_button)
        self.view = QPlainTextEdit()
        self.view.setReadOnly(True)
        self.view.setMaximumBlockCount(MAX_LINES)
        self.view.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        font = self.view.font()
        font.setFamily("monospace")
        self.view.setFont(font)
        self.layout_.addLayout(row)
        self.layout_.addWidget(self.view, 1)
        self.clear_button.clicked.connect(self.view.clear)
        self.choice.activated.connect(self._chosen)
        self.containers: list[Container] = []
        self.wanted: str | None = None
        """The container to follow (an id), once the list has it."""
        self.follower: LogFollower | None = None
        self.following: str | None = None
        self._ending: set[LogFollower] = set()

    def show_container(self, cid: str) -> None:
        """Follow ``cid`` (when the page is shown)."""
        self.wanted = cid
        if self.active:
            self.refresh()

    def fetch(self, finished: Callable[[], None]) -> None:
        def listed(containers: list[Container]) -> None:
            finished()
            self.containers = sorted(containers, key=lambda c: (c.state != "running", c.name))
            self.choice.blockSignals(True)
            self.choice.clear()
            for c in self.containers:
                self.choice.addItem(f"{c.name} ({c.state})", c.id)
            self.choice.blockSignals(False)
            if not self.containers:
                self.show_placeholder("No containers.")
                self._stop_follow()
                return
            self.show_placeholder("")
            ids = [c.id for c in self.containers]
            pick = next((w for w in (self.wanted, self.following) if w in ids), ids[0])
            self.choice.setCurrentIndex(ids.index(pick))
            if pick != self.following or self.follower is None:
                self.follow(pick)

        self.ctx.on_engine(
            lambda api: [Container.from_engine(c) for c in api.containers(all=True)],
            listed,
            what="Could not list the containers",
            failed=lambda _exc: finished(),
        )

    def _chosen(self, index: int) -> None:
        cid = self.choice.itemData(index)
        if isinstance(cid, str):
            self.wanted = cid
            self.follow(cid)

    def follow(self, cid: str) -> None:
        """Follow ``cid``'s logs from its last ``TAIL`` lines, ending any other follow."""
        self._stop_follow()
        if not self.active:
            return
        self.view.clear()
        name = next((c.name for c in self.containers if c.id == cid), cid[:12])
        self.state.setText(f"following {name}")
        ctx, socket = self.ctx, self.ctx.socket

        def open_stream() -> Iterable[bytes]:
            api = ctx.stream_engine(socket)
            return api.logs(cid, stream=True, follow=True, tail=TAIL)  # type: ignore[no-any-return]

        follower = LogFollower(open_stream, self)
        follower.ready.connect(lambda f=follower: self._append(f))
        follower.ended.connect(lambda why, f=follower: self._ended(f, why))
        self.follower, self.following = follower, cid
        follower.start()

    def _append(self, follower: LogFollower) -> None:
        text = follower.take()
        if not text or follower is not self.follower:
            return
        bar = self.view.verticalScrollBar()
        at_end = bar.value() >= bar.maximum() - 2
        cursor = QTextCursor(self.view.document())
        cursor.movePosition(QTextCursor.MoveOperation.End)
        cursor.insertText(text)
        if at_end:
            bar.setValue(bar.maximum())

    def _ended(self, follower: LogFollower, why: str) -> None:
        if follower is not self.follower:
            return
        self._append(follower)
        self.state.setText(f"ended: {why}" if why else "the container stopped; its log ended")
        if why:
            self.ctx.error.emit("The logs could not be followed", why, "")

    def _stop_follow(self) -> None:
        follower, self.follower, self.following = self.follower, None, None
        if follower is None:
            return
        if not follower.stop(200):
            # Not ended yet (a stream that cannot be closed): keep it until it ends, so
            # Qt does not destroy a running thread.
            self._ending.add(follower)
            follower.finished.connect(lambda f=follower: self._ending.discard(f))
        self.state.setText("")

    def clear(self) -> None:
        self._stop_follow()
        self.containers = []
        self.choice.clear()

    def started(self) -> None:
        self.view.clear()

    def stopped(self) -> None:
        self._stop_follow()
        self.state.setText("stopped (the page is hidden)")
