"""Every agent and engine call runs here, on a worker thread, never on the GUI thread.

Why: the agent may be busy starting a VM, slow under emulation, or gone; a call made
on the GUI thread would freeze the tray for as long. ``Calls.run`` hands a callable to
a thread pool and delivers its result or its error back on the GUI thread through a
queued signal, so a slot never races the view. ``Calls.busy`` counts calls still out,
which the view shows as "not responding" when one has taken longer than
``SLOW_AFTER`` seconds.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, QTimer, Signal, Slot

from moorage.errors import MoorageError

SLOW_AFTER = 3.0
"""Seconds after which a call still out makes the view say "not responding"."""


class _Relay(QObject):
    """Carries a finished call back to the GUI thread (signals queue across threads)."""

    finished = Signal(int, object, object)  # call id, result, error


class _Job(QRunnable):
    def __init__(self, ident: int, fn: Callable[[], Any], relay: _Relay) -> None:
        super().__init__()
        self._ident, self._fn, self._relay = ident, fn, relay

    def run(self) -> None:
        try:
            result = self._fn()
        except Exception as exc:  # delivered to the caller's `failed`
            self._relay.finished.emit(self._ident, None, exc)
        else:
            self._relay.finished.emit(self._ident, result, None)


class Calls(QObject):
    """Runs callables off the GUI thread; results and errors come back on it."""

    failed = Signal(str, str)
    """(message, fix) of an error whose call gave no ``failed`` handler."""
    responsive = Signal(bool)
    """False once a call has been out longer than SLOW_AFTER; True when none is."""

    def __init__(self, parent: QObject | None = None, *, threads: int = 4) -> None:
        super().__init__(parent)
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(threads)
        self._relay = _Relay()
        self._relay.finished.connect(self._deliver)
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._out: dict[int, tuple[float, Callable[[Any], None] | None,
                                   Callable[[Exception], None] | None]] = {}  # fmt: skip
        self._slow = False
        self._watch = QTimer(self)
        self._watch.setInterval(500)
        self._watch.timeout.connect(self._check_slow)
        self._watch.start()

    def run(
        self,
        fn: Callable[[], Any],
        done: Callable[[Any], None] | None = None,
        failed: Callable[[Exception], None] | None = None,
    ) -> None:
        """Call ``fn()`` on a worker; then ``done(result)`` or ``failed(error)`` on the
        GUI thread. Without ``failed``, a MoorageError is emitted as ``failed`` (the app
        shows it); any other exception is too, with its type named."""
        ident = next(self._ids)
        with self._lock:
            self._out[ident] = (time.monotonic(), done, failed)
        self._pool.start(_Job(ident, fn, self._relay))

    @property
    def busy(self) -> int:
        with self._lock:
            return len(self._out)

    def wait(self, msecs: int = 5000) -> bool:
        """Wait for every worker to finish (tests and quitting)."""
        return bool(self._pool.waitForDone(msecs))

    @Slot(int, object, object)
    def _deliver(self, ident: int, result: Any, error: Exception | None) -> None:
        with self._lock:
            _, done, failed = self._out.pop(ident, (0.0, None, None))
        if error is None:
            if done is not None:
                done(result)
        elif failed is not None:
            failed(error)
        elif isinstance(error, MoorageError):
            self.failed.emit(error.message, error.fix or "")
        else:
            self.failed.emit(f"{type(error).__name__}: {error}", "")
        self._check_slow()

    def _check_slow(self) -> None:
        now = time.monotonic()
        with self._lock:
            slow = any(now - began > SLOW_AFTER for began, _, _ in self._out.values())
        if slow != self._slow:
            self._slow = slow
            self.responsive.emit(not slow)
