"""Backend ``qemu``: plain QEMU, no daemon. For hosts without libvirtd.

QEMU runs daemonized with a pid file and a QMP socket in the machine's
runtime folder (``run_root/NAME/``, which must be the spec's ``run_dir``), so
the VM outlives the host agent and a new agent can adopt it. Port forwards are
added at run time through QMP's human monitor (``hostfwd_add``), the same
mechanism the libvirt backend uses.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
from pathlib import Path

from moorage.errors import MachineError
from moorage.vm import virtiofs
from moorage.vm.driver import TCG_CPU_MODEL, DriverFeatures, MachineSpec, VMState
from moorage.vm.drivers.common import kill_and_wait, require_qemu, vm_name
from moorage.vm.drivers.hostfwd import MonitorForwards, hostfwd

FEATURES = DriverFeatures(
    name="qemu",
    needs_daemon=False,
    accelerators=("kvm", "tcg"),
    shared_folders=("virtiofs",),
    runtime_forwards=True,
    slow_start_seconds=None,
    slow_start_advice="",
)


def qemu_args(spec: MachineSpec, qemu: str) -> list[str]:
    """The full QEMU command line for ``spec``. Pure: the golden tests pin it."""
    run = spec.run_dir
    name = vm_name(spec.name)
    args = [
        qemu,
        "-name",
        f"{name},process={name}",
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

    def __init__(self, run_root: Path, qemu: str | None = None) -> None:
        """``run_root/NAME/`` is where machine NAME's pid file and QMP socket live: the
        driver finds a running VM there again, also one a previous agent started."""
        self._run_root = run_root
        self._qemu = qemu

    def check_host(self) -> None:
        self._binary()

    def _binary(self) -> str:
        return self._qemu or require_qemu()

    def _run_dir(self, name: str) -> Path:
        return self._run_root / name

    def start(self, spec: MachineSpec) -> None:
        qemu = self._binary()
        if spec.run_dir != self._run_dir(spec.name):
            # pid() and the forwards look in run_root/NAME: a VM started elsewhere
            # would run on, unseen, as "stopped".
            raise MachineError(
                f"the spec's run_dir {spec.run_dir} is not {self._run_dir(spec.name)}, "
                "where the qemu driver looks for the VM"
            )
        if self.state(spec.name) is VMState.RUNNING:
            raise MachineError(f"a VM named {spec.name!r} is already running")
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
        return pid if vm_name(name).encode() in cmdline else None

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
        kill_and_wait(lambda: self.pid(name) is not None)

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


def create(run_root: Path) -> QemuDriver:
    return QemuDriver(run_root)
