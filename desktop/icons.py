"""The tray's icons, drawn with QPainter after ``installers/assets/moorage.svg`` (a
blue tile, a hull of containers on a wave), one look per state:

- ``running``: the tile with a green dot;
- ``stopped``: the tile in greys, no dot;
- ``starting``: the tile with an amber arc going round (``FRAMES`` frames, turned by
  ``Animator``'s timer only while starting, so an idle tray wakes no timer);
- ``trouble``: the tile with a red badge and a white "!".

Drawn rather than loaded: every size is sharp and the states are colours of one
drawing. ``python -m moorage.desktop.icons DIR`` writes the theme's PNG sizes
(``DIR/hicolor/NxN/apps/moorage.png``), which the packages install.
"""

from __future__ import annotations

import sys
from pathlib import Path

from PySide6.QtCore import QObject, QPointF, QRectF, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QIcon, QImage, QPainter, QPainterPath, QPen, QPixmap

from moorage.desktop.model import IconState

FRAMES = 8
FRAME_MS = 120
TRAY_SIZES = (16, 22, 24, 32, 48, 64)
THEME_SIZES = (16, 22, 24, 32, 48, 64, 128, 256, 512)

_BRAND = {"tile": "#1d4e89", "box": "#7fc8f8", "line": "#ffffff"}
_GREY = {"tile": "#5b6470", "box": "#b8c0cc", "line": "#e6e9ee"}
_GREEN, _AMBER, _RED = QColor("#2fbf71"), QColor("#f5a524"), QColor("#e5484d")


def _tile(p: QPainter, colours: dict[str, str]) -> None:
    """The SVG's drawing on a 64x64 canvas (the painter is scaled to it)."""
    p.setPen(Qt.PenStyle.NoPen)
    p.setBrush(QColor(colours["tile"]))
    p.drawRoundedRect(QRectF(2, 2, 60, 60), 12, 12)
    p.setBrush(QColor(colours["box"]))
    for x, y, w, h in ((18, 16, 12, 12), (34, 16, 12, 12), (26, 4, 12, 10)):
        p.drawRoundedRect(QRectF(x, y, w, h), 2, 2)
    pen = QPen(QColor(colours["line"]), 4)
    pen.setCapStyle(Qt.PenCapStyle.RoundCap)
    p.setPen(pen)
    p.setBrush(Qt.BrushStyle.NoBrush)
    wave = QPainterPath(QPointF(10, 40))
    wave.quadTo(QPointF(21, 48), QPointF(32, 40))
    wave.quadTo(QPointF(43, 48), QPointF(54, 40))
    p.drawPath(wave)
    p.setPen(QPen(QColor(colours["line"]), 3))
    p.drawLine(QPointF(32, 28), QPointF(32, 36))


def _badge(p: QPainter, colour: QColor, mark: str = "") -> None:
    """A dot in the lower right corner, ringed so it reads on any panel."""
    p.setPen(QPen(QColor("#ffffff"), 3))
    p.setBrush(colour)
    p.drawEllipse(QRectF(36, 36, 26, 26))
    if mark == "!":
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(QColor("#ffffff"))
        p.drawRoundedRect(QRectF(46.5, 40.5, 5, 11), 2, 2)
        p.drawEllipse(QRectF(46.5, 53.5, 5, 5))


def _arc(p: QPainter, frame: int) -> None:
    """A quarter of a ring round the tile, at ``frame`` of FRAMES."""
    pen = QPen(_AMBER, 6)
    pen.setCapStyle(Qt.PenCapStyle.RoundCap)
    p.setPen(pen)
    p.setBrush(Qt.BrushStyle.NoBrush)
    start = int((90 - frame * 360 / FRAMES) * 16)
    p.drawArc(QRectF(36, 36, 26, 26).adjusted(2, 2, -2, -2), start, -100 * 16)
    p.setPen(Qt.PenStyle.NoPen)
    p.setBrush(QColor("#ffffff"))
    p.drawEllipse(QRectF(45, 45, 8, 8))


def image(state: IconState | None, size: int, frame: int = 0) -> QImage:
    """The icon of ``state`` (None: the app's own, no badge) as a ``size`` x ``size``
    ARGB image."""
    img = QImage(size, size, QImage.Format.Format_ARGB32_Premultiplied)
    img.fill(Qt.GlobalColor.transparent)
    p = QPainter(img)
    p.setRenderHint(QPainter.RenderHint.Antialiasing)
    p.scale(size / 64, size / 64)
    _tile(p, _GREY if state == "stopped" else _BRAND)
    if state == "running":
        _badge(p, _GREEN)
    elif state == "trouble":
        _badge(p, _RED, "!")
    elif state == "starting":
        p.setPen(QPen(QColor("#ffffff"), 3))
        p.setBrush(QColor(_BRAND["tile"]))
        p.drawEllipse(QRectF(36, 36, 26, 26))
        _arc(p, frame)
    p.end()
    return img


def icon(state: IconState, frame: int = 0) -> QIcon:
    """A QIcon of ``state`` with a pixmap for each size a tray asks for."""
    result = QIcon()
    for size in TRAY_SIZES:
        result.addPixmap(QPixmap.fromImage(image(state, size, frame)))
    return result


class Animator(QObject):
    """The tray's icon for a state: ``changed`` gives each new QIcon, a frame every
    FRAME_MS while ``starting``, once for the other states. Icons are drawn once
    and kept."""

    changed = Signal(QIcon)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._cache: dict[tuple[str, int], QIcon] = {}
        self._state: IconState | None = None
        self._frame = 0
        self._timer = QTimer(self)
        self._timer.setInterval(FRAME_MS)
        self._timer.timeout.connect(self._next)

    @property
    def state(self) -> IconState | None:
        return self._state

    @property
    def animating(self) -> bool:
        return self._timer.isActive()

    def current(self) -> QIcon:
        return self._icon(self._state or "stopped", self._frame)

    def _icon(self, state: IconState, frame: int) -> QIcon:
        key = (state, frame if state == "starting" else 0)
        if key not in self._cache:
            self._cache[key] = icon(state, key[1])
        return self._cache[key]

    def set_state(self, state: IconState) -> None:
        if state == self._state:
            return
        self._state, self._frame = state, 0
        if state == "starting":
            self._timer.start()
        else:
            self._timer.stop()
        self.changed.emit(self.current())

    def _next(self) -> None:
        self._frame = (self._frame + 1) % FRAMES
        self.changed.emit(self.current())


def write_theme(root: Path) -> list[Path]:
    """The app icon in every theme size, in the hicolor layout under ``root``."""
    written = []
    for size in THEME_SIZES:
        path = root / "hicolor" / f"{size}x{size}" / "apps" / "moorage.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        if not image(None, size).save(str(path)):
            raise OSError(f"could not write {path}")
        written.append(path)
    return written


def main(argv: list[str]) -> int:
    from PySide6.QtGui import QGuiApplication  # noqa: PLC0415 - only the writer needs one

    app = QGuiApplication([*argv[:1], "-platform", "offscreen"])
    for path in write_theme(Path(argv[1] if len(argv) > 1 else "installers/assets/icons")):
        print(path)
    del app
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
