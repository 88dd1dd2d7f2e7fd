"""The one-node swarm on the machine's own engine: ``moorage swarm init|leave|status``.

The machine's engine becomes a swarm manager of one; services published with ``-p``
reach the host's loopback like containers' ports do (the agent's port watcher reads
them from ``/services``). The node advertises its user-mode network address, the
only one the guest has that is not a bridge of its own.
"""

from __future__ import annotations

from collections.abc import Callable

import docker

from moorage.api.schema import SwarmInfo
from moorage.errors import SwarmError
from moorage.swarm.engines import Client, opened, speaking
from moorage.swarm.spec import ADDR_POOL


def info(machine: Callable[[], Client]) -> SwarmInfo:
    with opened(machine) as m, speaking("the machine's engine"):
        swarm = m.info().get("Swarm") or {}
        state = str(swarm.get("LocalNodeState") or "inactive")
        services = len(m.services()) if swarm.get("ControlAvailable") else 0
    return SwarmInfo(
        state=state,
        node_id=swarm.get("NodeID") or None,
        address=swarm.get("NodeAddr") or None,
        managers=int(swarm.get("Managers") or 0),
        nodes=int(swarm.get("Nodes") or 0),
        services=services,
        error=swarm.get("Error") or None,
    )


def init(machine: Callable[[], Client], advertise: str) -> SwarmInfo:
    current = info(machine)
    if current.state == "active":
        return current
    with opened(machine) as m, speaking("swarm init"):
        m.init_swarm(advertise_addr=advertise, default_addr_pool=[ADDR_POOL], subnet_size=24)
    return info(machine)


def leave(machine: Callable[[], Client], force: bool) -> SwarmInfo:
    with opened(machine) as m:
        try:
            m.leave_swarm(force=force)
        except docker.errors.APIError as exc:
            text = str(exc.explanation or exc)
            if "not part of a swarm" not in text:
                raise SwarmError(
                    f"swarm leave: {text}",
                    fix="`moorage swarm leave --force` leaves anyway (its services go)"
                    if "force" in text
                    else None,
                ) from exc
    return info(machine)
