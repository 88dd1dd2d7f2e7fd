"""The tray's QMenu, built from the menu model (``desktop/model.py``): a section per
group, separated by lines; an item with children is a submenu. The whole menu is
built again when the model changes (and only then: an equal model is left alone, so
an open menu does not flicker)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from PySide6.QtWidgets import QMenu, QWidget

from moorage.desktop.model import Item, Menu


def _text(label: str) -> str:
    return label.replace("&", "&&")  # no mnemonics: a container may be called R&D


def populate(menu: QMenu, items: Iterable[Item], trigger: Callable[[Item], None]) -> None:
    for item in items:
        if item.separator:
            menu.addSeparator()
        elif item.children:
            sub = menu.addMenu(_text(item.label))
            sub.setToolTipsVisible(True)
            sub.setEnabled(item.enabled)
            sub.menuAction().setToolTip(item.tip)
            populate(sub, item.children, trigger)
        else:
            action = menu.addAction(_text(item.label))
            action.setEnabled(item.enabled and bool(item.action))
            if item.tip:
                action.setToolTip(item.tip)
            if item.action:
                action.triggered.connect(lambda _=False, it=item: trigger(it))


class TrayMenu(QMenu):
    """The context menu of the tray icon; ``trigger(item)`` is called for each choice."""

    def __init__(self, trigger: Callable[[Item], None], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setToolTipsVisible(True)
        self._trigger = trigger
        self.model: Menu | None = None
        self.builds = 0

    def set_model(self, model: Menu) -> None:
        if model == self.model:
            return
        self.model = model
        self.builds += 1
        self.clear()
        for i, section in enumerate(model.sections):
            if i:
                self.addSeparator()
            populate(self, section.items, self._trigger)
