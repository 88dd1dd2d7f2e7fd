"""From a machine's config and image to the ``MachineSpec`` a driver boots. Pure."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from moorage.types import Forward
from moorage.vm.driver import Accel, Disk, MachineSpec, Nic, SharedFolder, guest_cmdline
from moorage.vm.image.manifest import Manifest

ROOT_SERIAL = "moorage-root"
DATA_SERIAL = "moorage-data"
CONFIG_SERIAL = "moorage-config"
GUEST_SSH_PORT = 22
GATE_PORT = 2375
"""Where the guest's docker gate (``vm/image/guest/docker-gate.pl``) listens."""


@dataclass(frozen=True)
class GuestReach:
    """How the host reaches a running guest: forwards from its loopback to sshd and to
    the docker gate, and the gate's token. Recorded so a new agent can adopt the VM."""

    ssh_port: int
    api_port: int
    api_token: str

    @property
    def host_ports(self) -> tuple[int, int]:
        return (self.ssh_port, self.api_port)

    def forwards(self) -> tuple[Forward, ...]:
        return (
            Forward("tcp", "127.0.0.1", self.ssh_port, GUEST_SSH_PORT),
            Forward("tcp", "127.0.0.1", self.api_port, GATE_PORT),
        )

    def record(self) -> dict[str, Any]:
        return {"ssh_port": self.ssh_port, "api_port": self.api_port, "api_token": self.api_token}

    @classmethod
    def from_record(cls, record: Mapping[str, Any] | None) -> GuestReach | None:
        """None for a record without it (none, or written by an older moorage)."""
        if record is None:
            return None
        try:
            return cls(int(record["ssh_port"]), int(record["api_port"]), str(record["api_token"]))
        except (KeyError, TypeError, ValueError):
            return None


def mac_for(machine: str, index: int = 0) -> str:
    """A stable, locally administered MAC per machine and NIC (QEMU's 52:54:00 prefix)."""
    digest = hashlib.sha256(f"{machine}/{index}".encode()).digest()
    return "52:54:00:" + ":".join(f"{b:02x}" for b in digest[:3])


def machine_spec(
    *,
    name: str,
    cpus: int,
    memory_mib: int,
    image_dir: Path,
    manifest: Manifest,
    data_disk: Path,
    config_disk: Path,
    serial_log: Path,
    run_dir: Path,
    accel: Accel,
    reach: GuestReach,
    uid: int,
    gid: int,
    shares: Sequence[Path] = (),
) -> MachineSpec:
    return MachineSpec(
        name=name,
        cpus=cpus,
        memory_mib=memory_mib,
        kernel=image_dir / manifest.kernel,
        initrd=image_dir / manifest.initrd,
        cmdline=guest_cmdline(manifest.cmdline, accel),
        disks=(
            Disk(image_dir / manifest.root, ROOT_SERIAL, readonly=True),
            Disk(data_disk, DATA_SERIAL),
            Disk(config_disk, CONFIG_SERIAL, readonly=True),
        ),
        nics=(Nic(mac=mac_for(name)),),
        serial_log=serial_log,
        run_dir=run_dir,
        accel=accel,
        forwards=reach.forwards(),
        shares=tuple(SharedFolder(f"moorage{i}", path) for i, path in enumerate(shares)),
        uid=uid,
        gid=gid,
    )
