"""Missing host tools and services are named with their fix, and nothing is lost."""

from __future__ import annotations

import shutil
import socket
from pathlib import Path

import pytest

from moorage.engine.docker_socket import claim_socket_path
from moorage.errors import HostError
from moorage.vm import disks
from moorage.vm.drivers.libvirt import LibvirtDriver
from moorage.vm.drivers.qemu import QemuDriver


def test_missing_qemu_names_the_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(HostError) as info:
        QemuDriver(tmp_path).check_host()
    assert "qemu-system-x86_64 is not installed" in str(info.value)
    assert "apt-get install qemu-system-x86" in str(info.value)


def test_libvirtd_not_running_names_the_fix(tmp_path: Path) -> None:
    pytest.importorskip("libvirt")
    driver = LibvirtDriver(uri=f"qemu+unix:///system?socket={tmp_path}/no-libvirt-sock")
    with pytest.raises(HostError) as info:
        driver.check_host()
    text = str(info.value)
    assert "cannot reach libvirt" in text
    assert "libvirtd" in text and 'driver = "qemu"' in text


def test_a_busy_socket_path_is_refused_and_a_stale_one_cleared(tmp_path: Path) -> None:
    path = tmp_path / "docker.sock"
    with socket.socket(socket.AF_UNIX) as live:
        live.bind(str(path))
        live.listen()
        with pytest.raises(HostError, match="already in use by another process"):
            claim_socket_path(path)
        assert path.exists()
    claim_socket_path(path)  # nobody listens any more: a stale file
    assert not path.exists()


def test_no_disk_space_for_a_new_disk_names_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    usage = shutil._ntuple_diskusage(100 << 30, 100 << 30, 1 << 20)  # type: ignore[attr-defined]
    monkeypatch.setattr(disks.shutil, "disk_usage", lambda _p: usage)
    with pytest.raises(HostError, match="free some disk space"):
        disks.ensure_data_disk(tmp_path / "data.img", 64)
    assert not (tmp_path / "data.img").exists()
