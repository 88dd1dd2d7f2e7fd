"""The machine page's graphs: where each sample goes (a pure function), and that the
widget really draws it."""

from __future__ import annotations

from PySide6.QtGui import QColor, QImage  # noqa: TID251
from pytestqt.qtbot import QtBot

from moorage.desktop.graphs import Graph, polyline, runs


def test_points_run_left_to_right_in_time_and_bottom_to_top_in_value() -> None:
    samples = [(100.0, 0.0), (150.0, 50.0), (200.0, 100.0)]
    assert polyline(samples, end=200, span=100, top=100, width=200, height=50) == [
        (0.0, 50.0),
        (100.0, 25.0),
        (200.0, 0.0),
    ]


def test_older_samples_are_left_out_but_the_line_starts_at_the_left_edge() -> None:
    samples = [(0.0, 10.0), (50.0, 20.0), (120.0, 30.0), (200.0, 40.0)]
    points = polyline(samples, end=200, span=100, top=100, width=100, height=100)
    assert points == [(0.0, 80.0), (20.0, 70.0), (100.0, 60.0)]


def test_values_above_the_top_are_drawn_at_the_top_and_samples_come_in_any_order() -> None:
    samples = [(10.0, 250.0), (0.0, -5.0)]
    assert polyline(samples, end=10, span=10, top=100, width=10, height=10) == [
        (0.0, 10.0),
        (10.0, 0.0),
    ]


def test_nothing_to_draw() -> None:
    assert polyline([], end=10, span=10, top=100, width=10, height=10) == []
    assert polyline([(1.0, 1.0)], end=10, span=10, top=0, width=10, height=10) == []


def _colored(image: QImage, color: QColor) -> int:
    """Pixels close to ``color`` (the line, antialiased)."""
    n = 0
    for y in range(0, image.height(), 2):
        for x in range(0, image.width(), 2):
            c = image.pixelColor(x, y)
            if (
                abs(c.red() - color.red()) < 40
                and abs(c.green() - color.green()) < 40
                and abs(c.blue() - color.blue()) < 40
            ):
                n += 1
    return n


def test_the_graph_draws_its_line(qtbot: QtBot) -> None:
    graph = Graph("CPU", "%", "#d01010")
    qtbot.addWidget(graph)
    graph.resize(400, 160)
    empty = graph.grab().toImage()
    assert _colored(empty, QColor("#d01010")) == 0
    samples = [(float(t), 20.0 + (t % 7) * 10) for t in range(0, 600, 5)]
    graph.set_samples(samples, end=595, span=600, top=100)
    drawn = graph.grab().toImage()
    assert _colored(drawn, QColor("#d01010")) > 100
    assert graph.caption().startswith("CPU: 20.0 %")


def test_the_line_is_cut_where_nobody_looked() -> None:
    samples = [(30.0, 3.0), (0.0, 1.0), (5.0, 2.0), (35.0, 4.0)]
    assert runs(samples, gap=15) == [[(0.0, 1.0), (5.0, 2.0)], [(30.0, 3.0), (35.0, 4.0)]]
    assert runs(samples, gap=30) == [sorted(samples)]
    assert runs([], gap=15) == []
