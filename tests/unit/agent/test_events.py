from __future__ import annotations

import threading
import time

from moorage.agent.events import EventLog


def test_late_subscribers_get_history_then_new_events() -> None:
    log = EventLog()
    log.emit("phase", "image", phase="image")
    log.emit("progress", "line", phase="image")
    assert [e.id for e in log.after(0, 0)] == [1, 2]
    assert log.after(2, 0.01) == []

    threading.Timer(0.05, lambda: log.emit("ready", "ready")).start()
    started = time.monotonic()
    events = log.after(2, 5)
    assert [e.kind for e in events] == ["ready"]
    assert time.monotonic() - started < 2


def test_history_is_bounded() -> None:
    log = EventLog(keep=3)
    for i in range(10):
        log.emit("progress", str(i))
    assert [e.message for e in log.after(0, 0)] == ["7", "8", "9"]
