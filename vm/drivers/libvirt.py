"""Backend ``libvirt``: KVM/QEMU through libvirtd, the default on Linux.

The domain is *transient* (``createXML``): it exists while it runs and
leaves no stale definition behind; the host agent owns the machine's
lifetime, not libvirt. The hypervisor runs as the user who owns the machine
(a static DAC label), so it reads the user's image and disks in place, also
under ``qemu:///system`` where QEMU would otherwise be ``libvirt-qemu``.

libvirt 9 (Debian 12) cannot declare port forwards on a user-mode NIC
(``<portForward>`` needs the passt backend it rejects), so forwards are added
through the QEMU monitor after start, as with the plain qemu backend. libvirt
marks such a domain "tainted"; that is expected.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar
from xml.etree import ElementTree as ET

from moorage.errors import HostError, MachineError
from moorage.vm import virtiofs
from moorage.vm.driver import TCG_CPU_MODEL, DriverFeatures, MachineSpec, VMState
from moorage.vm.drivers.common import kill_and_wait, require_qemu, vm_name
from moorage.vm.drivers.hostfwd import MonitorForwards

FEATURES = DriverFeatures(
    name="libvirt",
    needs_daemon=True,
    accelerators=("kvm", "tcg"),
    shared_folders=("virtiofs",),
    runtime_forwards=True,
    slow_start_seconds=20,
    slow_start_advice=(
        "Where /dev/kvm exists but KVM cannot run guests, libvirt 9 re-probes QEMU on every "
        'start: run scripts/libvirtd-up --kvm-unusable once, or set driver = "qemu"'
    ),
)
T = TypeVar("T")
GONE_TIMEOUT = 10.0
"""How long a start waits for a shut-off domain to be undefined."""


def default_uri() -> str:
    """root talks to the system daemon; a user gets a per-user session daemon, no sudo."""
    return os.environ.get("MOORAGE_LIBVIRT_URI") or (
        "qemu:///system" if os.getuid() == 0 else "qemu:///session"
    )


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    el = ET.SubElement(parent, tag, attrs)
    if text is not None:
        el.text = text
    return el


def domain_xml(spec: MachineSpec, emulator: str, *, run_as_owner: bool = True) -> str:
    """The libvirt domain for ``spec``. Pure: the golden tests pin it.

    ``run_as_owner`` labels the domain so that QEMU runs as ``spec.uid``; the
    system daemon needs it (it would run QEMU as libvirt-qemu), a user's
    session daemon runs QEMU as that user already.
    """
    dom = ET.Element("domain", type="kvm" if spec.accel == "kvm" else "qemu")
    _sub(dom, "name", vm_name(spec.name))
    _sub(dom, "memory", str(spec.memory_mib), unit="MiB")
    _sub(dom, "vcpu", str(spec.cpus))
    if spec.shares:
        # vhost-user devices (virtiofs) need guest RAM that virtiofsd can map too.
        backing = _sub(dom, "memoryBacking")
        _sub(backing, "source", type="memfd")
        _sub(backing, "access", mode="shared")
    os_el = _sub(dom, "os")
    _sub(os_el, "type", "hvm", arch="x86_64", machine="q35")
    _sub(os_el, "kernel", str(spec.kernel))
    _sub(os_el, "initrd", str(spec.initrd))
    _sub(os_el, "cmdline", spec.cmdline)
    features = _sub(dom, "features")
    _sub(features, "acpi")
    if spec.accel == "kvm":
        _sub(dom, "cpu", mode="host-passthrough")
    else:
        cpu = _sub(dom, "cpu", mode="custom", match="exact")
        _sub(cpu, "model", TCG_CPU_MODEL, fallback="forbid")
    _sub(dom, "clock", offset="utc")
    _sub(dom, "on_poweroff", "destroy")
    _sub(dom, "on_reboot", "restart")
    _sub(dom, "on_crash", "destroy")
    devices = _sub(dom, "devices")
    _sub(devices, "emulator", emulator)
    for i, disk in enumerate(spec.disks):
        d = _sub(devices, "disk", type="file", device="disk")
        driver = {"name": "qemu", "type": "raw", "cache": "writeback"}
        if not disk.readonly:
            driver["discard"] = "unmap"
        _sub(d, "driver", **driver)
        _sub(d, "source", file=str(disk.path))
        _sub(d, "target", dev=f"vd{chr(ord('a') + i)}", bus="virtio")
        _sub(d, "serial", disk.serial)
        if disk.readonly:
            _sub(d, "readonly")
    for nic in spec.nics:
        if nic.mode == "user":
            iface = _sub(devices, "interface", type="user")
        else:
            iface = _sub(devices, "interface", type="network")
            _sub(iface, "source", network=nic.network or "")
        _sub(iface, "mac", address=nic.mac)
        _sub(iface, "model", type="virtio")
    for share in spec.shares:
        # virtiofsd is ours (vm.virtiofs), started before the domain: libvirt would run
        # its own as root under the system daemon.
        fs = _sub(devices, "filesystem", type="mount")
        _sub(fs, "driver", type="virtiofs", queue="1024")
        _sub(fs, "source", socket=str(virtiofs.socket_path(spec.run_dir, share)))
        _sub(fs, "target", dir=share.tag)
    serial = _sub(devices, "serial", type="file")
    _sub(serial, "source", path=str(spec.serial_log), append="off")
    _sub(serial, "target", port="0")
    rng = _sub(devices, "rng", model="virtio")
    _sub(rng, "backend", "/dev/urandom", model="random")
    _sub(devices, "memballoon", model="none")
    if run_as_owner:
        label = _sub(dom, "seclabel", type="static", model="dac", relabel="no")
        _sub(label, "label", f"+{spec.uid}:+{spec.gid}")
    ET.indent(dom)
    return ET.tostring(dom, encoding="unicode") + "\n"


class LibvirtDriver(MonitorForwards):
    features = FEATURES
    netdev = "hostnet0"

    def __init__(self, uri: str | None = None) -> None:
        self.uri = uri or default_uri()
        self._conn: Any = None

    def _libvirt(self) -> Any:
        try:
            import libvirt  # noqa: PLC0415 - optional, platform-specific

            return libvirt
        except ImportError as exc:
            raise HostError(
                "the libvirt driver needs libvirt-python",
                fix="pip install libvirt-python (it builds against libvirt-dev and pkg-config), "
                'or set driver = "qemu" in the machine\'s config',
            ) from exc

    def _connect(self) -> Any:
        if self._conn is not None:
            with contextlib.suppress(Exception):  # any failure means: reconnect below
                if self._conn.isAlive():
                    return self._conn
        libvirt = self._libvirt()
        libvirt.registerErrorHandler(lambda _ctx, _err: None, None)  # no stderr noise
        try:
            self._conn = libvirt.open(self.uri)
        except libvirt.libvirtError as exc:
            fix = (
                "start it: sudo systemctl start libvirtd (without systemd: sudo libvirtd -d)"
                if self.uri.endswith("/system")
                else "install libvirt-daemon (sudo apt-get install libvirt-daemon-system)"
            )
            raise HostError(
                f"cannot reach libvirt at {self.uri}: {exc.get_error_message()}",
                fix=f'{fix}, or set driver = "qemu" in the machine\'s config',
            ) from exc
        return self._conn

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        libvirt = self._libvirt()
        try:
            return fn()
        except libvirt.libvirtError as exc:
            raise MachineError(f"libvirt could not {what}: {exc.get_error_message()}") from exc

    def _domain(self, name: str) -> Any | None:
        libvirt = self._libvirt()
        conn = self._connect()
        try:
            return conn.lookupByName(vm_name(name))
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                return None
            raise MachineError(f"libvirt lookup failed: {exc.get_error_message()}") from exc

    def check_host(self) -> None:
        self._connect()
        require_qemu()

    def start(self, spec: MachineSpec) -> None:
        if self.state(spec.name) is VMState.RUNNING:
            raise MachineError(f"a VM named {spec.name!r} is already running")
        # A transient domain that just powered off is shut off, yet still defined while
        # libvirt tears it down: a restart at once was refused with "domain already
        # exists". Give the tear-down a moment.
        deadline = time.monotonic() + GONE_TIMEOUT
        while self._domain(spec.name) is not None and time.monotonic() < deadline:
            time.sleep(0.1)
        emulator = require_qemu()
        xml = domain_xml(spec, emulator, run_as_owner=self.uri.endswith("/system"))
        conn = self._connect()
        with virtiofs.serving(spec):
            self._call("start the VM", lambda: conn.createXML(xml, 0))
        for forward in spec.forwards:
            self.add_forward(spec.name, forward)

    def state(self, name: str) -> VMState:
        dom = self._domain(name)
        if dom is None:
            return VMState.STOPPED
        libvirt = self._libvirt()
        try:
            state, _reason = dom.state()
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                return VMState.STOPPED  # it went away between the lookup and the question
            # Anything else says nothing about the VM: never report a running VM as stopped.
            raise MachineError(
                f"libvirt could not tell the VM's state: {exc.get_error_message()}"
            ) from exc
        running = state in (
            libvirt.VIR_DOMAIN_RUNNING,
            libvirt.VIR_DOMAIN_PAUSED,
            libvirt.VIR_DOMAIN_BLOCKED,
        )
        return VMState.RUNNING if running else VMState.STOPPED

    def pid(self, name: str) -> int | None:
        if self.state(name) is not VMState.RUNNING:
            return None
        pidfile = (
            f"/run/libvirt/qemu/{vm_name(name)}.pid"
            if self.uri.endswith("/system")
            else os.path.expanduser(f"~/.cache/libvirt/qemu/run/{vm_name(name)}.pid")
        )
        try:
            with open(pidfile) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return None

    def kill(self, name: str) -> None:
        dom = self._domain(name)
        if dom is None:
            return
        libvirt = self._libvirt()
        try:
            dom.destroy()
        except libvirt.libvirtError as exc:
            if self.state(name) is VMState.RUNNING:
                raise MachineError(
                    f"libvirt could not stop the VM: {exc.get_error_message()}"
                ) from exc
        kill_and_wait(lambda: self.state(name) is VMState.RUNNING)

    def _hmp(self, name: str, command: str) -> str:
        import libvirt_qemu  # noqa: PLC0415 - ships with libvirt-python

        dom = self._domain(name)
        if dom is None:
            raise MachineError(f"no running VM named {name!r}")
        flags = libvirt_qemu.VIR_DOMAIN_QEMU_MONITOR_COMMAND_HMP
        return str(
            self._call(command, lambda: libvirt_qemu.qemuMonitorCommand(dom, command, flags))
        )


def create(run_root: Path) -> LibvirtDriver:
    """``run_root`` is accepted for the common signature and unused: libvirtd keeps each
    domain's pid file and monitor socket in folders of its own, and finds a running
    domain by name alone."""
    del run_root
    return LibvirtDriver()
