"""Every event of one agent's life, numbered, for clients that subscribe late."""

from __future__ import annotations

import logging
import threading
from typing import Any

from moorage.api.schema import Event, EventKind

log = logging.getLogger("moorage.agent")


class EventLog:
    """The last ``keep`` events; ``after`` lets a client wait for the next ones."""

    def __init__(self, keep: int = 1000) -> None:
        self._events: list[Event] = []
        self._next = 1
        self._keep = keep
        self._cond = threading.Condition()

    def emit(self, kind: EventKind, message: str, **fields: Any) -> Event:
        with self._cond:
            event = Event(id=self._next, kind=kind, message=message, **fields)
            self._next += 1
            self._events = [*self._events[-(self._keep - 1) :], event]
            self._cond.notify_all()
        detail = fields.get("phase") or fields.get("state") or fields.get("code") or ""
        log.info("%s %s %s", kind, detail, message)
        return event

    @property
    def last_id(self) -> int:
        with self._cond:
            return self._next - 1

    def after(self, since: int, timeout: float) -> list[Event]:
        """Events with id > since, waiting up to ``timeout`` for the first one."""
        with self._cond:
            self._cond.wait_for(lambda: self._next - 1 > since, timeout)
            return [e for e in self._events if e.id > since]
