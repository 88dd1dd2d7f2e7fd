"""Backend ``qemu``: plain QEMU, no daemon. For hosts without libvirtd.

QEMU runs daemonized with a pid file and a QMP socket in the machine's
runtime folder, so the VM outlives the host agent and a new agent can adopt
it. Port forwards are added at run time through QMP's human monitor
(``hostfwd_add``), the same mechanism the libvirt backend uses.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

from moorage.errors import HostError, MachineError
from moorage.vm import virtiofs
from moorage.vm.accel import find_qemu
from moorage.vm.driver import TCG_CPU_MODEL, DriverFeatures, MachineSpec, VMState
from moorage.vm.drivers.hostfwd import MonitorForwards, hostfwd

FEATURES = DriverFeatures(
    name="qemu",
    needs_daemon=False,
    accelerators=("kvm", "tcg"),
    shared_folders=("virtiofs",),
    runtime_forwards=True,
)


def qemu_args(spec: MachineSpec, qemu: str) -> list[str]:
    """The full QEMU command line for ``spec``. Pure: the golden tests pin it."""
    run = spec.run_dir
    args = [
        qemu,
        "-name",
        f"moorage-{spec.name},process=moorage-{spec.name}",
        "-machine",
        "q35",
        "-accel",
        spec.accel,
        "-cpu",
        "host" if spec.accel == "kvm" else TCG_CPU_MODEL,
        "-smp",
        str(spec.cpus),
        "-m",
        f"{spec.memory_mib}M",
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-vga",
        "none",
        "-kernel",
        str(spec.kernel),
        "-initrd",
        str(spec.initrd),
        "-append",
        spec.cmdline,
        "-serial",
        f"file:{spec.serial_log}",
        "-object",
        "rng-random,id=rng0,filename=/dev/urandom",
        "-device",
        "virtio-rng-pci,rng=rng0",
        "-qmp",
        f"unix:{run / 'qmp.sock'},server=on,wait=off",
        "-pidfile",
        str(run / "qemu.pid"),
        "-daemonize",
    ]
    for i, disk in enumerate(spec.disks):
        ro = ",readonly=on" if disk.readonly else ",discard=unmap"
        args += [
            "-drive",
            f"if=none,id=disk{i},file={disk.path},format=raw,cache=writeback{ro}",
            "-device",
            f"virtio-blk-pci,drive=disk{i},serial={disk.serial}",
        ]
    if spec.shares:
        # vhost-user devices (virtiofs) need guest RAM that virtiofsd can map too.
        args += [
            "-object",
            f"memory-backend-memfd,id=mem,size={spec.memory_mib}M,share=on",
            "-numa",
            "node,memdev=mem",
        ]
    for i, share in enumerate(spec.shares):
        args += [
            "-chardev",
            f"socket,id=vfs{i},path={virtiofs.socket_path(run, share)}",
            "-device",
            f"vhost-user-fs-pci,queue-size=1024,chardev=vfs{i},tag={share.tag}",
        ]
    for i, nic in enumerate(spec.nics):
        if nic.mode != "user":
            raise MachineError(
                "the qemu driver has no private networks yet; use the libvirt driver"
            )
        fwds = "".join(f",hostfwd={hostfwd(f)}" for f in spec.forwards) if i == 0 else ""
        args += [
            "-netdev",
            f"user,id=net{i}{fwds}",
            "-device",
            f"virtio-net-pci,netdev=net{i},mac={nic.mac}",
        ]
    return args


class QemuDriver(MonitorForwards):
    features = FEATURES
    netdev = "net0"

    def __init__(self, qemu: str | None = None) -> None:
        self._qemu = qemu

    def check_host(self) -> None:
        if self._binary() is None:
            raise HostError(
                "qemu-system-x86_64 is not installed",
                fix="install it (on Debian/Ubuntu: sudo apt-get install qemu-system-x86)",
            )

    def _binary(self) -> str | None:
        return self._qemu or find_qemu()

    def _run_dir(self, name: str) -> Path:
        from moorage.paths import MachinePaths  # noqa: PLC0415 - keeps the driver importable alone

        return MachinePaths(name).run

    def start(self, spec: MachineSpec) -> None:
        self.check_host()
        if self.state(spec.name) is VMState.RUNNING:
            raise MachineError(f"a VM named {spec.name!r} is already running")
        qemu = self._binary()
        assert qemu is not None
        spec.run_dir.mkdir(parents=True, exist_ok=True)
        (spec.run_dir / "qemu.pid").unlink(missing_ok=True)
        (spec.run_dir / "qmp.sock").unlink(missing_ok=True)
        with virtiofs.serving(spec):
            proc = subprocess.run(
                qemu_args(spec, qemu), capture_output=True, text=True, check=False
            )
            if proc.returncode != 0:
                raise MachineError(f"QEMU refused to start: {proc.stderr.strip()}")

    def pid(self, name: str) -> int | None:
        try:
            pid = int((self._run_dir(name) / "qemu.pid").read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError):
            return None
        return pid if f"moorage-{name}".encode() in cmdline else None

    def state(self, name: str) -> VMState:
        return VMState.RUNNING if self.pid(name) is not None else VMState.STOPPED

    def kill(self, name: str) -> None:
        pid = self.pid(name)
        if pid is None:
            return
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + 10
        while self.pid(name) is not None and time.monotonic() < deadline:
            time.sleep(0.05)

    def _hmp(self, name: str, command: str) -> str:
        path = self._run_dir(name) / "qmp.sock"
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(10)
            s.connect(str(path))
            f = s.makefile("rw")
            json.loads(f.readline())  # greeting
            for msg in (
                {"execute": "qmp_capabilities"},
                {"execute": "human-monitor-command", "arguments": {"command-line": command}},
            ):
                f.write(json.dumps(msg) + "\n")
                f.flush()
                while True:
                    reply = json.loads(f.readline())
                    if "return" in reply or "error" in reply:
                        break
            if "error" in reply:
                raise MachineError(f"QEMU refused {command!r}: {reply['error']}")
            return str(reply["return"])


def create() -> QemuDriver:
    return QemuDriver()
