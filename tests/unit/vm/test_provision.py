from __future__ import annotations

import json
import tarfile
from pathlib import Path

from moorage.vm import provision
from moorage.vm.driver import Nic, SharedFolder


def test_keypair_is_openssh_ed25519_and_private(tmp_path: Path) -> None:
    pair = provision.ensure_keypair(tmp_path / "ssh" / "id", "me@test")
    assert pair.private.stat().st_mode & 0o777 == 0o600
    assert pair.private.read_text().startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    assert pair.public_line().startswith("ssh-ed25519 ") and pair.public_line().endswith(" me@test")
    again = provision.ensure_keypair(tmp_path / "ssh" / "id", "me@test")
    assert again.public_line() == pair.public_line()


def test_config_disk_carries_the_machine(tmp_path: Path) -> None:
    host_key = provision.ensure_keypair(tmp_path / "hk", "guest")
    files = provision.config_files(
        machine="dev",
        hostname="moorage-dev",
        authorized_key="ssh-ed25519 AAAA me",
        host_key=host_key,
        nics=[Nic(mac="52:54:00:aa:bb:cc")],
        engine={"debug": True},
        shares=[
            SharedFolder("moorage0", Path("/home/ann")),
            SharedFolder("moorage1", Path("/w s")),
        ],
        sshfs_folders=[Path("/srv/x")],
        api_token="ab" * 32,
        virtiofs_inodes=10_000,
    )
    disk = tmp_path / "config.tar"
    provision.write_config_disk(disk, files)
    assert disk.stat().st_mode & 0o777 == 0o600
    assert disk.stat().st_size % 4096 == 0
    with tarfile.open(disk) as tar:
        names = {m.name: m for m in tar.getmembers()}
        assert names["ssh_host_ed25519_key"].mode == 0o600
        assert names["docker-gate.token"].mode == 0o600
        token = tar.extractfile("docker-gate.token").read()  # type: ignore[union-attr]
        net = tar.extractfile("network.conf").read().decode()  # type: ignore[union-attr]
        daemon = json.loads(tar.extractfile("daemon.json").read())  # type: ignore[union-attr]
        env = tar.extractfile("machine.env").read().decode()  # type: ignore[union-attr]
        shares = tar.extractfile("shares.conf").read().decode()  # type: ignore[union-attr]
    assert net == "52:54:00:aa:bb:cc 10.0.2.15/24 10.0.2.2\n"
    assert daemon["debug"] is True and daemon["hosts"] == ["unix:///var/run/docker.sock"]
    assert "MOORAGE_HOSTNAME='moorage-dev'" in env
    assert "MOORAGE_VIRTIOFS_INODES=10000" in env
    assert "MOORAGE_GATE_PORT=2375" in env and token == b"ab" * 32 + b"\n"
    assert shares == ("virtiofs\tmoorage0\t/home/ann\nvirtiofs\tmoorage1\t/w s\nsshfs\t-\t/srv/x\n")
