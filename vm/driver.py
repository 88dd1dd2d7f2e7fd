"""The hypervisor driver interface, and the machine spec every driver boots from.

A driver turns a ``MachineSpec`` (pure data) into a running VM and back. It
does not know about Docker, SSH or config files: the host agent does. To fit
HyperKit and Hyper-V later the interface stays small, and what a backend can
or cannot do is declared in ``DriverFeatures`` for callers to read, instead of
callers asking which driver they hold (lima's ``DriverFeatures``).

Contracts every backend keeps:

- ``start`` boots a VM that is not running; it raises ``MachineError`` if one
  with that name already runs (the agent adopts running VMs, never re-boots them).
- ``kill`` stops the VM at once, like pulling the plug; it MUST succeed when no
  VM runs. Graceful shutdown goes through the guest (``poweroff`` over SSH).
- ``state`` never raises for a missing VM: it answers ``STOPPED``.
- A VM outlives the process that started it: the host agent may die and a new
  one adopts the VM through ``state`` and ``pid``.
- An ability a backend lacks raises ``moorage.errors.UnsupportedOperation``, never
  ``NotImplementedError`` and never a silent no-op, and ``DriverFeatures`` declares
  it beforehand so callers can avoid asking (``runtime_forwards`` for
  ``add_forward``/``remove_forward``).
- Backends differ in data, not in callers' code: a slow start worth a warning, for
  instance, is ``DriverFeatures.slow_start_seconds`` with its advice, not a test of
  ``features.name``.
- Every backend is built by its module's ``create(run_root)``
  (``moorage.vm.drivers.get``): ``run_root/NAME/`` is machine NAME's runtime folder,
  the same as ``MachineSpec.run_dir``, so the driver can find a VM it did not start.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

from moorage.types import Forward

Accel = Literal["kvm", "tcg"]


TCG_CPU_MODEL = "Westmere"
"""The CPU QEMU emulates under TCG. Not ``max``: QEMU 7.2's ``max`` offers AVX2, whose
TCG emulation was new in 7.2, and Go programs (dockerd, containerd, runc) take
AVX2 paths for memmove and friends when they see it. Westmere (SSE4.2, AES-NI,
no AVX) runs every Debian amd64 binary on long-settled emulation code."""


TCG_VCPUS = 1
"""vCPUs of a TCG guest, whatever ``cpus`` says. With two, the guest kernel panicked
("Oops: int3" in kmem_cache_alloc, then "Fatal exception in interrupt") as runc
started the first container: the kernel live-patches its code (static keys flip when
the first memory cgroup appears) with int3 breakpoints and cross-CPU syncs, and
QEMU's multi-threaded TCG let another vCPU run the half-patched code. One vCPU cannot
race itself. KVM guests get every configured CPU."""


def guest_vcpus(accel: str | None, configured: int) -> int:
    """The vCPUs a guest really gets under ``accel`` (see ``TCG_VCPUS``)."""
    return configured if accel == "kvm" else TCG_VCPUS


TCG_KERNEL_ARGS = "mitigations=off"
"""Added to a TCG guest's kernel command line. The guest kernel's defences against
speculative-execution flaws are built for a processor running the guest's code as
written, and under TCG none does: QEMU translates every instruction and checks every
guest memory access against the guest's page tables in software. So page-table
isolation (Meltdown) guards nothing there, and the rest far less than on hardware,
while their cost is multiplied: isolation switches address spaces on every system
call and interrupt, and each switch empties the emulated TLB (docs/architecture.md
has the numbers). KVM guests keep the kernel's defaults."""


def guest_cmdline(cmdline: str, accel: str | None) -> str:
    """The kernel command line a guest really boots with under ``accel``."""
    return cmdline if accel == "kvm" else f"{cmdline} {TCG_KERNEL_ARGS}"


class VMState(enum.Enum):
    RUNNING = "running"
    STOPPED = "stopped"


@dataclass(frozen=True)
class DriverFeatures:
    """What a backend can do, as data."""

    name: str
    needs_daemon: bool
    """True when a system service (libvirtd) must run for the driver to work."""
    accelerators: tuple[Accel, ...]
    shared_folders: tuple[str, ...]
    """Mechanisms for host folders in the guest, best first (e.g. ``("virtiofs",)``)."""
    runtime_forwards: bool
    """Host→guest port forwards can be added and removed while the VM runs. Without it,
    ``add_forward`` and ``remove_forward`` raise ``UnsupportedOperation``."""
    slow_start_seconds: float | None = None
    """``start`` taking longer than this means something on the host is wrong and worth a
    warning with ``slow_start_advice``; None when no duration says anything."""
    slow_start_advice: str = ""
    """What to do about a slow start, for the warning; "" when ``slow_start_seconds`` is
    None."""

    def __post_init__(self) -> None:
        if (self.slow_start_seconds is None) != (self.slow_start_advice == ""):
            raise ValueError("slow_start_seconds and slow_start_advice go together")


@dataclass(frozen=True)
class Disk:
    path: Path
    serial: str
    """How the guest finds the disk (``/sys/block/vdX/serial``), whatever its order."""
    readonly: bool = False


@dataclass(frozen=True)
class Nic:
    """A network interface. ``user`` is NAT through the host's own sockets
    (slirp), so the guest goes out wherever the host can, VPN included.
    ``private`` joins a network shared only by the VMs of one local cluster."""

    mac: str
    mode: Literal["user", "private"] = "user"
    network: str | None = None
    """For ``private``: the name of the shared network."""


@dataclass(frozen=True)
class SharedFolder:
    tag: str
    host_path: Path


@dataclass(frozen=True)
class MachineSpec:
    """Everything a driver needs to boot one VM. Pure data: tests compare it."""

    name: str
    cpus: int
    memory_mib: int
    kernel: Path
    initrd: Path
    cmdline: str
    disks: Sequence[Disk]
    nics: Sequence[Nic]
    serial_log: Path
    run_dir: Path
    """A user-only folder where a driver may keep sockets and pid files."""
    accel: Accel = "tcg"
    forwards: Sequence[Forward] = ()
    shares: Sequence[SharedFolder] = field(default_factory=tuple)
    uid: int = 0
    gid: int = 0
    """The user the hypervisor process runs as (it must read the disks)."""


class Driver(Protocol):
    """A hypervisor backend; the module docstring lists the contracts every one keeps.

    The backends that run QEMU get the forward methods from
    ``moorage.vm.drivers.hostfwd.MonitorForwards``. A backend without that mixin (no
    QEMU monitor to talk to) writes them itself: without ``features.runtime_forwards``
    ``add_forward`` and ``remove_forward`` raise ``UnsupportedOperation``, and
    ``forwards`` still answers, with the forwards the VM was started with.
    """

    features: DriverFeatures

    def start(self, spec: MachineSpec) -> None:
        """Boot the VM. Returns once the hypervisor runs, not once the guest is up."""
        ...

    def state(self, name: str) -> VMState: ...

    def pid(self, name: str) -> int | None:
        """The hypervisor process of a running VM, or None."""
        ...

    def kill(self, name: str) -> None: ...

    def add_forward(self, name: str, forward: Forward) -> None:
        """Raises UnsupportedOperation unless ``features.runtime_forwards``."""
        ...

    def remove_forward(self, name: str, forward: Forward) -> None:
        """Raises UnsupportedOperation unless ``features.runtime_forwards``."""
        ...

    def forwards(self, name: str) -> set[Forward]:
        """The forwards the running VM has now: a new host agent adopts them."""
        ...

    def check_host(self) -> None:
        """Raise HostError naming the fix when the host cannot run this driver."""
        ...
