"""What the backends that run QEMU share, kept in one place so they cannot drift apart.

The VM's name is the one thing a backend and a later host agent must agree on to
find a VM again after the agent that started it died: libvirt looks its domain up
by it, and the qemu backend recognises its own process by it in
``/proc/PID/cmdline``. Finding QEMU and waiting for a killed VM to go are the same
steps in every backend too.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from moorage.errors import HostError
from moorage.vm.accel import find_qemu

KILL_TIMEOUT = 10.0
"""How long ``kill`` waits for a VM to be gone before it returns anyway."""
_POLL = 0.05


def vm_name(machine: str) -> str:
    """The hypervisor's name for ``machine``'s VM: libvirt's domain name, QEMU's ``-name``
    and process name, and what the qemu backend's ``pid()`` looks for in the command line.
    Prefixed so moorage's VMs stand apart from a user's own in ``virsh list`` and ``ps``."""
    return f"moorage-{machine}"


def require_qemu() -> str:
    """The path of ``qemu-system-x86_64``; raise ``HostError`` with the fix when it is missing."""
    qemu = find_qemu()
    if qemu is None:
        raise HostError(
            "qemu-system-x86_64 is not installed",
            fix="install it (on Debian/Ubuntu: sudo apt-get install qemu-system-x86)",
        )
    return qemu


def kill_and_wait(is_running: Callable[[], bool], timeout: float = KILL_TIMEOUT) -> None:
    """After a kill, poll ``is_running`` until it answers False or ``timeout`` seconds pass.

    A killed QEMU takes a moment to exit and its hypervisor a moment more to notice,
    and ``start`` refuses while the old VM still shows as running: so ``kill`` returns
    only once the VM is gone. It does not raise on timeout, because the kill itself was
    sent; a VM that still runs then shows in the next ``state``.
    """
    deadline = time.monotonic() + timeout
    while is_running() and time.monotonic() < deadline:
        time.sleep(_POLL)
