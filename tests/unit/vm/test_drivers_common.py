"""What the backends share, and how a backend is picked by name."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from moorage.errors import HostError, MachineError
from moorage.vm import drivers
from moorage.vm.driver import DriverFeatures, MachineSpec, VMState
from moorage.vm.drivers import common
from moorage.vm.drivers.libvirt import LibvirtDriver
from moorage.vm.drivers.qemu import QemuDriver


def test_the_vm_name_is_prefixed() -> None:
    assert common.vm_name("default") == "moorage-default"


def test_missing_qemu_is_a_host_error_with_its_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(HostError) as info:
        common.require_qemu()
    assert info.value.message == "qemu-system-x86_64 is not installed"
    assert info.value.fix is not None and "apt-get install qemu-system-x86" in info.value.fix


def test_qemu_on_the_path_is_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    qemu = tmp_path / "qemu-system-x86_64"
    qemu.write_text("#!/bin/sh\n")
    qemu.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert common.require_qemu() == str(qemu)


def test_kill_and_wait_returns_once_the_vm_is_gone() -> None:
    answers = iter([True, True, False])
    asked: list[bool] = []

    def running() -> bool:
        asked.append(True)
        return next(answers)

    common.kill_and_wait(running, timeout=5)
    assert len(asked) == 3


def test_kill_and_wait_gives_up_after_its_timeout() -> None:
    asked: list[bool] = []

    def running() -> bool:
        asked.append(True)
        return True

    common.kill_and_wait(running, timeout=0.2)
    assert 2 <= len(asked) <= 10


def test_an_unknown_driver_names_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(MachineError) as info:
        drivers.get("hyperkit-please", tmp_path)
    assert "unknown driver 'hyperkit-please'" in str(info.value)
    assert info.value.fix == "use one of: libvirt, qemu"


def test_each_backend_is_built_with_the_run_root(tmp_path: Path) -> None:
    qemu = drivers.get("qemu", tmp_path)
    assert isinstance(qemu, QemuDriver) and qemu.features.name == "qemu"
    libvirt = drivers.get("libvirt", tmp_path)
    assert isinstance(libvirt, LibvirtDriver) and libvirt.features.name == "libvirt"


def test_slow_starts_are_declared_as_data(tmp_path: Path) -> None:
    libvirt = drivers.get("libvirt", tmp_path).features
    assert libvirt.slow_start_seconds == 20
    assert "--kvm-unusable" in libvirt.slow_start_advice
    qemu = drivers.get("qemu", tmp_path).features
    assert (qemu.slow_start_seconds, qemu.slow_start_advice) == (None, "")
    with pytest.raises(ValueError, match="go together"):
        DriverFeatures("x", False, ("tcg",), (), False, slow_start_seconds=5)


@pytest.fixture
def vm_process() -> Iterator[subprocess.Popen[bytes]]:
    """A process whose command line holds "moorage-default", as QEMU's does."""
    proc = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(30)", "moorage-default"]
    )
    # Popen may return while the kernel is still setting up the new program, with
    # /proc/PID/cmdline empty for a moment.
    cmdline = Path(f"/proc/{proc.pid}/cmdline")
    deadline = time.monotonic() + 5
    while b"moorage-default" not in cmdline.read_bytes() and time.monotonic() < deadline:
        time.sleep(0.01)
    yield proc
    proc.kill()
    proc.wait()


def test_the_qemu_driver_finds_its_vm_under_the_run_root(
    tmp_path: Path, vm_process: subprocess.Popen[bytes]
) -> None:
    driver = QemuDriver(tmp_path)
    assert driver.state("default") is VMState.STOPPED  # no pid file yet
    (tmp_path / "default").mkdir()
    (tmp_path / "default" / "qemu.pid").write_text(f"{vm_process.pid}\n")
    assert driver.pid("default") == vm_process.pid
    assert driver.pid("other") is None
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "qemu.pid").write_text(f"{vm_process.pid}\n")
    assert driver.pid("other") is None, "a pid whose command line is not moorage-other's"
    driver.kill("default")
    assert vm_process.wait(timeout=5) != 0
    assert driver.state("default") is VMState.STOPPED


def test_the_qemu_driver_refuses_a_run_dir_it_would_not_look_in(tmp_path: Path) -> None:
    driver = QemuDriver(tmp_path / "run", qemu="/bin/false")
    spec = MachineSpec(
        name="default",
        cpus=1,
        memory_mib=512,
        kernel=tmp_path / "k",
        initrd=tmp_path / "i",
        cmdline="",
        disks=(),
        nics=(),
        serial_log=tmp_path / "serial.log",
        run_dir=tmp_path / "elsewhere",
    )
    with pytest.raises(MachineError, match="where the qemu driver looks"):
        driver.start(spec)
    assert not (tmp_path / "elsewhere").exists()
