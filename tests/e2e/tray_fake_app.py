"""The tray app over the fake agent (tests/helpers/fake_agent_client.py), on whatever
display ``DISPLAY`` names: for trying the real tray under Xvfb + trayer with no agent
and no VM, and for developing ``scripts/screenshots --fake`` and
``bench/desktop.py --fake``. It serves the same single-instance socket as ``moorage
tray`` (``$MOORAGE_HOME/run/tray.sock``), so ``ipc.send({"cmd": "describe"})`` reads
it and ``{"cmd": "quit"}`` ends it. The dashboard and the preferences dialog are the
real ones (``moorage.desktop.dashboard``, ``moorage.desktop.preferences``), over the
fake client; where one is not there, the app shows its "not available" box.

Run: MOORAGE_HOME=/tmp/x DISPLAY=:57 python tests/e2e/tray_fake_app.py [running|stopped|starting|trouble]
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from PySide6.QtWidgets import QApplication  # noqa: TID251

from moorage.api.schema import Status
from moorage.desktop import icons, ipc
from moorage.desktop.app import DesktopApp, _quit_on_signals
from tests.helpers.fake_agent_client import FakeAgentClient, cluster, running_status

STATES = ("running", "stopped", "starting", "trouble")


def client_in(state: str) -> FakeAgentClient:
    client = FakeAgentClient()
    if state == "stopped":
        client.agent = "absent"
        client.status_now = Status(machine="default")
    elif state == "starting":
        client.status_now = running_status(state="starting", phase="engine", operation="start")
    elif state == "trouble":
        client.status_now = running_status(
            state="degraded", warnings=["the engine stopped answering"]
        )
    client.cluster_list = [cluster()]
    return client


def main(state: str) -> int:
    if state not in STATES:
        print(f"usage: tray_fake_app.py [{'|'.join(STATES)}]", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    client = client_in(state)
    app = QApplication(["moorage"])
    app.setApplicationName("moorage")
    app.setQuitOnLastWindowClosed(False)
    app.setWindowIcon(icons.icon("running"))
    fake: Any = client  # the fake has AgentClient's methods, not its type
    desktop = DesktopApp(fake, engine=lambda _socket: client.docker, spawn=False)
    server = ipc.claim(desktop.handle, desktop)
    if server is None:
        print("another tray runs with this MOORAGE_HOME", file=sys.stderr)
        return 1
    keep = _quit_on_signals(app, desktop.quit)  # SIGTERM from a test or script ends it cleanly
    desktop.start()
    try:
        return app.exec()
    finally:
        server.close()
        del keep


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "running"))
