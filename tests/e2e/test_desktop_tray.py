"""The real tray on a real X display: ``moorage tray`` of the shared running machine,
under Xvfb with Debian's ``trayer`` as the tray host (tests/helpers/xvfb.py).

What the app says of itself is read over its single-instance socket
(``desktop/ipc.py``'s ``describe``); what is on the screen is read from X itself:
the windows with xwininfo and xdotool, the pixels from ``import`` screenshots. The
clicks are real X events (xdotool): right click on the icon opens the menu.

These tests need the shared machine running: they must run before test_machine.py's
last tests, which kill and delete it.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.helpers.xvfb import (
    PANEL_CLASS,
    App,
    Display,
    Window,
    commonest,
    display,
    drawn,
    missing_tools,
    pixels,
    running_app,
    share_unlike,
    windows,
)

from .conftest import Machine

START_TIMEOUT = 60
"""The tray's first answer: Qt and the app import, then status from the real agent."""


def tray_env(machine: Machine, d: Display) -> dict[str, str]:
    """The machine's environment (its MOORAGE_HOME) on display ``d``."""
    env = {
        k: v
        for k, v in machine.env.items()
        if k not in ("DBUS_SESSION_BUS_ADDRESS", "WAYLAND_DISPLAY")
    }
    env.update(DISPLAY=d.env["DISPLAY"], QT_QPA_PLATFORM="xcb")
    return env


def tray_argv(machine: Machine) -> list[str]:
    return ["moorage", "tray", "--machine", machine.name]


@contextmanager
def tray_of(machine: Machine, d: Display, tmp: Path) -> Iterator[App]:
    """``moorage tray --machine NAME`` on ``d``, answering; quit afterwards."""
    home = Path(machine.env["MOORAGE_HOME"])
    with running_app(
        tray_argv(machine),
        tray_env(machine, d),
        socket=home / "run" / "tray.sock",
        output=tmp / "tray.out",
        log=home / "data" / "tray.log",
        timeout=START_TIMEOUT,
    ) as app:
        yield app


@pytest.fixture(autouse=True)
def x_tools() -> None:
    if missing := missing_tools():
        pytest.fail(f"{', '.join(missing)} missing (scripts/install-deps --dev installs them)")


@pytest.fixture
def running(machine: Machine) -> Machine:
    proc = machine.moorage("status", "--json", check=False)
    state = json.loads(proc.stdout).get("state") if proc.returncode == 0 else proc.stderr.strip()
    if state != "running":
        pytest.fail(
            f"the shared machine is {state!r}: test_tray.py must run before test_machine.py's "
            "last tests, which kill and delete it"
        )
    return machine


@pytest.fixture
def screen() -> Iterator[Display]:
    with display(tray=True) as d:
        yield d


def test_the_icon_sits_in_the_tray_drawn_with_the_machines_state(
    running: Machine, screen: Display, tmp_path: Path
) -> None:
    with tray_of(running, screen, tmp_path) as tray:
        d = tray.until(
            lambda d: d["tray_visible"] and "running" in d["status_line"],
            "the icon shown with the running machine's status",
        )
        assert d["tray_available"] is True  # QSystemTrayIcon.isSystemTrayAvailable() in the app
        assert d["dashboard_visible"] is False
        assert d["machine"] == running.name
        assert d["icon"] == "running"
        assert d["connection"] == "ok"
        assert d["pid"] == tray.proc.pid  # the app this test started (moorage tray execs it)
        environ = Path(f"/proc/{d['pid']}/environ").read_bytes().split(b"\0")
        assert f"DISPLAY={screen.name}".encode() in environ
        icons = screen.tray_icons(timeout=20)
        assert len(icons) == 1, f"icons of the app in trayer's panel: {icons}\n{screen.tree()}"
        [icon] = icons
        assert icon.width >= 16 and icon.height >= 16, icon
        panel = next(w for w in windows(screen.tree()) if w.cls == PANEL_CLASS)
        shot = screen.screenshot(tmp_path / "root.png")
        background = commonest(pixels(shot, panel))  # the panel is mostly empty
        drawn_share = share_unlike(background, pixels(shot, icon))
        assert drawn_share > 0.15, (
            f"the icon's rectangle {icon} is {1 - drawn_share:.0%} the panel's colour {background}"
        )


def test_right_click_on_the_icon_opens_the_menu(
    running: Machine, screen: Display, tmp_path: Path
) -> None:
    with tray_of(running, screen, tmp_path) as tray:
        d = tray.until(
            lambda d: d["tray_visible"] and "running" in d["status_line"], "the icon shown"
        )
        icons = screen.tray_icons(timeout=20)
        assert len(icons) == 1, f"icons of the app in trayer's panel: {icons}\n{screen.tree()}"
        [icon] = icons
        rows = sum(len(s["items"]) for s in d["menu"])
        assert rows >= 8, d["menu"]
        before = screen.visible()
        screen.click(*icon.centre, button=3)
        menu = opened_menu(screen, tray, before, rows)
        assert screen.override_redirect(menu.id), f"{menu} is a top-level window, not a menu"
        assert tray.ask("describe")["dashboard_visible"] is False
        # Painted: under a loaded CPU the first frame may come a moment after the map.
        deadline = time.monotonic() + 10
        while drawn(picture := screen.capture(menu.id, tmp_path / "menu.png")) <= 0.02:
            assert time.monotonic() < deadline, f"the menu window {menu} looks blank ({picture})"
            time.sleep(0.2)
        screen.run("xdotool", "key", "Escape")
        deadline = time.monotonic() + 20
        while menu.id in screen.visible():
            assert time.monotonic() < deadline, f"Escape did not close the menu\n{tray.logs()}"
            time.sleep(0.1)


def opened_menu(screen: Display, tray: App, before: set[str], rows: int) -> Window:
    """The window the right click opened: new since ``before``, with room for one row
    per item of the model's sections (a menu, not the icon's tooltip); AssertionError
    naming every new window and the app's log when none comes within 20 s."""
    deadline = time.monotonic() + 20
    while True:
        seen: list[Window] = []
        for wid in sorted(screen.visible() - before):
            with contextlib.suppress(subprocess.CalledProcessError):  # gone meanwhile
                seen.append(screen.geometry(wid))
        for w in seen:
            if w.height >= rows * 15 and w.width >= 100:
                return w
        if time.monotonic() > deadline:
            raise AssertionError(
                f"no menu of {rows} rows opened within 20 s; new windows: {seen}\n{tray.logs()}"
            )
        time.sleep(0.05)


def test_a_second_launch_shows_the_first_ones_dashboard_and_exits_0(
    running: Machine, screen: Display, tmp_path: Path
) -> None:
    with tray_of(running, screen, tmp_path) as tray:
        first = tray.until(lambda d: d["tray_visible"], "the icon shown")
        assert first["dashboard_visible"] is False
        second = subprocess.run(
            tray_argv(running),
            env=tray_env(running, screen),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert second.returncode == 0, second.stdout + second.stderr
        assert "already runs: its dashboard is shown" in second.stdout, second.stdout
        d = tray.until(lambda d: d["dashboard_visible"], "the first tray's dashboard shown")
        assert d["pid"] == first["pid"] == tray.proc.pid  # moorage tray execs the app
        assert tray.proc.poll() is None
        assert len(screen.tray_icons()) == 1, "the second launch left an icon of its own"
        window = d["windows"]["dashboard"]
        assert hex(window) in screen.visible()
        picture = screen.capture(window, tmp_path / "dashboard.png")
        assert drawn(picture) > 0.02, f"the dashboard window looks blank ({picture})"


def test_without_a_tray_host_the_dashboard_opens_instead(running: Machine, tmp_path: Path) -> None:
    with display(tray=False) as bare, tray_of(running, bare, tmp_path) as tray:
        d = tray.until(lambda d: d["dashboard_visible"], "the dashboard shown, for want of a tray")
        assert d["tray_available"] is False
        assert d["tray_visible"] is False
        assert not any('"panel"' in w.cls for w in windows(bare.tree()))
        window = d["windows"]["dashboard"]
        assert hex(window) in bare.visible()
        picture = bare.capture(window, tmp_path / "dashboard.png")
        assert drawn(picture) > 0.02, f"the dashboard window looks blank ({picture})"
