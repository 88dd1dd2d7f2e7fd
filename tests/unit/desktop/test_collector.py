"""The GUI-thread garbage collector: which generation is due, and that it takes the
automatic collector's place while it lives."""

from __future__ import annotations

import gc
import threading

from pytestqt.qtbot import QtBot

from moorage.desktop.collector import GuiThreadCollector, due_generation


def test_the_oldest_generation_past_its_threshold_is_due() -> None:
    assert due_generation((10, 0, 0), (700, 10, 10)) is None
    assert due_generation((701, 0, 0), (700, 10, 10)) == 0
    assert due_generation((701, 11, 0), (700, 10, 10)) == 1
    assert due_generation((701, 11, 11), (700, 10, 10)) == 2


def test_it_turns_automatic_collection_off_and_collects_on_its_timer(qtbot: QtBot) -> None:
    threads: list[threading.Thread] = []

    def seen(phase: str, _info: dict[str, int]) -> None:
        if phase == "start":
            threads.append(threading.current_thread())

    threshold = gc.get_threshold()
    collector = GuiThreadCollector(interval_ms=10)
    gc.callbacks.append(seen)
    try:
        assert not gc.isenabled()
        gc.set_threshold(1, 1, 1)
        garbage = [[[]] for _ in range(50)]  # containers: the counts pass the thresholds
        del garbage
        qtbot.waitUntil(lambda: len(threads) > 0, timeout=2000)
    finally:
        gc.callbacks.remove(seen)
        gc.set_threshold(*threshold)
        collector.stop()
    assert gc.isenabled()
    assert set(threads) == {threading.main_thread()}
