"""The agent's typed events and the status it reports. Both travel as JSON.

Invariants:
- ``degraded`` implies the VM runs (the engine or a forwarder is unhealthy).
- ``running`` implies the engine answered through the host socket.
- ``crashed`` means the VM stopped without being asked to; data is on the
  data disk and ``moorage start`` boots it again.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

State = Literal["starting", "running", "degraded", "stopping", "stopped", "crashed"]
Kind = Literal["phase", "progress", "ready", "warning", "error", "state"]
PHASES = ("image", "vm", "kernel", "engine", "forwarders")


@dataclass(frozen=True)
class Event:
    """``phase`` events open a start phase; ``progress`` lines belong to the open one;
    ``ready`` ends a start; ``error`` ends it in failure; ``state`` reports any other change."""

    id: int
    kind: Kind
    message: str
    phase: str | None = None
    state: State | None = None
    time: float = field(default_factory=time.time)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Event:
        return cls(**data)


@dataclass
class Status:
    machine: str
    state: State = "stopped"
    phase: str | None = None
    driver: str = ""
    accel: str | None = None
    accel_reason: str | None = None
    cpus: int | None = None
    memory_gib: float | None = None
    disk_gib: int | None = None
    image: str | None = None
    engine_version: str | None = None
    docker_socket: str | None = None
    ssh_port: int | None = None
    agent_pid: int | None = None
    vm_pid: int | None = None
    phase_seconds: dict[str, float] = field(default_factory=dict)
    ports: list[str] = field(default_factory=list)
    """Forwarded host ports, e.g. ``127.0.0.1:8080/tcp``."""
    port_conflicts: list[str] = field(default_factory=list)
    """Published ports the host could not bind yet, with the reason."""
    file_sharing: str | None = None
    """The mechanism that shares host folders (``virtiofs``), or None when none are."""
    shared_folders: list[str] = field(default_factory=list)
    """Host folders mounted in the guest at the same path."""
    warnings: list[str] = field(default_factory=list)
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Status:
        return cls(**data)
