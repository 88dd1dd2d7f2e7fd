"""Python's cyclic garbage collector, run on the GUI thread only.

Why: a collection runs on whichever thread happens to allocate past the threshold.
When that is a ``Calls`` worker, the QObjects in the cycles it frees are destroyed on
that thread, and Qt cannot stop a timer from another thread: a later event loop
crashed (seen as segfaults in the desktop's tests, with the collector on a worker in
the backtrace). So the app turns automatic collection off and this timer collects on
the GUI thread, each generation when its threshold says it is due, as qutebrowser
does for the same reason.
"""

from __future__ import annotations

import gc

from PySide6.QtCore import QObject, QTimer

INTERVAL_MS = 1000


def due_generation(counts: tuple[int, int, int], thresholds: tuple[int, int, int]) -> int | None:
    """The oldest generation whose count is past its threshold (None: nothing is due),
    the choice the automatic collector would make."""
    due = None
    for generation in range(3):
        if counts[generation] > thresholds[generation]:
            due = generation
    return due


class GuiThreadCollector(QObject):
    """Turns automatic collection off while it lives; collects on its timer."""

    def __init__(self, parent: QObject | None = None, interval_ms: int = INTERVAL_MS) -> None:
        super().__init__(parent)
        gc.disable()
        self._timer = QTimer(self)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self.collect)
        self._timer.start()

    def collect(self) -> None:
        threshold = gc.get_threshold()
        generation = due_generation(gc.get_count(), (threshold[0], threshold[1], threshold[2]))
        if generation is not None:
            gc.collect(generation)

    def stop(self) -> None:
        self._timer.stop()
        gc.enable()
