"""Keeps the host's forwards equal to the ports the engine publishes.

Follows the engine's event stream (docker-py, through the host socket) and,
on every container start, stop or death, every swarm service change, and
after its own start, reconciles
the *whole* set with ``ports.desired``; the agent's health loop reconciles
again every 15 s, so nothing is missed if an event is lost or the agent
restarted, and nothing is left behind. A host port that cannot be
bound (busy, or privileged for this user) is kept as a conflict and tried
again on every ``retry``, so the forward appears as soon as the port frees.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import docker

from moorage.docker_api import api_client
from moorage.engine import ports
from moorage.errors import MoorageError
from moorage.types import Forward

log = logging.getLogger("moorage.ports")

PortChange = Literal["added", "removed", "conflict", "resolved"]
PortReport = Callable[[PortChange, Forward, str], None]
"""Told of every change to the forwards, as data: what changed, which forward, and a
sentence for a person (for a conflict: why the port cannot be bound, and the fix)."""
_EVENTS = (
    "start",
    "stop",
    "die",
    "kill",
    "pause",
    "unpause",
    "destroy",
    "create",
    "update",
    "remove",
)


class PortWatcher:
    def __init__(
        self,
        socket: Path,
        add: Callable[[Forward], None],
        remove: Callable[[Forward], None],
        *,
        expose: bool,
        report: PortReport,
        existing: set[Forward] | None = None,
    ) -> None:
        """``existing``: forwards the VM already has (an adopted VM's), reconciled like ours."""
        self._socket = socket
        self._add, self._remove = add, remove
        self._expose = expose
        self._report = report
        self._lock = threading.Lock()
        self._active: set[Forward] = set(existing or ())
        self.conflicts: dict[Forward, str] = {}
        self._stop = threading.Event()
        self._client: docker.APIClient | None = None

    @property
    def active(self) -> list[str]:
        with self._lock:
            return sorted(ports.describe(f) for f in self._active)

    def conflict_list(self) -> list[str]:
        """The conflicts' reasons, read under the lock that guards them."""
        with self._lock:
            return sorted(self.conflicts.values())

    def start(self) -> None:
        threading.Thread(target=self._follow, name="ports", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()
        if self._client is not None:
            self._client.close()

    def _follow(self) -> None:
        while not self._stop.is_set():
            try:
                self._client = api_client(self._socket, timeout=None)
                events = self._client.events(
                    decode=True, filters={"type": ["container", "service"]}
                )
                self.reconcile()
                for event in events:
                    if self._stop.is_set():
                        return
                    if event.get("Action") in _EVENTS or event.get("status") in _EVENTS:
                        self.reconcile()
            except Exception as exc:  # the stream breaks for many reasons: follow it again
                if self._stop.is_set():
                    return
                log.warning("engine event stream broke (%s); following it again", exc)
            self._stop.wait(2)

    def reconcile(self) -> None:
        """Bring the forwards in line with what the engine publishes now."""
        # One reconcile at a time, asking and acting under one lock: a slower one that
        # asked earlier must not undo what a later one did.
        with self._lock:
            client = api_client(self._socket, timeout=30)
            try:
                found = ports.published(client.containers())
                try:
                    # Asked without looking at /info first, which costs the guest a
                    # runc run: an engine that is no swarm manager answers 503.
                    found |= ports.published_by_services(client.services())
                except docker.errors.APIError as exc:
                    # Seen after `docker swarm leave --force`: /services answered 500
                    # for minutes. Containers' ports must not wait for the swarm to
                    # settle; services' come back when it does.
                    if exc.status_code != 503:
                        log.warning("the engine does not list its services (%s)", exc)
                wanted = ports.desired(found, expose=self._expose)
            finally:
                client.close()
            to_add, to_remove = ports.plan(self._active, wanted)
            for forward in to_remove:
                try:
                    self._remove(forward)
                except MoorageError as exc:
                    # Still bound: keep it, so that the next reconcile removes it.
                    log.warning("removing %s: %s", ports.describe(forward), exc)
                    continue
                self._active.discard(forward)
                self._report("removed", forward, f"host port {ports.describe(forward)} closed")
            for forward in list(self.conflicts):
                if forward not in wanted:
                    del self.conflicts[forward]
            self._add_all(to_add)

    def retry(self) -> None:
        """Try the conflicting forwards again (the health loop calls this)."""
        with self._lock:
            self._add_all(set(self.conflicts))

    def _add_all(self, forwards: set[Forward]) -> None:
        for forward in sorted(forwards, key=lambda f: (f.host_port, f.proto)):
            try:
                self._add(forward)
            except MoorageError:
                if forward not in self.conflicts:
                    reason = _why_unbindable(forward)
                    self.conflicts[forward] = reason
                    self._report("conflict", forward, reason)
                continue
            self._active.add(forward)
            where = ports.describe(forward)
            if self.conflicts.pop(forward, None) is not None:
                self._report("resolved", forward, f"host port {where} is free now and forwarded")
            self._report("added", forward, f"host port {where} forwarded")


def _why_unbindable(forward: Forward) -> str:
    where = ports.describe(forward)
    if forward.host_port < 1024 and os.getuid() != 0:
        return (
            f"host port {where} is privileged and this user cannot bind it; the container runs "
            "but is not reachable there: publish a port >= 1024, or allow it with "
            "`sudo sysctl net.ipv4.ip_unprivileged_port_start=PORT`"
        )
    return (
        f"host port {where} is already in use on the host; the container keeps running and "
        "the forward is made as soon as the port frees"
    )
