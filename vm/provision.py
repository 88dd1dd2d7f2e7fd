"""What reaches the guest at boot: a small "config disk" the guest unpacks.

The config disk is a plain tar archive written to a file and attached as a
read-only virtio disk; the guest runs ``tar -xf /dev/vdX``. That needs no
file system tools on the host and works with every hypervisor.

It carries the machine's identity and settings: hostname, the host's SSH
public key, the guest's SSH host key (made here, so the host pins it before
it ever connects), the network plan and dockerd's settings. It holds a
private key, so it is written user-only.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from moorage.vm.driver import Nic, SharedFolder
from moorage.vm.spec import GATE_PORT

# QEMU's user-mode network hands out these addresses; the guest sets them
# statically, which is quicker than DHCP and does not depend on its timing.
USER_NET_ADDRESS = "10.0.2.15/24"
USER_NET_GATEWAY = "10.0.2.2"
USER_NET_DNS = "10.0.2.3"


@dataclass(frozen=True)
class KeyPair:
    private: Path

    @property
    def public(self) -> Path:
        return self.private.with_name(self.private.name + ".pub")

    def public_line(self) -> str:
        return self.public.read_text().strip()


def ensure_keypair(path: Path, comment: str) -> KeyPair:
    """An Ed25519 key pair in OpenSSH format, private key mode 0600, made once."""
    pair = KeyPair(path)
    if path.exists() and pair.public.exists():
        return pair
    # Imported here: keys are made once per machine, and the agent that only
    # reuses them should not carry the library's memory for its whole life.
    from cryptography.hazmat.primitives import serialization  # noqa: PLC0415
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (  # noqa: PLC0415
        Ed25519PrivateKey,
    )

    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(private)
    pair.public.write_text(f"{public.decode()} {comment}\n")
    return pair


def network_plan(nics: Sequence[Nic]) -> str:
    """One line per NIC for the guest's boot script: ``MAC ADDRESS/PREFIX GATEWAY``."""
    lines = []
    for nic in nics:
        if nic.mode == "user":
            lines.append(f"{nic.mac} {USER_NET_ADDRESS} {USER_NET_GATEWAY}")
        else:
            raise ValueError(f"no address plan for a {nic.mode} NIC yet")
    return "\n".join(lines) + "\n"


def share_plan(shares: Sequence[SharedFolder], sshfs_folders: Sequence[Path] = ()) -> str:
    """One line per shared folder for the guest's boot script: ``MECHANISM<TAB>TAG<TAB>PATH``,
    mounted at the host's own path (sshfs ones by the host agent, after boot). Config
    validation keeps tabs and newlines out of paths."""
    lines = [f"virtiofs\t{s.tag}\t{s.host_path}\n" for s in shares]
    lines += [f"sshfs\t-\t{path}\n" for path in sshfs_folders]
    return "".join(lines)


def daemon_json(extra: Mapping[str, object]) -> str:
    """dockerd's settings: ours first, the user's ``[engine]`` table on top."""
    settings: dict[str, object] = {
        "hosts": ["unix:///var/run/docker.sock"],
        "data-root": "/var/lib/docker",
        "log-driver": "json-file",
        "log-opts": {"max-size": "10m", "max-file": "3"},
        "features": {"buildkit": True},
    }
    settings.update(extra)
    return json.dumps(settings, indent=2, sort_keys=True) + "\n"


def config_files(
    *,
    machine: str,
    hostname: str,
    authorized_key: str,
    host_key: KeyPair,
    nics: Sequence[Nic],
    engine: Mapping[str, object],
    shares: Sequence[SharedFolder] = (),
    sshfs_folders: Sequence[Path] = (),
    api_token: str,
    virtiofs_inodes: int | None = None,
) -> dict[str, tuple[bytes, int]]:
    """The config disk's files: name -> (content, mode). Pure apart from reading the keys.
    ``virtiofs_inodes``: the guest's budget of shared-folder inodes
    (``virtiofs.guest_inode_budget``); None without virtiofs folders."""
    env = (
        f"MOORAGE_MACHINE='{machine}'\nMOORAGE_HOSTNAME='{hostname}'\n"
        f"MOORAGE_GATE_PORT={GATE_PORT}\n"
    )
    if virtiofs_inodes:
        env += f"MOORAGE_VIRTIOFS_INODES={virtiofs_inodes}\n"
    return {
        "machine.env": (env.encode(), 0o644),
        "network.conf": (network_plan(nics).encode(), 0o644),
        "resolv.conf": (f"nameserver {USER_NET_DNS}\n".encode(), 0o644),
        "authorized_keys": ((authorized_key + "\n").encode(), 0o600),
        "ssh_host_ed25519_key": (host_key.private.read_bytes(), 0o600),
        "ssh_host_ed25519_key.pub": (host_key.public.read_bytes(), 0o644),
        "daemon.json": (daemon_json(engine).encode(), 0o644),
        "shares.conf": (share_plan(shares, sshfs_folders).encode(), 0o644),
        "docker-gate.token": ((api_token + "\n").encode(), 0o600),
    }


def write_config_disk(path: Path, files: Mapping[str, tuple[bytes, int]]) -> None:
    """Write ``files`` as a tar archive, user-only, replaced atomically."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, (content, mode) in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size = len(content)
            info.mode = mode
            info.mtime = 0
            tar.addfile(info, io.BytesIO(content))
    data = buf.getvalue()
    data += b"\0" * (-len(data) % 4096)  # whole sectors, whatever the disk's block size
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)
