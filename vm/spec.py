"""From a machine's config and image to the ``MachineSpec`` a driver boots. Pure."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

from moorage.vm.driver import Accel, Disk, Forward, MachineSpec, Nic, SharedFolder
from moorage.vm.image.manifest import Manifest

ROOT_SERIAL = "moorage-root"
DATA_SERIAL = "moorage-data"
CONFIG_SERIAL = "moorage-config"


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
    ssh_port: int,
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
        cmdline=manifest.cmdline,
        disks=(
            Disk(image_dir / manifest.root, ROOT_SERIAL, readonly=True),
            Disk(data_disk, DATA_SERIAL),
            Disk(config_disk, CONFIG_SERIAL, readonly=True),
        ),
        nics=(Nic(mac=mac_for(name)),),
        serial_log=serial_log,
        run_dir=run_dir,
        accel=accel,
        forwards=(Forward("tcp", "127.0.0.1", ssh_port, 22),),
        shares=tuple(SharedFolder(f"moorage{i}", path) for i, path in enumerate(shares)),
        uid=uid,
        gid=gid,
    )
