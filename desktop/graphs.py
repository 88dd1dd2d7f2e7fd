"""Line graphs of the machine's CPU and memory, drawn with QPainter (PySide6-Essentials
has no QtCharts). Where each point goes is a pure function (``polyline``), tested on
its own; ``Graph`` only paints it."""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QPainter, QPainterPath, QPaintEvent, QPalette, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

Point = tuple[float, float]


def polyline(
    samples: Sequence[Point],
    *,
    end: float,
    span: float,
    top: float,
    width: float,
    height: float,
) -> list[Point]:
    """Where each (time, value) sample of the last ``span`` seconds up to ``end`` goes
    in a ``width`` by ``height`` area: time left to right, ``0 … top`` bottom to top
    (a value above ``top`` is drawn at the top). Samples before the window are left
    out, except the last of them, so the line starts at the left edge."""
    if span <= 0 or top <= 0 or width <= 0 or height <= 0:
        return []
    start = end - span
    ordered = sorted(samples)
    first = 0
    for i, (t, _) in enumerate(ordered):
        if t < start:
            first = i
    shown = [(t, v) for t, v in ordered[first:] if t <= end]
    points = []
    for t, v in shown:
        x = (max(t, start) - start) / span * width
        y = height - min(max(v, 0.0), top) / top * height
        points.append((x, y))
    return points


def runs(samples: Sequence[Point], gap: float) -> list[list[Point]]:
    """``samples`` in time order, cut where two follow each other more than ``gap``
    seconds apart: the agent samples only while someone looks, and a line drawn across
    the time nobody looked would show values nobody measured."""
    out: list[list[Point]] = []
    for t, v in sorted(samples):
        if not out or t - out[-1][-1][0] > gap:
            out.append([])
        out[-1].append((t, v))
    return out


class Graph(QWidget):
    """One quantity over time: a title, its latest value, a line over a light grid."""

    def __init__(self, title: str, unit: str, color: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.title = title
        self.unit = unit
        self.color = QColor(color)
        self.samples: list[Point] = []
        self.end = 0.0
        self.span = 600.0
        self.top = 100.0
        self.gap = float("inf")
        self.setMinimumSize(320, 140)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

    def set_samples(
        self,
        samples: Sequence[Point],
        *,
        end: float,
        span: float,
        top: float,
        gap: float = float("inf"),
    ) -> None:
        """Show ``samples``; a line is not drawn between two more than ``gap`` s apart."""
        self.samples, self.end, self.span, self.top = list(samples), end, span, max(top, 1e-9)
        self.gap = gap
        self.update()

    def caption(self) -> str:
        latest = f"{self.samples[-1][1]:.1f} {self.unit}" if self.samples else "no samples yet"
        minutes = round(self.span / 60)
        return f"{self.title}: {latest}   (last {minutes} min, scale 0-{self.top:g} {self.unit})"

    def paintEvent(self, event: QPaintEvent) -> None:
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        pal = self.palette()
        text_height = self.fontMetrics().height() + 6
        area = QRectF(self.rect()).adjusted(1, text_height, -1, -1)
        p.fillRect(area, pal.color(QPalette.ColorRole.Base))
        grid = QPen(pal.color(QPalette.ColorRole.Mid))
        grid.setStyle(Qt.PenStyle.DotLine)
        p.setPen(grid)
        for i in range(1, 4):
            y = area.top() + area.height() * i / 4
            p.drawLine(QPointF(area.left(), y), QPointF(area.right(), y))
        p.setPen(QPen(pal.color(QPalette.ColorRole.Mid)))
        p.drawRect(area)
        for run in runs(self.samples, self.gap):
            if run[-1][0] >= self.end - self.span:  # a run wholly before the window: none of it
                self._draw_run(p, area, run)
        p.setPen(QPen(pal.color(QPalette.ColorRole.WindowText)))
        p.drawText(QRectF(4, 0, self.width() - 8, text_height), Qt.AlignmentFlag.AlignVCenter,
                   self.caption())  # fmt: skip
        p.end()

    def _draw_run(self, p: QPainter, area: QRectF, samples: Sequence[Point]) -> None:
        points = polyline(
            samples,
            end=self.end,
            span=self.span,
            top=self.top,
            width=area.width(),
            height=area.height(),
        )
        if points:
            line = QPainterPath(QPointF(area.left() + points[0][0], area.top() + points[0][1]))
            for x, y in points[1:]:
                line.lineTo(QPointF(area.left() + x, area.top() + y))
            fill = QPainterPath(line)
            fill.lineTo(QPointF(area.left() + points[-1][0], area.bottom()))
            fill.lineTo(QPointF(area.left() + points[0][0], area.bottom()))
            fill.closeSubpath()
            shade = QColor(self.color)
            shade.setAlpha(60)
            p.fillPath(fill, shade)
            p.setPen(QPen(self.color, 2))
            p.drawPath(line)
