"""Which host addresses and ports forward to which guest ports: pure functions.

The engine publishes a container port on the guest (``-p 8080:80`` makes the
guest's 8080 reach the container's 80); moorage makes the same port on the
host reach the guest's. Deciding *what* to forward is here, with no sockets,
and table-tested (lima's ``port.go``); the agent's watcher carries it out.

Rules:
- every published port is forwarded at the same number, TCP and UDP;
- a port the engine binds to loopback only (``-p 127.0.0.1:8080:80``) is
  forwarded on the host's loopback only;
- any other port binds the host's loopback too, unless the machine's config
  says ``expose_ports = true``, when it binds all host interfaces;
- swarm services' routing-mesh ports count like any other published port.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from moorage.types import Forward

LOOPBACK = "127.0.0.1"
ANY = "0.0.0.0"  # noqa: S104 - only when the user asks for it (expose_ports)
_LOOPBACK_IPS = {"127.0.0.1", "::1"}


def published(containers: Sequence[Mapping[str, Any]]) -> set[tuple[str, str, int]]:
    """(proto, host_ip, port) for each port published on the guest, from ``GET /containers/json``."""
    found = set()
    for container in containers:
        for port in container.get("Ports") or ():
            public = port.get("PublicPort")
            if public:
                found.add((str(port.get("Type", "tcp")), str(port.get("IP") or ""), int(public)))
    return found


def published_by_services(services: Sequence[Mapping[str, Any]]) -> set[tuple[str, str, int]]:
    """Ports swarm services publish through the routing mesh (``GET /services``).

    Host-mode ports belong to a task's container and are found by ``published``.
    """
    found = set()
    for service in services:
        endpoint = service.get("Endpoint") or {}
        for port in endpoint.get("Ports") or ():
            if port.get("PublishMode", "ingress") == "ingress" and port.get("PublishedPort"):
                found.add((str(port.get("Protocol", "tcp")), "", int(port["PublishedPort"])))
    return found


def desired(ports: Iterable[tuple[str, str, int]], *, expose: bool) -> set[Forward]:
    """The forwards the host should have for these published ports."""
    forwards = set()
    for proto, host_ip, port in ports:
        if proto not in ("tcp", "udp"):
            continue  # sctp: QEMU's user-mode network cannot carry it
        addr = LOOPBACK if host_ip in _LOOPBACK_IPS or not expose else ANY
        forwards.add(Forward(proto, addr, port, port))  # type: ignore[arg-type]
    return forwards


def plan(current: set[Forward], wanted: set[Forward]) -> tuple[set[Forward], set[Forward]]:
    """(to add, to remove) to go from ``current`` to ``wanted``."""
    return wanted - current, current - wanted


def describe(forward: Forward) -> str:
    return f"{forward.host_addr}:{forward.host_port}/{forward.proto}"
