"""A real X display with a system tray, for the tray's end-to-end test, its benchmark
and ``scripts/screenshots``: Xvfb and Debian's ``trayer`` (an XEmbed tray host) on it.

``QT_QPA_PLATFORM=offscreen`` and bare Xvfb have no tray (FIELD-NOTES, "Trays under
Xvfb"); with trayer running, ``QSystemTrayIcon.isSystemTrayAvailable()`` is true and
the icon is a window embedded in trayer's panel, which ``xwininfo -root -tree`` lists
and ``import -window root`` photographs. There is no window manager: a top-level
window is mapped where the app puts it, and a menu is an override-redirect window of
the app's class. No Qt here: windows are found with xwininfo and xdotool, pixels read
through ImageMagick, so this works from any process.
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import shutil
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TOOLS = ("Xvfb", "trayer", "xwininfo", "xev", "import", "convert", "identify", "xdotool", "stdbuf")
"""Debian packages xvfb, trayer, x11-utils, imagemagick, xdotool (scripts/install-deps
--dev); Qt's xcb plugin also needs libxcb-cursor0, libxcb-icccm4 and libxcb-keysyms1."""
PANEL_CLASS = '"panel" "trayer"'
APP_CLASS = "moorage"
_WINDOW = re.compile(
    r"^(?P<indent>\s*)(?P<id>0x[0-9a-f]+) (?:\"(?P<name>[^\"]*)\"|\(has no name\)): "
    r"\((?P<cls>[^)]*)\)\s+(?P<w>\d+)x(?P<h>\d+)\+-?\d+\+-?\d+\s+\+(?P<x>-?\d+)\+(?P<y>-?\d+)"
)
RGB = tuple[int, int, int]


def missing_tools() -> list[str]:
    return [t for t in TOOLS if shutil.which(t) is None]


@dataclass(frozen=True)
class Window:
    id: str
    name: str
    cls: str
    x: int
    y: int
    width: int
    height: int
    depth: int = 0
    """Indentation in ``xwininfo -tree``: deeper is further down the tree."""

    @property
    def centre(self) -> tuple[int, int]:
        return self.x + self.width // 2, self.y + self.height // 2


def windows(tree: str) -> list[Window]:
    """Every window of ``xwininfo -root -tree``, with absolute positions."""
    found = []
    for line in tree.splitlines():
        m = _WINDOW.match(line)
        if m:
            found.append(Window(m["id"], m["name"] or "", m["cls"], int(m["x"]), int(m["y"]),
                                int(m["w"]), int(m["h"]), len(m["indent"])))  # fmt: skip
    return found


def embedded(tree: str, app: str = APP_CLASS) -> list[Window]:
    """The windows of ``app`` embedded in trayer's panel (its tray icons)."""
    found: list[Window] = []
    panel: Window | None = None
    for w in windows(tree):
        if panel is not None and w.depth <= panel.depth:
            panel = None
        if w.cls == PANEL_CLASS:
            panel = w
        elif panel is not None and f'"{app}"' in w.cls:
            found.append(w)
    return found


def _wid(window: str | int) -> str:
    return window if isinstance(window, str) else hex(window)


@dataclass
class Display:
    number: int
    env: dict[str, str]
    """The environment for a process on this display (DISPLAY set, no session bus)."""

    @property
    def name(self) -> str:
        return f":{self.number}"

    def run(self, *argv: str, timeout: float = 30) -> str:
        return subprocess.run(argv, env=self.env, capture_output=True, text=True,
                              timeout=timeout, check=True).stdout  # fmt: skip

    def tree(self) -> str:
        return self.run("xwininfo", "-root", "-tree")

    def screenshot(self, path: Path) -> Path:
        """The whole screen (the root window with everything mapped on it)."""
        self.run("import", "-window", "root", str(path))
        return path

    def capture(self, window: str | int, path: Path) -> Path:
        """One window, by its X id."""
        self.run("import", "-window", _wid(window), str(path))
        return path

    def tray_icons(self, timeout: float = 20, app: str = APP_CLASS) -> list[Window]:
        """The app's icons in the tray, once there is at least one (or [] at the timeout)."""
        deadline = time.monotonic() + timeout
        while True:
            icons = embedded(self.tree(), app)
            if icons or time.monotonic() > deadline:
                return icons
            time.sleep(0.1)

    def visible(self, app: str = APP_CLASS) -> set[str]:
        """The ids of the app's windows that are viewable now (tray icon included)."""
        proc = subprocess.run(["xdotool", "search", "--onlyvisible", "--class", app],
                              env=self.env, capture_output=True, text=True, timeout=10, check=False)  # fmt: skip
        # xdotool prints decimal ids and exits 1 when none matched
        return {hex(int(w)) for w in proc.stdout.split()}

    def geometry(self, window: str | int) -> Window:
        """Where ``window`` is, from ``xwininfo -id``."""
        out = self.run("xwininfo", "-id", _wid(window))

        def field(label: str) -> int:
            m = re.search(rf"^\s*{label}:\s*(-?\d+)", out, re.MULTILINE)
            assert m, f"no {label} in xwininfo -id {window}:\n{out}"
            return int(m[1])

        name = re.search(r'xwininfo: Window id: \S+ "([^"]*)"', out)
        return Window(_wid(window), name[1] if name else "", "", field("Absolute upper-left X"),
                      field("Absolute upper-left Y"), field("Width"), field("Height"))  # fmt: skip

    def override_redirect(self, window: str | int) -> bool:
        """Whether ``window`` is a popup (a menu, a tooltip) that no window manager
        would manage, rather than a top-level window."""
        return "Override Redirect State: yes" in self.run("xwininfo", "-id", _wid(window))

    def move_pointer(self, x: int, y: int) -> None:
        self.run("xdotool", "mousemove", str(x), str(y))

    def click(self, x: int, y: int, button: int = 1) -> None:
        self.run("xdotool", "mousemove", str(x), str(y), "click", str(button))

    def new_window(self, before: set[str], timeout: float = 10, poll: float = 0.005) -> str:
        """The first of the app's windows to become viewable that was not in ``before``
        (``visible()`` taken before the action); AssertionError at the timeout."""
        deadline = time.monotonic() + timeout
        while True:
            new = self.visible() - before
            if new:
                return sorted(new)[0]
            if time.monotonic() > deadline:
                raise AssertionError(f"no new window of the app within {timeout:.0f}s")
            time.sleep(poll)


def pixels(image: Path, w: Window) -> list[RGB]:
    """The RGB of every pixel of ``w``'s rectangle in ``image`` (ImageMagick's txt)."""
    out = subprocess.run(
        ["convert", str(image), "-crop", f"{w.width}x{w.height}+{w.x}+{w.y}", "+repage",
         "-depth", "8", "txt:-"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    found = []
    for line in out.splitlines()[1:]:
        m = re.search(r"#([0-9A-Fa-f]{6})", line)
        if m:
            v = int(m[1], 16)
            found.append((v >> 16, (v >> 8) & 0xFF, v & 0xFF))
    return found


def all_pixels(image: Path) -> list[RGB]:
    size = subprocess.run(["identify", "-format", "%w %h", str(image)],
                          capture_output=True, text=True, check=True).stdout.split()  # fmt: skip
    return pixels(image, Window("", "", "", 0, 0, int(size[0]), int(size[1])))


def commonest(found: list[RGB]) -> RGB:
    return Counter(found).most_common(1)[0][0]


def share_unlike(colour: RGB, found: list[RGB], within: int = 24) -> float:
    """The share of ``found`` farther than ``within`` (in some channel) from ``colour``."""
    far = [p for p in found if any(abs(a - b) > within for a, b in zip(p, colour, strict=True))]
    return len(far) / max(1, len(found))


def drawn(image: Path) -> float:
    """How much of ``image`` is not its commonest colour: 0 for a blank picture, about
    0.05-0.3 for a menu or a window of text and controls."""
    found = all_pixels(image)
    return share_unlike(commonest(found), found)


@contextmanager
def display(tray: bool = True, width: int = 1280, height: int = 800) -> Iterator[Display]:
    """Xvfb on a display number it picks itself (``-displayfd``: no race with another
    run), and unless ``tray`` is False trayer's panel at the top right; both ended
    afterwards."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("DBUS_SESSION_BUS_ADDRESS", "WAYLAND_DISPLAY")}  # fmt: skip
    # No session bus: Qt 6 would use a StatusNotifierItem watcher on it instead of XEmbed.
    procs: list[subprocess.Popen[bytes]] = []
    read, write = os.pipe()
    try:
        procs.append(subprocess.Popen(
            ["Xvfb", "-displayfd", str(write), "-screen", "0", f"{width}x{height}x24",
             "-nolisten", "tcp"],
            env=env, pass_fds=(write,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        ))  # fmt: skip
        os.close(write)
        write = -1
        with os.fdopen(read, "rb") as pipe:
            read = -1
            number = pipe.readline().strip()  # written once the server accepts clients
        if not number:
            raise RuntimeError("Xvfb did not start (it wrote no display number)")
        env.update(DISPLAY=f":{int(number)}", QT_QPA_PLATFORM="xcb")
        d = Display(int(number), env)
        if tray:
            procs.append(subprocess.Popen(
                ["trayer", "--edge", "top", "--align", "right", "--widthtype", "pixel",
                 "--width", "160", "--height", "32", "--SetDockType", "true",
                 "--transparent", "false"],
                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            ))  # fmt: skip
            deadline = time.monotonic() + 15
            while f"({PANEL_CLASS})" not in d.tree():
                if procs[1].poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("trayer did not show its panel")
                time.sleep(0.05)
        yield d
    finally:
        for fd in (read, write):
            if fd >= 0:
                os.close(fd)
        for p in reversed(procs):
            p.terminate()
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


display_with_tray = display


def ended(proc: subprocess.Popen[bytes] | subprocess.Popen[str], timeout: float = 10) -> int:
    """Wait for ``proc``; terminate it (then kill it) if it does not end in time."""
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            return proc.wait(5)
        proc.kill()
        return proc.wait()


class MapWatch:
    """The moments windows are mapped on a display, as X reports them: ``xev -root
    -event substructure`` prints a MapNotify for every child of the root window that is
    mapped (a top-level window, a menu), read here as it arrives. Polling with xdotool
    instead would add a process start (≈10 ms) to each look."""

    def __init__(self, d: Display) -> None:
        self._proc = subprocess.Popen(
            ["stdbuf", "-oL", "xev", "-root", "-event", "substructure"],
            env=d.env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        assert self._proc.stdout is not None
        self._fd = self._proc.stdout.fileno()
        self._buffer = b""
        time.sleep(0.3)  # xev selects its events after it starts; nothing is mapped meanwhile
        self.drain()

    def _lines(self, timeout: float) -> Iterator[tuple[str, float]]:
        deadline = time.monotonic() + timeout
        while True:
            while b"\n" in self._buffer:
                line, self._buffer = self._buffer.split(b"\n", 1)
                yield line.decode(errors="replace"), time.monotonic()
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._fd], [], [], left)[0]:
                return
            chunk = os.read(self._fd, 65536)
            if not chunk:
                return
            self._buffer += chunk

    def drain(self) -> None:
        """Forget what was mapped so far."""
        for _ in self._lines(0.05):
            pass

    def mapped(self, timeout: float = 10) -> tuple[str, float]:
        """The next window mapped (its id) and the ``time.monotonic()`` its MapNotify was
        read at; AssertionError at the timeout."""
        seen_map = False
        for line, at in self._lines(timeout):
            if line.startswith("MapNotify"):
                seen_map = True
            elif seen_map and (m := re.search(r"\bwindow (0x[0-9a-f]+)", line)):
                return m[1], at
        raise AssertionError(f"no window was mapped within {timeout:.0f}s")

    def close(self) -> None:
        self._proc.terminate()
        self._proc.wait(5)


@dataclass
class App:
    """The tray app running on a display, asked over its single-instance socket
    (``desktop/ipc.py``): ``describe``, ``dashboard``, ``preferences``, ``quit``."""

    proc: subprocess.Popen[bytes]
    socket: Path
    output: Path
    """Its stdout and stderr."""
    log: Path | None = None
    """Its own log file (``tray.log``), for failure reports."""

    def send(self, cmd: str, **fields: Any) -> dict[str, Any] | None:
        from moorage.desktop import ipc  # noqa: PLC0415 - ipc's client half is a plain socket

        return ipc.send({"cmd": cmd, **fields}, path=self.socket, timeout=10)

    def ask(self, cmd: str, **fields: Any) -> dict[str, Any]:
        answer = self.send(cmd, **fields)
        assert answer is not None, f"the tray does not answer on {self.socket}\n{self.logs()}"
        assert answer.get("ok"), f"{cmd}: {answer}"
        return answer

    def until(
        self, what: Callable[[dict[str, Any]], bool], why: str, timeout: float = 30
    ) -> dict[str, Any]:
        """``describe`` once ``what(describe)`` holds; AssertionError with the last answer."""
        deadline = time.monotonic() + timeout
        while True:
            d = self.ask("describe")
            if what(d):
                return d
            if time.monotonic() > deadline:
                d.pop("menu", None)
                raise AssertionError(
                    f"not within {timeout:.0f}s: {why}\nlast describe: {d}\n{self.logs()}"
                )
            time.sleep(0.1)

    def logs(self) -> str:
        parts = []
        for path in (self.output, self.log):
            if path is None:
                continue
            try:
                parts.append(f"--- {path}\n{path.read_text(errors='replace')[-4000:]}")
            except OSError as exc:
                parts.append(f"--- {path}: {exc}")
        return "\n".join(parts)


@contextmanager
def running_app(
    argv: list[str],
    env: dict[str, str],
    socket: Path,
    output: Path,
    log: Path | None = None,
    timeout: float = 60,
) -> Iterator[App]:
    """Start the tray app (``argv`` with ``env``: a display's, plus its MOORAGE_HOME),
    wait until it answers on ``socket``, and ask it to quit afterwards."""
    with output.open("wb") as out:
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
    app = App(proc, socket, output, log)
    try:
        deadline = time.monotonic() + timeout
        while app.send("ping") is None:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"the tray did not start (exit {proc.poll()})\n{app.logs()}")
            time.sleep(0.1)
        yield app
    finally:
        if proc.poll() is None:
            app.send("quit")
        ended(proc, 20)
