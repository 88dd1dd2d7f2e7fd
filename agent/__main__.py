"""``python -m moorage.agent NAME``: the host agent process of machine NAME."""

from __future__ import annotations

import fcntl
import logging
import os
import signal
import sys
import threading
import time
from types import FrameType

from moorage.agent.health import Repairs, watch_vm_forever
from moorage.agent.machine import MachineAgent
from moorage.agent.server import serve
from moorage.paths import MachinePaths, check_machine_name, private_dir

IDLE_EXIT = 120.0
"""An agent with no VM to look after, no operation and no client for this long exits:
clients start one when they need it (``moorage doctor`` does, for one answer)."""
EXIT_GRACE = 3.0


def main(argv: list[str]) -> int:
    name = check_machine_name(argv[1] if len(argv) > 1 else "default")
    paths = MachinePaths(name)
    private_dir(paths.run)
    private_dir(paths.state)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("urllib3").setLevel(logging.WARNING)
    log = logging.getLogger("moorage.agent")

    # One agent per machine: the pid file is also the lock (clients test it to tell a
    # crashed agent from a busy one, and never start a second).
    pid_file = os.open(paths.agent_pid, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(pid_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        log.error("another agent already runs machine %r", name)
        return 1
    os.ftruncate(pid_file, 0)
    os.write(pid_file, f"{os.getpid()}\n".encode())

    agent = MachineAgent(name)
    server = serve(agent, paths.agent_socket)
    log.info("agent %d serving %s", os.getpid(), paths.agent_socket)

    def on_term(_sig: int, _frame: FrameType | None) -> None:
        # The host is going down or someone asked us to end: take the VM down cleanly.
        threading.Thread(target=agent.request, args=("stop",), daemon=True).start()

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    done = threading.Event()
    threading.Thread(target=watch_vm_forever, args=(agent, done), name="vm-watch",
                     daemon=True).start()  # fmt: skip
    threading.Thread(target=Repairs(agent).forever, args=(done,), name="repairs",
                     daemon=True).start()  # fmt: skip
    threading.Thread(target=agent.updates.forever, args=(done,), name="update-check",
                     daemon=True).start()  # fmt: skip
    while not agent.exit_requested.wait(5):
        quiet = time.monotonic() - agent.last_activity
        if quiet > IDLE_EXIT and server.streams == 0 and agent.status_now() and agent.idle():
            log.info("nothing to look after for %.0fs", quiet)
            break
    done.set()
    # A client that asked for the operation which ends us is about to follow its
    # events: keep answering a moment, so that it reads the end instead of a hang-up.
    grace = time.monotonic()
    while time.monotonic() - grace < EXIT_GRACE and (
        server.streams > 0 or time.monotonic() - grace < 0.5
    ):
        time.sleep(0.05)
    server.shutdown()
    server.server_close()
    paths.agent_socket.unlink(missing_ok=True)
    log.info("agent exiting")
    os.ftruncate(pid_file, 0)
    os.close(pid_file)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
