"""``moorage tray`` and ``moorage dashboard``: the desktop app (``desktop/``).

The CLI stays free of Qt (every other command starts fast, and the layers keep the
two clients apart), so these hand the process over to ``python -m moorage.desktop``
with ``exec``: same pid, same terminal, the app's exit status. The app starts the
machine's host agent if none runs, and a second launch shows the first one's
dashboard (one tray per user).
"""

from __future__ import annotations

import os
import sys

import click

from moorage.cli.common import friendly, machine_option
from moorage.paths import check_machine_name

PAGES = ("containers", "images", "volumes", "logs", "swarm", "machine")
"""The dashboard's pages (moorage.desktop.dashboard.PAGES: a unit test keeps them equal; the
CLI cannot import the desktop, which imports Qt)."""


def _exec(command: str, machine: str, page: str | None = None) -> None:
    argv = [
        sys.executable,
        "-m",
        "moorage.desktop",
        command,
        "--machine",
        check_machine_name(machine),
    ]
    if page:
        argv += ["--page", page]
    os.execv(sys.executable, argv)


@click.command()
@machine_option
@friendly
def tray(machine: str) -> None:
    """The tray icon and menu (starts the host agent; one per user)."""
    _exec("tray", machine)


@click.command()
@machine_option
@click.option("--page", type=click.Choice(PAGES), help="Open this page.")
@friendly
def dashboard(machine: str, page: str | None) -> None:
    """Open the dashboard (of the running tray, or a new one)."""
    _exec("dashboard", machine, page)
