"""The tray's icons: one look per state, the starting one turning only while starting."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtGui import QColor, QImage  # noqa: TID251
from pytestqt.qtbot import QtBot

from moorage.desktop import icons


def colour_at(img: QImage, x: float, y: float) -> QColor:
    return img.pixelColor(int(img.width() * x), int(img.height() * y))


def test_each_state_has_its_own_look() -> None:
    seen = {state: icons.image(state, 64) for state in ("running", "stopped", "starting",
                                                        "trouble")}  # fmt: skip
    badge = {s: colour_at(img, 0.66, 0.76).name() for s, img in seen.items()}
    assert badge["running"] == "#2fbf71"
    assert badge["trouble"] == "#e5484d"
    assert colour_at(seen["stopped"], 0.2, 0.5).name() == "#5b6470"  # the grey tile
    assert colour_at(seen["running"], 0.2, 0.5).name() == "#1d4e89"
    assert len({img.constBits().tobytes() for img in seen.values()}) == 4


def test_starting_turns_on_a_timer_and_the_other_states_wake_none(qtbot: QtBot) -> None:
    animator = icons.Animator()
    frames: list[bytes] = []
    animator.changed.connect(lambda icon: frames.append(
        icon.pixmap(32, 32).toImage().constBits().tobytes()))  # fmt: skip
    animator.set_state("starting")
    assert animator.animating
    qtbot.waitUntil(lambda: len(frames) >= 4, timeout=2000)
    assert len(set(frames)) >= 3  # it moves
    animator.set_state("running")
    assert not animator.animating
    count = len(frames)
    qtbot.wait(3 * icons.FRAME_MS)
    assert len(frames) == count


def test_the_theme_sizes_are_written_in_the_hicolor_layout(tmp_path: Path) -> None:
    written = icons.write_theme(tmp_path)
    assert [p.relative_to(tmp_path).as_posix() for p in written] == [
        f"hicolor/{n}x{n}/apps/moorage.png" for n in icons.THEME_SIZES
    ]
    img = QImage(str(written[-1]))
    assert img.width() == 512 and colour_at(img, 0.5, 0.9).alpha() == 255


def test_the_shipped_icons_are_the_drawn_ones() -> None:
    """installers/assets/icons is written by `python -m moorage.desktop.icons`."""
    shipped = Path(__file__).parents[3] / "installers" / "assets" / "icons" / "hicolor"
    for n in icons.THEME_SIZES:
        img = QImage(str(shipped / f"{n}x{n}" / "apps" / "moorage.png"))
        assert (img.width(), img.height()) == (n, n)
