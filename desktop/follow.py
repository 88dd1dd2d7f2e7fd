"""Following the agent's event stream (and the engine's container events) off the GUI
thread, so the tray learns what happens instead of polling for it.

``AgentFollower`` is a QThread that follows ``client.events()`` and emits each event
(``arrived``) and how the agent is (``connection``: ``ok``, ``not-responding``,
``not-running``, ``crashed``). When the agent goes away it reconnects with backoff
(0.5 s, doubling, at most 15 s) while the agent's pid file says it lives, and while no
agent runs it looks at the pid file every ``FALLBACK_SECONDS`` (a file read, not a
request), or at once when the app ``wake``s it after starting one. It never asks for
the status: the app does, once, when the connection comes up.

A blocking read cannot be interrupted from another thread, so the read itself runs on
a daemon thread that hands each item over a queue; ``stop`` ends the QThread at once,
and the reader ends with its stream (the agent sends a keepalive every 5 s) or with
the process.
"""

from __future__ import annotations

import functools
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from PySide6.QtCore import QObject, QThread, Signal

from moorage.api.schema import AgentBusy, AgentCrashed, AgentNotRunning, Event
from moorage.desktop.model import Connection

log = logging.getLogger("moorage.desktop")

BACKOFF = (0.5, 1.0, 2.0, 4.0, 8.0, 15.0)
FALLBACK_SECONDS = 5.0
"""How often the pid file of an agent that does not run is looked at."""
REPLAY_SLACK = 1.0
"""Events of a newly met agent older than this before the connection are its history
(the stream starts with it), which the status fetched on connecting already covers."""


class EventSource(Protocol):
    def liveness(self) -> str: ...
    def agent_pid(self) -> int | None: ...
    def events(self, since: int = 0) -> Iterator[Event]: ...


class _Ended:
    def __init__(self, error: BaseException | None) -> None:
        self.error = error


_WAKE = object()


class StreamThread(QThread):
    """A QThread that reads a blocking iterator through a daemon reader thread."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._lock = threading.Lock()
        self._queue: queue.Queue[object] = queue.Queue()
        self._stop_reader = threading.Event()

    def wake(self) -> None:
        """Look now instead of at the end of a wait."""
        self._queue.put(_WAKE)

    def stop(self, msecs: int = 2000) -> None:
        self.requestInterruption()
        self._stop_reader.set()
        self.wake()
        self.wait(msecs)

    def _pause(self, seconds: float) -> None:
        """Sleep ``seconds`` or until woken or stopped (a wake is not lost)."""
        deadline = time.monotonic() + seconds
        while not self.isInterruptionRequested():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            try:
                item = self._queue.get(timeout=left)
            except queue.Empty:
                return
            if item is _WAKE:
                return

    def _read(self, source: Callable[[], Iterator[Any]]) -> Iterator[Any]:
        """The items of ``source()``, read on a daemon thread; ends with the stream (its
        error raised here) or when stopped or woken."""
        self._queue = q = queue.Queue[object]()
        stop = self._stop_reader

        def reader() -> None:
            try:
                for item in source():
                    q.put(item)
                    if stop.is_set():
                        return
                q.put(_Ended(None))
            except BaseException as exc:  # handed to the QThread
                q.put(_Ended(exc))

        threading.Thread(target=reader, name=f"{type(self).__name__}-reader", daemon=True).start()
        while not self.isInterruptionRequested():
            item = q.get()
            if item is _WAKE:
                if self.isInterruptionRequested():
                    return
                continue
            if isinstance(item, _Ended):
                if item.error is not None:
                    raise item.error
                return
            yield item


class AgentFollower(StreamThread):
    """Follows the agent's events; see the module's docstring."""

    arrived = Signal(object)
    """An Event, on the GUI thread (queued)."""
    connection = Signal(str)
    """A Connection, each time it changes."""

    def __init__(
        self,
        client: EventSource,
        parent: QObject | None = None,
        *,
        backoff: tuple[float, ...] = BACKOFF,
        fallback: float = FALLBACK_SECONDS,
    ) -> None:
        super().__init__(parent)
        self.client = client
        self.backoff = backoff
        self.fallback = fallback
        self._said: Connection | None = None
        self.count = 0
        """Events emitted so far."""

    def _say(self, connection: Connection) -> None:
        if connection != self._said:
            self._said = connection
            log.info("agent connection: %s", connection)
            self.connection.emit(connection)

    def run(self) -> None:
        since, pid, failures = 0, None, 0
        while not self.isInterruptionRequested():
            live = self.client.liveness()
            if live != "running":
                self._say("crashed" if live == "crashed" else "not-running")
                pid = None
                self._pause(self.fallback)
                continue
            agent_pid = self.client.agent_pid()
            if agent_pid != pid:  # another agent: its ids start again
                since, pid = 0, agent_pid
            connected = time.time()
            self._say("ok")
            try:
                for ev in self._read(functools.partial(self.client.events, since)):
                    assert isinstance(ev, Event)
                    since = ev.id
                    failures = 0
                    if ev.time >= connected - REPLAY_SLACK:
                        self.count += 1
                        self.arrived.emit(ev)
            except AgentBusy:
                self._say("not-responding")
            except (AgentCrashed, AgentNotRunning):
                pass  # the pid file says which, at the top
            except Exception as exc:  # a transport's surprise: show it, then try again
                log.warning("event stream: %s: %s", type(exc).__name__, exc)
                self._say("not-responding")
            if self.isInterruptionRequested():
                return
            if self.client.liveness() == "running":
                # The stream ended or failed with the agent alive: slow, or restarting.
                self._say("not-responding")
                self._pause(self.backoff[min(failures, len(self.backoff) - 1)])
                failures += 1


class EngineFollower(StreamThread):
    """Follows the engine's container events (docker-py ``APIClient.events``) and emits
    ``changed`` for each start, stop, death, removal, rename, pause or unpause. Ends
    when the engine goes; the app starts a new one each time the machine is ready."""

    changed = Signal()
    ACTIONS = frozenset({"start", "stop", "die", "destroy", "rename", "pause", "unpause"})

    def __init__(self, events: Callable[[], Iterator[Any]], parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._events = events

    def run(self) -> None:
        try:
            for item in self._read(self._events):
                if isinstance(item, dict) and item.get("Action") in self.ACTIONS:
                    self.changed.emit()
        except Exception as exc:  # the engine went (a stop): the app restarts us
            log.info("engine events ended: %s", exc)
