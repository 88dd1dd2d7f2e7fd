"""The agent's health: a VM watch that nothing can starve, and bounded repairs.

Two threads, so that no repair can hide a dead VM:

- the **VM watch** asks the hypervisor process itself (``kill(pid, 0)``) every
  second and declares a crash at once (``MachineAgent.watch_vm``); it never waits on
  the guest, the engine or a lock an operation holds;
- the **repairs** rebuild what broke while the VM runs: the SSH link (with a bounded
  deadline), sshfs mounts, port conflicts, the engine check and port reconcile every
  ``PING_EVERY``, the guest clock every ``CLOCK_EVERY`` and after the host slept. They
  run only between operations, never beside a start or a stop.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING

from moorage.errors import MoorageError

if TYPE_CHECKING:
    from moorage.agent.machine import MachineAgent

log = logging.getLogger("moorage.agent")

WATCH_EVERY = 1.0
REPAIR_EVERY = 2.0
REPAIR_LINK_SECONDS = 20.0
PING_EVERY = 15.0
CLOCK_EVERY = 60.0
SLEEP_JUMP = 5.0


def watch_vm_forever(agent: MachineAgent, stop: threading.Event) -> None:
    while not stop.wait(WATCH_EVERY):
        try:
            agent.watch_vm()
        except Exception:
            log.exception("VM watch")


class Repairs:
    def __init__(self, agent: MachineAgent) -> None:
        self.agent = agent
        now = time.monotonic()
        self.last_ping = self.last_clock = self.prev_mono = now
        self.prev_wall = time.time()

    def forever(self, stop: threading.Event) -> None:
        while not stop.wait(REPAIR_EVERY):
            try:
                self.tick()
            except MoorageError as exc:
                log.warning("repair: %s", exc)
            except Exception:
                log.exception("repair failed")

    def tick(self) -> None:
        now, wall = time.monotonic(), time.time()
        # The monotonic clock stops while the host sleeps and the wall clock does not:
        # a gap between them means the guest's clock fell behind too.
        jumped = abs((wall - self.prev_wall) - (now - self.prev_mono)) > SLEEP_JUMP
        self.prev_mono, self.prev_wall = now, wall
        agent = self.agent
        if agent.state() not in ("running", "degraded"):
            return
        if not agent._op_lock.acquire(blocking=False):
            return  # an operation runs: it owns the links now
        try:
            self._repair(now, jumped)
        finally:
            agent._op_lock.release()

    def _repair(self, now: float, jumped: bool) -> None:
        agent = self.agent
        guest = agent.guest
        if guest is not None and not guest.alive():
            agent.warn("guest-link", "the SSH connection to the guest died; reconnecting")
            guest.connect(time.monotonic() + REPAIR_LINK_SECONDS, give_up=agent.give_up)
        mounts = agent.sshfs
        if mounts is not None:
            for folder in mounts.dead():
                agent.warn("sshfs-remount", f"the sshfs mount of {folder} died; mounting it again")
                mounts.remount(folder)
        ports = agent.ports
        if ports is not None and ports.conflict_list():
            ports.retry()
        if now - self.last_ping >= PING_EVERY:
            self.last_ping = now
            agent.check_engine()
            if ports is not None:
                ports.reconcile()
        if jumped or now - self.last_clock >= CLOCK_EVERY:
            self.last_clock = now
            agent.sync_clock()
