"""The tray app's cost and speed, on a real X display (Xvfb, trayer as the tray host).

With the bench machine running and ``moorage tray`` on the display:
- idle: the tray process's RSS (/proc/PID/status) and CPU (/proc/PID/stat) over
  ``seconds`` (60) with the dashboard closed; goal <= 120 MB and < 0.2 % of a core;
- the menu: from a right click on the icon (xdotool) to the menu's window mapped, as X
  reports it (xev); goal <= 100 ms;
- the dashboard: from the ``dashboard`` request (desktop/ipc.py, what a second launch
  and the menu's item do) to its window mapped, the first time (its module imported,
  its pages built) and again after it is closed; goal <= 500 ms.
Both times include starting xdotool or sending the request (printed: the start of an
xdotool that does nothing). ``--fake`` runs tests/e2e/tray_fake_app.py instead (no
agent, no VM): for working on this script, not for the figures.
Run: python bench/desktop.py [seconds] [--fake]
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import HOME, NAME, cpu_seconds, ensure_machine, env, header, median, rss_mb

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.helpers.xvfb import App, Display, MapWatch, display, missing_tools, running_app  # noqa: E402

MENU_ROUNDS = 10
DASHBOARD_ROUNDS = 5


def xdotool_start(d: Display) -> float:
    """How long an xdotool that does nothing takes (its process start), in seconds."""
    times = []
    for _ in range(5):
        began = time.monotonic()
        d.run("xdotool", "getmouselocation")
        times.append(time.monotonic() - began)
    return median(times)


def mapped_big(watch: MapWatch, d: Display, min_height: int = 100) -> tuple[str, float]:
    """The next window mapped that is not a tooltip (at least ``min_height`` tall)."""
    while True:
        window, at = watch.mapped(timeout=10)
        if d.geometry(window).height >= min_height:
            return window, at


def menu_times(d: Display, watch: MapWatch) -> list[float]:
    [icon] = d.tray_icons(timeout=30)
    x, y = icon.centre
    times = []
    for _ in range(MENU_ROUNDS):
        d.move_pointer(10, 400)  # off the icon: no tooltip
        time.sleep(0.5)
        watch.drain()
        began = time.monotonic()
        click = subprocess.Popen(["xdotool", "mousemove", str(x), str(y), "click", "3"],
                                 env=d.env)  # fmt: skip
        menu, at = mapped_big(watch, d)
        times.append(at - began)
        click.wait(10)
        d.run("xdotool", "key", "Escape")
        deadline = time.monotonic() + 5
        while menu in d.visible() and time.monotonic() < deadline:
            time.sleep(0.05)
    return times


def dashboard_times(app: App, d: Display, watch: MapWatch) -> tuple[float, list[float]]:
    """The first open, then ``DASHBOARD_ROUNDS`` opens after a close."""
    times = []
    for _ in range(1 + DASHBOARD_ROUNDS):
        time.sleep(1)
        watch.drain()
        began = time.monotonic()
        app.ask("dashboard")
        window, at = mapped_big(watch, d)
        times.append(at - began)
        shown = app.ask("describe")["windows"]
        assert int(window, 16) == shown.get("dashboard"), f"{window} mapped, not the dashboard"
        time.sleep(1)  # its first answers come in and are drawn
        app.ask("close")
        app.until(lambda s: not s["dashboard_visible"], "the dashboard closed", timeout=10)
    return times[0], times[1:]


def verdict(ok: bool) -> str:
    return "ok" if ok else "OVER THE GOAL"


def main() -> None:
    args = [a for a in sys.argv[1:] if a != "--fake"]
    fake = "--fake" in sys.argv[1:]
    seconds = float(args[0]) if args else 60
    if missing := missing_tools():
        sys.exit(f"{', '.join(missing)} missing: scripts/install-deps --dev installs them")
    with tempfile.TemporaryDirectory(prefix="moorage-bench-desktop-") as t:
        tmp = Path(t)
        if fake:
            os.environ["MOORAGE_HOME"] = str(tmp / "home")
            argv = [sys.executable, str(ROOT / "tests" / "e2e" / "tray_fake_app.py")]
            print(
                f"# the tray app's cost, over the FAKE agent (not for the figures); {seconds:.0f} s idle"
            )
            home = tmp / "home"
        else:
            ensure_machine()
            header(f"the tray app's cost: idle {seconds:.0f} s, menu and dashboard times")
            os.environ.update(env())
            argv = ["moorage", "tray", "--machine", NAME]
            home = HOME
        with (
            display(tray=True) as d,
            running_app(argv, d.env, home / "run" / "tray.sock", tmp / "tray.out",
                        home / "data" / "tray.log") as app,
        ):  # fmt: skip
            started = app.until(
                lambda s: s["tray_visible"] and s["connection"] == "ok"
                and (fake or "running" in s["status_line"]),
                "the icon shown with the running machine", timeout=60,
            )  # fmt: skip
            pid = started["pid"]
            assert pid == app.proc.pid, "the socket's tray is not the one started here"
            time.sleep(10)  # the first answers of the agent and the engine are in
            before = cpu_seconds(pid)
            time.sleep(seconds)
            idle_cpu = 100 * (cpu_seconds(pid) - before) / seconds
            idle_rss = rss_mb(pid)
            assert not app.ask("describe")["dashboard_visible"]

            watch = MapWatch(d)
            try:
                spawn = xdotool_start(d)
                menus = menu_times(d, watch)
                first, again = dashboard_times(app, d, watch)
            finally:
                watch.close()
            after_rss = rss_mb(pid)

    ms = 1000
    print(
        f"tray process      RSS {idle_rss:6.1f} MB idle  (goal <= 120 MB)  {verdict(idle_rss <= 120)}"
    )
    print(f"                  RSS {after_rss:6.1f} MB after the menu and the dashboard were opened")
    print(f"idle CPU          {idle_cpu:5.2f} % of a core over {seconds:.0f} s, dashboard closed  "
          f"(goal < 0.2 %)  {verdict(idle_cpu < 0.2)}")  # fmt: skip
    print(f"click -> menu     median {median(menus) * ms:5.1f} ms, max {max(menus) * ms:5.1f} ms "
          f"over {len(menus)}  (goal <= 100 ms)  {verdict(median(menus) <= 0.1)}")  # fmt: skip
    print(f"dashboard request -> mapped: first {first * ms:5.1f} ms  (goal <= 500 ms)  "
          f"{verdict(first <= 0.5)}; again median {median(again) * ms:5.1f} ms, "
          f"max {max(again) * ms:5.1f} ms over {len(again)}")  # fmt: skip
    print(f"(both include starting xdotool or sending the request; an idle xdotool takes "
          f"{spawn * ms:.1f} ms)")  # fmt: skip


if __name__ == "__main__":
    main()
