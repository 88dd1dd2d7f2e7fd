"""Desktop notifications for what a developer wants to hear of without looking: the
machine is ready, an error, a published port that is taken, an update.

They are a supplement: each one is also on the menu's status line and in the
dashboard, so a desktop without notifications (or a user who turned them off) misses
nothing. A notification never takes the focus (``QSystemTrayIcon.showMessage`` is a
passive bubble), and the same one is not repeated within ``REPEAT_SECONDS``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from PySide6.QtWidgets import QSystemTrayIcon

log = logging.getLogger("moorage.desktop")

Kind = Literal["ready", "error", "port-conflict", "update"]
REPEAT_SECONDS = 60.0
SHOW_MS = {"ready": 4000, "error": 10000, "port-conflict": 8000, "update": 8000}
_ICON = {
    "ready": QSystemTrayIcon.MessageIcon.Information,
    "error": QSystemTrayIcon.MessageIcon.Critical,
    "port-conflict": QSystemTrayIcon.MessageIcon.Warning,
    "update": QSystemTrayIcon.MessageIcon.Information,
}


@dataclass(frozen=True)
class Note:
    kind: Kind
    title: str
    message: str


class Notifier:
    """Shows notes through a tray icon, when there is one that is visible."""

    def __init__(
        self,
        tray: Callable[[], QSystemTrayIcon | None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._tray = tray
        self._clock = clock
        self._last: dict[tuple[str, str, str], float] = {}
        self.shown: list[Note] = []
        """Every note shown (the tests read it)."""

    def notify(self, note: Note) -> bool:
        key = (note.kind, note.title, note.message)
        now = self._clock()
        if now - self._last.get(key, -REPEAT_SECONDS) < REPEAT_SECONDS:
            return False
        tray = self._tray()
        if tray is None or not tray.isVisible():
            return False
        self._last[key] = now
        self.shown.append(note)
        log.info("notify %s: %s: %s", note.kind, note.title, note.message)
        if QSystemTrayIcon.supportsMessages():
            tray.showMessage(note.title, note.message, _ICON[note.kind], SHOW_MS[note.kind])
        return True
