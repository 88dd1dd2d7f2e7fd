"""The tray icon: its picture follows the machine's state (``icons.Animator``), its
tooltip is the status line, right click opens the menu and left click the dashboard."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QSystemTrayIcon

from moorage.desktop.icons import Animator
from moorage.desktop.menu import TrayMenu
from moorage.desktop.model import Item, Menu


class Tray(QObject):
    dashboard = Signal()
    """Left click (or double click): the app shows the dashboard."""

    def __init__(
        self,
        trigger: Callable[[Item], None],
        about_to_show: Callable[[], None],
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.icon = QSystemTrayIcon(self)
        self.menu = TrayMenu(trigger)
        self.menu.aboutToShow.connect(about_to_show)
        self.icon.setContextMenu(self.menu)
        self.animator = Animator(self)
        self.animator.changed.connect(self.icon.setIcon)
        self.icon.activated.connect(self._activated)

    def update(self, model: Menu) -> None:
        self.animator.set_state(model.icon)
        if self.icon.icon().isNull():
            self.icon.setIcon(self.animator.current())
        self.icon.setToolTip(model.tooltip)
        self.menu.set_model(model)

    def show(self) -> None:
        self.icon.show()

    def hide(self) -> None:
        self.icon.hide()

    def visible(self) -> bool:
        return self.icon.isVisible()

    def _activated(self, reason: QSystemTrayIcon.ActivationReason) -> None:
        if reason in (
            QSystemTrayIcon.ActivationReason.Trigger,
            QSystemTrayIcon.ActivationReason.DoubleClick,
        ):
            self.dashboard.emit()
